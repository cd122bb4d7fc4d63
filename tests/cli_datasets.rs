//! `codats datasets list | info | download | verify | cache` and short `codats train` runs on every
//! dataset with data: the real UCI HAR, UCI HAPT and watch copies, HHAR/WISDM/uWave fixtures in the
//! published formats, and synthetic with no data at all.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use common::loaders::*;
use common::TempDir;

/// Runs codats with its data and cache folders set; returns (exit code, stdout, stderr).
fn run(
    args: &[&str],
    data_root: &Path,
    cache: &Path,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codats"));
    cmd.args(args)
        .env("CODATS_DATA_DIR", data_root)
        .env("CODATS_CACHE_DIR", cache)
        .env("RAYON_NUM_THREADS", "2");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run codats");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(!e.contains("panicked"), "codats {args:?} panicked: {e}");
    (out.status.code().unwrap_or(-1), o, e)
}

/// Runs codats and expects success; returns stdout.
fn ok(args: &[&str], data_root: &Path, cache: &Path) -> String {
    let (code, out, err) = run(args, data_root, cache, &[]);
    assert_eq!(code, 0, "codats {args:?} failed: {err}");
    out
}

/// Runs codats and expects failure; returns the one-line error.
fn fails(args: &[&str], data_root: &Path, cache: &Path) -> String {
    let (code, _, err) = run(args, data_root, cache, &[]);
    assert_ne!(code, 0, "codats {args:?} should fail");
    err.trim_end().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn list_names_every_dataset_and_whether_its_files_are_found() {
    let tmp = TempDir::new("cli-list");
    let root = common::real_data_root();
    let out = ok(
        &["datasets", "list", "--data-dir", s(&root)],
        tmp.path(),
        tmp.path(),
    );
    let rows: Vec<(&str, &str)> = out
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap_or(""), w.next().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("ucihar", "found"),
            ("ucihhar", "missing"),
            ("wisdm_ar", "missing"),
            ("wisdm_at", "missing"),
            ("uwave", "missing"),
            ("ucihapt", "found"),
            ("tabular", "missing"),
            ("synthetic", "built-in"),
            ("mnist", "found"),
            ("digits", "found"),
            ("cifar10", "missing"),
            ("image_folder", "missing")
        ]
    );
}

