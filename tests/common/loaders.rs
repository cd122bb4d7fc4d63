//! Small files in the exact published formats of UCI HHAR, WISDM and uWave (with their quirks), and
//! archive writers, for the loader tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// The HHAR header line.
pub const HHAR_HEADER: &str = "Index,Arrival_Time,Creation_Time,x,y,z,User,Model,Device,gt";

/// A deterministic accelerometer value for row `i`, channel `c`, written with 7 significant digits
/// like the published files.
pub fn value(i: usize, c: usize) -> String {
    let v = ((i * 7 + c * 13) as f64 * 0.37).sin() * 9.81;
    format!("{}", (v * 1e6).round() / 1e6)
}

/// The f32 the loader must produce for [`value`].
pub fn value_f32(i: usize, c: usize) -> f32 {
    value(i, c).parse().expect("float")
}

/// One HHAR row: (user, gt); the values come from [`value`] with the row's index.
pub fn hhar_text(rows: &[(&str, &str)]) -> String {
    let models = [
        ("nexus4", "nexus4_1"),
        ("s3", "s3_2"),
        ("samsungold", "samsungold_1"),
    ];
    let mut s = String::from(HHAR_HEADER);
    s.push('\n');
    for (i, (user, gt)) in rows.iter().enumerate() {
        let (m, d) = models[(i / 50) % 3];
        s.push_str(&format!(
            "{i},{},{},{},{},{},{user},{m},{d},{gt}\n",
            1424696633908u64 + i as u64,
            1424696631913248572u64 + i as u64 * 1000,
            value(i, 0),
            value(i, 1),
            value(i, 2)
        ));
    }
    s
}

/// A WISDM record line (with its `;`).
pub fn wisdm_record(user: u32, activity: &str, i: usize) -> String {
    format!(
        "{user},{activity},{},{},{},{};",
        49105962326000u64 + i as u64 * 50_000_000,
        value(i, 0),
        value(i, 1),
        value(i, 2)
    )
}

/// Writes `text` to `path`, creating folders.
pub fn write(path: &Path, text: impl AsRef<[u8]>) -> PathBuf {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    std::fs::write(path, text).expect("write fixture");
    path.to_path_buf()
}

/// Writes a zip archive holding `members` (name, bytes), deflated.
pub fn write_zip(path: &Path, members: &[(&str, &[u8])]) -> PathBuf {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in members {
        w.start_file(*name, options).expect("start zip member");
        w.write_all(bytes).expect("write zip member");
    }
    write(path, w.finish().expect("finish zip").into_inner())
}

/// Writes a gzip-compressed tar archive holding `members` (name, bytes).
pub fn write_tar_gz(path: &Path, members: &[(&str, &[u8])]) -> PathBuf {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, *bytes)
            .expect("tar member");
    }
    let gz = tar.into_inner().expect("finish tar");
    write(path, gz.finish().expect("finish gzip"))
}

/// A uWave gesture file: `n` lines of `x y z`.
pub fn uwave_gesture(n: usize, seed: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{} {} {}\n",
                value(seed * 1000 + i, 0),
                value(seed * 1000 + i, 1),
                value(seed * 1000 + i, 2)
            )
        })
        .collect()
}
