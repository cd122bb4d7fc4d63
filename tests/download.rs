//! Downloading against a local HTTP/1.1 server that serves the real archive, whole, cut short, corrupted or 404.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use codats::data::formats::ucihar::{download, ensure_ucihar};
use codats::data::spec::DatasetSpec;
use codats::data::DataError;
use common::*;

/// The real archive's bytes, read once.
fn archive() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        std::fs::read(real_archive_dir().join("UCI HAR Dataset.zip")).expect("read real archive")
    })
}

/// How the server answers.
#[derive(Clone, Copy)]
enum Reply {
    /// 200 with the whole archive.
    Full,
    /// 200, Content-Length of the whole archive, but only half the body before closing.
    Truncated,
    /// 200 with the archive, a few bytes in the middle flipped.
    Corrupted,
    /// 404 Not Found.
    NotFound,
}

/// A local HTTP/1.1 server answering `replies`, one connection each, then exiting (10 s deadline).
struct Server {
    url: String,
    handle: Option<JoinHandle<usize>>,
}

impl Server {
    fn start(replies: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!(
            "http://{}/ml/UCI%20HAR%20Dataset.zip",
            listener.local_addr().unwrap()
        );
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut served = 0;
            for reply in replies {
                let stream = loop {
                    match listener.accept() {
                        Ok((s, _)) => break Some(s),
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => break None,
                    }
                };
                let Some(stream) = stream else { break };
                stream.set_nonblocking(false).unwrap();
                // Errors here (client hung up) just end this connection.
                let _ = serve(stream, reply);
                served += 1;
            }
            served
        });
        Server {
            url,
            handle: Some(handle),
        }
    }

    /// Waits for the server thread; returns how many connections it served.
    fn join(mut self) -> usize {
        self.handle.take().unwrap().join().expect("server thread")
    }
}

fn serve(stream: TcpStream, reply: Reply) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    assert!(
        line.starts_with("GET /ml/UCI%20HAR%20Dataset.zip HTTP/1.1"),
        "{line}"
    );
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let mut out = stream;
    let body = archive();
    match reply {
        Reply::NotFound => {
            let msg = b"no such file";
            write!(
                out,
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                msg.len()
            )?;
            out.write_all(msg)?;
        }
        Reply::Full | Reply::Truncated | Reply::Corrupted => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            )?;
            match reply {
                Reply::Truncated => out.write_all(&body[..body.len() / 2])?,
                Reply::Corrupted => {
                    let mut bad = body.to_vec();
                    let mid = bad.len() / 2;
                    for b in &mut bad[mid..mid + 4] {
                        *b ^= 0x5A;
                    }
                    out.write_all(&bad)?;
                }
                _ => out.write_all(body)?,
            }
        }
    }
    out.flush()?;
    out.shutdown(std::net::Shutdown::Both)
}

/// Every entry in `dir` (to prove no temp file is left behind).
fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn spec() -> DatasetSpec {
    DatasetSpec::ucihar().unwrap()
}

#[test]
fn full_response_is_downloaded_and_verified() {
    let server = Server::start(vec![Reply::Full]);
    let tmp = TempDir::new("dl-full");
    // The destination folder does not exist yet: download creates it.
    let dest = tmp.path().join("data").join("UCI HAR Dataset.zip");
    download(&server.url, &dest, &spec(), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server.join(), 1);
    assert_eq!(std::fs::read(&dest).unwrap(), archive());
    assert_eq!(entries(&tmp.path().join("data")), vec![dest.clone()]);
}

#[test]
fn truncated_response_leaves_nothing() {
    let server = Server::start(vec![Reply::Truncated]);
    let tmp = TempDir::new("dl-truncated");
    let dest = tmp.path().join("UCI HAR Dataset.zip");
    let err = download(&server.url, &dest, &spec(), false).expect_err("body cut short");
    server.join();
    assert!(matches!(err, DataError::Download { .. }), "{err:?}");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.starts_with(&format!("could not download {}: ", server_url(&msg))),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("of {} bytes", archive().len())),
        "{msg}"
    );
    assert!(
        msg.ends_with(&format!(
            ". Without network access, put the file at {}",
            dest.display()
        )),
        "{msg}"
    );
    assert!(!dest.exists());
    assert_eq!(entries(tmp.path()), Vec::<PathBuf>::new());
}

/// The URL quoted in a download error (test helper for prefix checks).
fn server_url(msg: &str) -> &str {
    let rest = msg.strip_prefix("could not download ").unwrap_or("");
    rest.split(": ").next().unwrap_or("")
}

#[test]
fn corrupted_response_fails_verification_and_leaves_nothing() {
    let server = Server::start(vec![Reply::Corrupted]);
    let url = server.url.clone();
    let tmp = TempDir::new("dl-corrupt");
    let dest = tmp.path().join("UCI HAR Dataset.zip");
    let err = download(&url, &dest, &spec(), false).expect_err("corrupt body");
    server.join();
    eprintln!("{err}");
    let DataError::DownloadVerify { source, .. } = &err else {
        panic!("expected a verification error, got {err:?}");
    };
    assert!(
        matches!(
            **source,
            DataError::CrcMismatch { .. } | DataError::CorruptMember { .. }
        ),
        "{source:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "downloaded {url}, but it is not the expected archive (nothing was saved at {}): ",
            dest.display()
        )),
        "{err}"
    );
    assert!(!dest.exists());
    assert_eq!(entries(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn not_found_names_the_url() {
    let server = Server::start(vec![Reply::NotFound]);
    let url = server.url.clone();
    let tmp = TempDir::new("dl-404");
    let dest = tmp.path().join("UCI HAR Dataset.zip");
    let err = download(&url, &dest, &spec(), false).expect_err("404");
    server.join();
    assert_eq!(
        err.to_string(),
        format!(
            "could not download {url}: the server answered HTTP 404 Not Found. \
             Without network access, put the file at {}",
            dest.display()
        )
    );
    assert_eq!(entries(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn connection_refused_names_the_url() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/x.zip");
    let tmp = TempDir::new("dl-refused");
    let dest = tmp.path().join("UCI HAR Dataset.zip");
    let err = download(&url, &dest, &spec(), false).expect_err("refused");
    eprintln!("{err}");
    assert!(matches!(err, DataError::Download { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("could not download {url}: ")),
        "{err}"
    );
    assert_eq!(entries(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn ensure_ucihar_offline_then_online_then_present() {
    // The only test in this binary that touches CODATS_UCIHAR_URL.
    let server = Server::start(vec![Reply::Full]);
    std::env::set_var("CODATS_UCIHAR_URL", &server.url);
    let tmp = TempDir::new("dl-ensure");
    let dir = tmp.path().join("ucihar");

    let err = ensure_ucihar(&dir, true, false).expect_err("offline and missing");
    assert!(matches!(err, DataError::ArchiveNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(&server.url), "{err}");
    assert!(!dir.exists(), "offline must not create anything");

    let path = ensure_ucihar(&dir, false, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(path, dir.join("UCI HAR Dataset.zip"));
    assert_eq!(server.join(), 1);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        archive().len() as u64
    );

    // Present now: no network needed (the server is gone), online or not.
    assert_eq!(ensure_ucihar(&dir, false, false).unwrap(), path);
    assert_eq!(ensure_ucihar(&dir, true, false).unwrap(), path);
    std::env::remove_var("CODATS_UCIHAR_URL");
}