#[test]
fn info_reports_the_real_counts_and_uses_the_cache() {
    let tmp = TempDir::new("cli-info");
    let root = common::real_data_root();
    let cache = tmp.path().join("cache");
    let har = root.join("ucihar");
    let out = ok(
        &["datasets", "info", "ucihar", "--data-dir", s(&har)],
        &root,
        &cache,
    );
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("ucihar: 30 domains, 10299 windows, 9 channels x 128 samples, 6 classes")
    );
    assert!(out.contains("sampling rate: 50 Hz"), "{out}");
    assert!(out.contains("parsed and cached at"), "{out}");
    assert!(out.contains("\n     1     347 "), "{out}");
    let again = ok(
        &["datasets", "info", "ucihar", "--data-dir", s(&har)],
        &root,
        &cache,
    );
    assert!(again.contains("read from cache"), "{again}");

    let out = ok(&["datasets", "info", "ucihapt"], &root, &cache);
    assert!(
        out.starts_with(
            "ucihapt: 30 domains, 10411 windows, 6 channels x 128 samples, 6 classes\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("acc_x, acc_y, acc_z, gyro_x, gyro_y, gyro_z"),
        "{out}"
    );

    let watch = root.join("seglearn_watch/watch_dataset.csv.gz");
    let png = tmp.path().join("balance.png");
    let out = ok(
        &[
            "datasets",
            "info",
            "tabular",
            "--data-dir",
            s(&watch),
            "--domain-col",
            "subject",
            "--label-col",
            "label_name",
            "--channels",
            "ax,ay,az,wx,wy,wz",
            "--group-col",
            "series_id",
            "--time-col",
            "sample",
            "--sample-rate",
            "50",
            "--plot",
            s(&png),
        ],
        &root,
        &cache,
    );
    assert!(
        out.starts_with("tabular: 10 domains, 1833 windows, 6 channels x 128 samples, 7 classes\n"),
        "{out}"
    );
    assert!(out.contains("read 244102 rows"), "{out}");
    let bytes = std::fs::read(&png).expect("plot written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

/// HHAR, WISDM AR and uWave fixtures under one data root, as `$CODATS_DATA_DIR/<name>/`.
fn fixture_root(root: &Path) {
    let mut rows = Vec::new();
    let acts = [
        "walk",
        "sit",
        "stand",
        "bike",
        "null",
        "stairsup",
        "stairsdown",
    ];
    for i in 0..6000 {
        rows.push((["a", "b"][(i / 100) % 2], acts[(i / 37) % 7]));
    }
    write_zip(
        &root.join("ucihhar/Activity recognition exp.zip"),
        &[(
            "Activity recognition exp/Phones_accelerometer.csv",
            hhar_text(&rows).as_bytes(),
        )],
    );
    let mut raw = String::new();
    let acts = [
        "Walking",
        "Jogging",
        "Sitting",
        "Standing",
        "Upstairs",
        "Downstairs",
    ];
    for i in 0..3000 {
        raw.push_str(&wisdm_record([3, 8][(i / 50) % 2], acts[(i / 33) % 6], i));
        raw.push('\n');
        if i % 500 == 0 {
            raw.push_str("577,,;\n");
        }
    }
    write_tar_gz(
        &root.join("wisdm_ar/WISDM_ar_latest.tar.gz"),
        &[("WISDM_ar_v1.1/WISDM_ar_v1.1_raw.txt", raw.as_bytes())],
    );
    for user in 1..=2 {
        for day in 1..=2 {
            for g in 1..=8 {
                write(
                    &root.join(format!(
                        "uwave/U{user} ({day})/X_Template_Acceleration{g}-1.txt"
                    )),
                    uwave_gesture(20 + g * 3 + day, user * 100 + day * 10 + g),
                );
            }
        }
    }
}

/// A short training run; returns the run directory.
fn train(
    root: &Path,
    cache: &Path,
    out: &Path,
    dataset: &str,
    domains: (&str, &str),
    extra: &[&str],
) {
    let mut args = vec![
        "train",
        "--dataset",
        dataset,
        "--sources",
        domains.0,
        "--target",
        domains.1,
        "--method",
        "codats",
        "--steps",
        "2",
        "--batch-size",
        "16",
        "--eval-every",
        "2",
        "--threads",
        "2",
        "--offline",
        "--quiet",
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    let stdout = ok(&args, root, cache);
    assert!(
        stdout.contains("target-test accuracy"),
        "{dataset}: {stdout}"
    );
    assert!(
        out.join("result.json").is_file(),
        "{dataset}: no result.json"
    );
}

#[test]
fn short_training_runs_on_every_dataset_with_data() {
    let tmp = TempDir::new("cli-train");
    let cache = tmp.path().join("cache");
    let runs = tmp.path().join("runs");
    // synthetic, the default dataset: no data anywhere.
    let empty = tmp.path().join("no-data");
    std::fs::create_dir_all(&empty).unwrap();
    let out = runs.join("syn");
    let stdout = ok(
        &[
            "train",
            "--sources",
            "1,2",
            "--target",
            "0",
            "--steps",
            "2",
            "--batch-size",
            "16",
            "--eval-every",
            "2",
            "--threads",
            "2",
            "--offline",
            "--quiet",
            "--out",
            s(&out),
            "--synthetic-domains",
            "3",
            "--synthetic-shift",
            "0.5",
        ],
        &empty,
        &cache,
    );
    assert!(
        stdout.starts_with("synthetic codats sources [1,2] -> target 0"),
        "{stdout}"
    );
    let cfg = std::fs::read_to_string(runs.join("syn/config.toml")).unwrap();
    assert!(
        cfg.contains("[data.synthetic]") && cfg.contains("domains = 3"),
        "{cfg}"
    );
    // --resume rebuilds the same synthetic data from config.toml: a killed and resumed run ends
    // exactly like an uninterrupted one.
    let resumable = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--sources",
            "2",
            "--target",
            "1",
            "--steps",
            "4",
            "--batch-size",
            "16",
            "--eval-every",
            "2",
            "--threads",
            "2",
            "--quiet",
            "--out",
            s(out),
            "--synthetic-domains",
            "4",
            "--synthetic-seed",
            "7",
            "--synthetic-windows",
            "12",
        ];
        args.extend_from_slice(extra);
        let (code, _, err) = run(&args, &empty, &cache, &[]);
        assert_eq!(code, 0, "{err}");
    };
    resumable(&runs.join("whole"), &[]);
    resumable(&runs.join("killed"), &["--stop-after", "2"]);
    assert!(!runs.join("killed/result.json").exists());
    ok(
        // The run's config.toml decides everything else (flags that would change it are refused).
        &[
            "train",
            "--resume",
            "--quiet",
            "--out",
            s(&runs.join("killed")),
        ],
        &empty,
        &cache,
    );
    assert_eq!(
        std::fs::read_to_string(runs.join("whole/result.json")).unwrap(),
        std::fs::read_to_string(runs.join("killed/result.json")).unwrap()
    );
    // eval rebuilds the same synthetic data from config.toml.
    ok(&["eval", s(&runs.join("syn"))], &empty, &cache);

    let real = common::real_data_root();
    train(
        &real,
        &cache,
        &runs.join("hapt"),
        "ucihapt",
        ("1", "2"),
        &[],
    );
    let watch = real.join("seglearn_watch/watch_dataset.csv.gz");
    train(
        &real,
        &cache,
        &runs.join("tab"),
        "tabular",
        ("1", "2"),
        &[
            "--data-dir",
            s(&watch),
            "--domain-col",
            "subject",
            "--label-col",
            "label",
            "--channels",
            "ax,ay,az,wx,wy,wz",
            "--group-col",
            "series_id",
            "--window-length",
            "64",
        ],
    );
    let cfg = std::fs::read_to_string(runs.join("tab/config.toml")).unwrap();
    assert!(
        cfg.contains("[data.tabular]") && cfg.contains("group_col = \"series_id\""),
        "{cfg}"
    );
    ok(&["eval", s(&runs.join("tab"))], &real, &cache);

    let fixtures = tmp.path().join("fixtures");
    fixture_root(&fixtures);
    train(
        &fixtures,
        &cache,
        &runs.join("hhar"),
        "ucihhar",
        ("0", "1"),
        &[],
    );
    train(
        &fixtures,
        &cache,
        &runs.join("wisdm"),
        "wisdm_ar",
        ("0", "1"),
        &["--wisdm-all-users"],
    );
    let cfg = std::fs::read_to_string(runs.join("wisdm/config.toml")).unwrap();
    assert!(cfg.contains("wisdm_all_users = true"), "{cfg}");
    train(
        &fixtures,
        &cache,
        &runs.join("uwave"),
        "uwave",
        ("1", "2"),
        &[],
    );
}

#[test]
fn data_option_mistakes_are_one_line_errors() {
    let tmp = TempDir::new("cli-errors");
    let root = tmp.path();
    let e = fails(
        &[
            "train",
            "--dataset",
            "ucihar",
            "--sources",
            "1",
            "--target",
            "2",
            "--domain-col",
            "x",
        ],
        root,
        root,
    );
    assert!(
        e.starts_with("error: --domain-col, --label-col")
            && e.ends_with("apply to --dataset tabular, not ucihar"),
        "{e}"
    );
    let e = fails(
        &[
            "train",
            "--dataset",
            "tabular",
            "--sources",
            "1",
            "--target",
            "2",
            "--label-col",
            "y",
        ],
        root,
        root,
    );
    assert_eq!(e, "error: --dataset tabular needs --domain-col, --channels (and --data-dir pointing at the CSV/Parquet file)");
    let e = fails(
        &["datasets", "info", "synthetic", "--synthetic-domains", "0"],
        root,
        root,
    );
    assert_eq!(e, "error: synthetic domains must be at least 1 (got 0)");
    let e = fails(
        &["datasets", "info", "ucihar", "--hapt-transitions"],
        root,
        root,
    );
    assert_eq!(
        e,
        "error: --hapt-transitions applies to --dataset ucihapt, not ucihar"
    );
    write(&root.join("uwave/U1 (1).rar"), b"Rar!");
    let e = fails(&["datasets", "info", "uwave"], root, root);
    assert!(e.contains("unrar x"), "{e}");
    let e = fails(&["datasets", "info", "wisdm_at"], root, root);
    assert!(e.contains("codats datasets download wisdm_at"), "{e}");
}

/// Serves `body` to each of `n` connections on a local port; returns the URL.
fn serve(body: Vec<u8>, n: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/WISDM_ar_latest.tar.gz",
        listener.local_addr().unwrap()
    );
    std::thread::spawn(move || {
        for _ in 0..n {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    url
}

#[test]
fn download_and_verify_check_the_archive() {
    let tmp = TempDir::new("cli-download");
    let src = tmp.path().join("src");
    let raw = (0..400)
        .map(|i| wisdm_record(1, "Walking", i) + "\n")
        .collect::<String>();
    let good = write_tar_gz(
        &src.join("good.tar.gz"),
        &[("WISDM_ar_v1.1/WISDM_ar_v1.1_raw.txt", raw.as_bytes())],
    );
    let wrong = write_tar_gz(
        &src.join("wrong.tar.gz"),
        &[("other/file.txt", b"x".as_slice())],
    );
    let dest = tmp.path().join("data");
    // An archive without the expected member is refused and nothing is saved.
    let url = serve(std::fs::read(&wrong).unwrap(), 1);
    let (code, _, err) = run(
        &["datasets", "download", "wisdm_ar", "--data-dir", s(&dest)],
        tmp.path(),
        tmp.path(),
        &[("CODATS_WISDM_AR_URL", &url)],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("member \"WISDM_ar_v1.1/WISDM_ar_v1.1_raw.txt\" is missing"),
        "{err}"
    );
    assert!(!dest.join("WISDM_ar_latest.tar.gz").exists());
    assert_eq!(
        std::fs::read_dir(&dest).map(|d| d.count()).unwrap_or(0),
        0,
        "temp files left"
    );
    // The good one is saved, then verified on demand.
    let url = serve(std::fs::read(&good).unwrap(), 1);
    let (code, out, err) = run(
        &["datasets", "download", "wisdm_ar", "--data-dir", s(&dest)],
        tmp.path(),
        tmp.path(),
        &[("CODATS_WISDM_AR_URL", &url)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is ready at"), "{out}");
    let out = ok(
        &[
            "datasets",
            "verify",
            "wisdm_ar",
            "--data-dir",
            s(&dest),
            "--wisdm-all-users",
        ],
        tmp.path(),
        tmp.path(),
    );
    assert!(out.contains("ok (1 members"), "{out}");
    assert!(
        out.contains("every file parses: 1 domains, 3 windows"),
        "{out}"
    );
    // A damaged archive fails verification.
    let path = dest.join("WISDM_ar_latest.tar.gz");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    bytes[mid + 1] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let e = fails(
        &["datasets", "verify", "wisdm_ar", "--data-dir", s(&dest)],
        tmp.path(),
        tmp.path(),
    );
    assert!(e.contains("WISDM_ar_latest.tar.gz"), "{e}");
    // cache clear removes entries.
    let cache = tmp.path().join("cache");
    let root = common::real_data_root();
    ok(&["datasets", "info", "ucihapt"], &root, &cache);
    let out = ok(&["datasets", "cache", "clear", "ucihapt"], &root, &cache);
    assert!(out.starts_with("removed 1 cache entries"), "{out}");
}

#[test]
fn image_datasets_are_listed_and_described() {
    let tmp = TempDir::new("cli-images");
    let root = common::real_data_root();
    let cache = tmp.path().join("cache");
    let list = ok(&["datasets", "list"], &root, &cache);
    assert!(
        list.contains("\nmnist        found    MNIST handwritten digits"),
        "{list}"
    );
    assert!(list.contains("\ndigits       found    "), "{list}");
    assert!(list.contains("\ncifar10      missing  "), "{list}");
    let info = ok(&["datasets", "info", "mnist"], &root, &cache);
    assert!(
        info.starts_with("mnist: 10 classes, images 28x28x1 (height x width x channels)\n"),
        "{info}"
    );
    assert!(info.contains("note: the 60 000 training images"), "{info}");
    assert!(
        info.contains(
            " images   10000    980  1135  1032  1010   982   892   958  1028   974  1009"
        ),
        "{info}"
    );
    let digits = ok(&["datasets", "info", "digits"], &root, &cache);
    assert!(digits.contains(" images    1797    178   182 "), "{digits}");
    // A CIFAR-10 folder without its batches, and a name that is no dataset.
    let empty = tmp.path().join("cifar");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let (code, _, err) = run(
        &["datasets", "info", "cifar10", "--data-dir", s(&empty)],
        &root,
        &cache,
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        format!("error: {}: data_batch_1.bin not found", empty.display())
    );
    let (code, _, err) = run(&["datasets", "info", "mnsit"], &root, &cache, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown dataset \"mnsit\"; valid datasets: ucihar, ucihhar, wisdm_ar, wisdm_at, uwave, ucihapt, tabular, synthetic; image datasets: mnist, digits, cifar10, image_folder"),
        "{err}"
    );
}
