//! scikit-learn's 8×8 digits (`digits.csv.gz`, the test part of UCI's optical digits): 1 797 images.
//!
//! The CSV has no header and 65 integer columns per line: 64 pixel values 0..16 (an 8×8 image,
//! row-major; each is the count of "on" pixels in a 4×4 block of a 32×32 bitmap) and the class 0..9.
//! Pixels are stored as u8 0..255 by `round(v × 255 / 16)` (half up), so 0 → 0, 8 → 128, 16 → 255.

use std::path::Path;

use super::{digit_classes, read_maybe_gz, ImageError, ImageSet, Result};

/// Side of a digits image.
pub const SIDE: usize = 8;
/// Largest pixel value in the CSV.
pub const MAX_VALUE: u64 = 16;
/// Columns per line: 64 pixels and the label.
pub const COLUMNS: usize = SIDE * SIDE + 1;
/// The file name inside the data folder.
pub const FILE: &str = "digits.csv.gz";

/// A CSV pixel value 0..16 scaled to 0..255: `round(v × 255 / 16)`, half up.
pub fn scale_to_u8(v: u8) -> u8 {
    ((v as u32 * 255 + 8) / 16) as u8
}

/// Parses one value of column `column` (1-based) with its range check.
fn parse_value(token: &str, file: &str, line: usize, column: usize, max: u64) -> Result<u8> {
    let value: u64 = token.trim().parse().map_err(|_| ImageError::NotAnInteger {
        file: file.into(),
        line,
        column,
        token: token.into(),
    })?;
    if value > max {
        return Err(ImageError::ValueOutOfRange {
            file: file.into(),
            line,
            column,
            value,
            max,
        });
    }
    Ok(value as u8)
}

/// Parses the CSV text (already decompressed); blank lines are skipped, `file` names it in errors.
pub fn parse_digits_csv(text: &str, file: &str) -> Result<ImageSet> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let tokens: Vec<&str> = raw.split(',').collect();
        if tokens.len() != COLUMNS {
            return Err(ImageError::ColumnCount {
                file: file.into(),
                line,
                expected: COLUMNS,
                found: tokens.len(),
            });
        }
        for (k, token) in tokens[..COLUMNS - 1].iter().enumerate() {
            pixels.push(scale_to_u8(parse_value(
                token,
                file,
                line,
                k + 1,
                MAX_VALUE,
            )?));
        }
        labels.push(parse_value(tokens[COLUMNS - 1], file, line, COLUMNS, 9)? as u32);
    }
    ImageSet::new(1, SIDE, SIDE, pixels, labels, digit_classes())
}

/// Reads the digits from `path`: the CSV itself (gzipped or plain), or a folder holding [`FILE`].
pub fn load_digits(path: &Path) -> Result<ImageSet> {
    let path = if path.is_dir() {
        path.join(FILE)
    } else {
        path.to_path_buf()
    };
    let file = path.display().to_string();
    let bytes = read_maybe_gz(&path)?;
    let text = String::from_utf8(bytes).map_err(|e| ImageError::Io {
        file: file.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
    })?;
    parse_digits_csv(&text, &file)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{gzip, shared_data, temp_dir};
    use super::*;

    fn line(values: &[u8], label: u8) -> String {
        let mut cols: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        cols.push(label.to_string());
        cols.join(",")
    }

    #[test]
    fn scaling_rounds_half_up_and_spans_0_to_255() {
        assert_eq!([0, 1, 8, 15, 16].map(scale_to_u8), [0, 16, 128, 239, 255]);
    }

    #[test]
    fn round_trip_of_written_lines() {
        let a: Vec<u8> = (0..64).map(|k| (k % 17) as u8).collect();
        let b = vec![16u8; 64];
        let dir = temp_dir("digits-rt");
        let text = format!("{}\n{}\n\n", line(&a, 3), line(&b, 9));
        std::fs::write(dir.join(FILE), gzip(text.as_bytes())).expect("write");
        let set = load_digits(&dir).expect("loads");
        assert_eq!((set.n, set.channels, set.height, set.width), (2, 1, 8, 8));
        assert_eq!(set.labels, vec![3, 9]);
        let want: Vec<u8> = a.iter().map(|&v| scale_to_u8(v)).collect();
        assert_eq!(set.image(0), Some(&want[..]));
        assert_eq!(set.image(1), Some(&[255u8; 64][..]));
    }

    #[test]
    fn bad_lines_are_named() {
        let good = line(&[0; 64], 1);
        let short = line(&[0; 63], 1);
        let e = parse_digits_csv(&format!("{good}\n{short}\n"), "d.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.csv: line 2: expected 65 columns, found 64"
        );
        let e = parse_digits_csv(&good.replacen('0', "x", 1), "d.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.csv: line 1, column 1: value \"x\" is not an integer"
        );
        let mut values = [0u8; 64];
        values[5] = 17;
        let e = parse_digits_csv(&line(&values, 1), "d.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.csv: line 1, column 6: value 17 is out of range 0..=16"
        );
        let e = parse_digits_csv(&line(&[0; 64], 10), "d.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.csv: line 1, column 65: value 10 is out of range 0..=9"
        );
    }

    #[test]
    fn real_digits_load() {
        let Some(dir) = shared_data("sklearn_digits") else {
            return;
        };
        let set = load_digits(&dir).expect("the shared digits load");
        assert_eq!(
            (set.n, set.channels, set.height, set.width),
            (1797, 1, 8, 8)
        );
        assert_eq!(
            set.class_counts(),
            [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
        );
        assert_eq!(set.pixels.iter().max(), Some(&255));
    }
}
