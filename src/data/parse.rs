//! Shared parsing helpers: a fast exact decimal-to-`f32` parser, a streaming line reader with a reusable
//! buffer, field splitting, transparent gzip, and a small scoped-thread pool.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use super::DataError;

/// Bytes read from a file at a time by [`for_each_line`].
const CHUNK: usize = 1 << 20;

/// Streams `reader` line by line (LF or CR LF) through `f(line_number, line)`, with bounded memory.
///
/// Lines are 1-based and passed without their line terminator. A final line without a newline is
/// passed too; nothing is passed for the empty "line" after a final newline. The buffer is reused
/// (it only grows for a line longer than it). `file` names the input in read errors. Returns the
/// number of bytes read.
pub(crate) fn for_each_line<R: Read>(
    mut reader: R,
    file: &str,
    mut f: impl FnMut(usize, &[u8]) -> Result<(), DataError>,
) -> Result<u64, DataError> {
    let mut buf = vec![0u8; CHUNK];
    let (mut start, mut end) = (0usize, 0usize);
    let mut line = 0usize;
    let mut total = 0u64;
    loop {
        if end == buf.len() {
            if start > 0 {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            } else {
                buf.resize(buf.len() * 2, 0);
            }
        }
        let n = match reader.read(&mut buf[end..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(DataError::Read {
                    file: file.to_string(),
                    line: line + 1,
                    source: e,
                })
            }
        };
        let mut pos = end;
        end += n;
        total += n as u64;
        while let Some(k) = memchr::memchr(b'\n', &buf[pos..end]) {
            let nl = pos + k;
            line += 1;
            f(line, strip_cr(&buf[start..nl]))?;
            start = nl + 1;
            pos = start;
        }
    }
    if start < end {
        line += 1;
        f(line, strip_cr(&buf[start..end]))?;
    }
    Ok(total)
}

/// `line` without one trailing carriage return.
#[inline]
fn strip_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((b'\r', rest)) => rest,
        _ => line,
    }
}

/// Splits `line` at every `sep`, storing the first `out.len()` fields in `out`; returns how many fields
/// the line has in all (one more than the number of separators).
#[inline]
pub(crate) fn split_fields<'a>(line: &'a [u8], sep: u8, out: &mut [&'a [u8]]) -> usize {
    let mut n = 0;
    let mut start = 0;
    for i in memchr::memchr_iter(sep, line) {
        if n < out.len() {
            out[n] = &line[start..i];
        }
        n += 1;
        start = i + 1;
    }
    if n < out.len() {
        out[n] = &line[start..];
    }
    n + 1
}

/// Parses a decimal integer token (optional sign); `None` if it is not one.
#[inline]
pub(crate) fn parse_i64(tok: &[u8]) -> Option<i64> {
    std::str::from_utf8(tok).ok()?.parse::<i64>().ok()
}

/// `s` with its control characters escaped (`\r`, `\n`, `\u{0}`): text quoted from a file or
/// another library's message (a tar header, a raw CSV value) must not break an error's one line.
pub fn one_line(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// A token for messages: the bytes as (lossy) UTF-8, cut to 60 characters.
pub(crate) fn show(tok: &[u8]) -> String {
    let s = String::from_utf8_lossy(tok);
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s.into_owned()
    }
}

/// True when `path` names a gzip file (`.gz`).
pub(crate) fn is_gz(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Opens `path` for reading, decompressing it on the fly when it ends in `.gz`.
pub(crate) fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read + Send>, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = BufReader::with_capacity(CHUNK, file);
    if is_gz(path) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// Reads all of `path`, decompressing it when it ends in `.gz`.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::new();
    open_maybe_gz(path)?
        .read_to_end(&mut out)
        .map_err(|e| DataError::BadFile {
            file: path.display().to_string(),
            reason: format!("cannot read or decompress: {e}"),
        })?;
    Ok(out)
}

/// Runs `f` over `items` on up to `available_parallelism` scoped threads; results keep `items`' order.
pub(crate) fn run_parallel<T, C, R>(
    items: &[T],
    context: impl Fn() -> C + Sync,
    f: impl Fn(&mut C, &T) -> R + Sync,
) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut slots: Vec<Option<R>> = items.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut ctx = context();
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= items.len() {
                            break done;
                        }
                        done.push((i, f(&mut ctx, &items[i])));
                    }
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(done) => {
                    for (i, r) in done {
                        slots[i] = Some(r);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    slots
        .into_iter()
        .map(|r| r.expect("every job ran on some worker"))
        .collect()
}

/// Exact powers of ten representable in `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses a decimal token to the nearest `f32` (same result as `str::parse::<f32>`); `None` if not a number.
#[inline]
pub(crate) fn parse_f32(tok: &[u8]) -> Option<f32> {
    match parse_f32_fast(tok) {
        Some(v) => Some(v),
        None => std::str::from_utf8(tok).ok()?.parse::<f32>().ok(),
    }
}

/// Fast exact path for plain decimals (`-1.2345678e-004`); `None` means "use the general parser".
///
/// The mantissa (at most 15 digits) and the power of ten (|k| <= 22) are exact in `f64`, so one
/// multiplication or division is correctly rounded; rounding that `f64` to `f32` then gives the correctly
/// rounded `f32` unless the `f64` lies exactly halfway between two `f32`s, which falls back.
#[inline]
fn parse_f32_fast(tok: &[u8]) -> Option<f32> {
    let n = tok.len();
    let mut i = 0;
    let neg = match tok.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut mant: u64 = 0;
    let mut digits = 0u32;
    let mut scale: i32 = 0;
    while i < n && tok[i].is_ascii_digit() {
        mant = mant * 10 + u64::from(tok[i] - b'0');
        digits += 1;
        i += 1;
        if digits > 15 {
            return None;
        }
    }
    if i < n && tok[i] == b'.' {
        i += 1;
        while i < n && tok[i].is_ascii_digit() {
            mant = mant * 10 + u64::from(tok[i] - b'0');
            digits += 1;
            scale -= 1;
            i += 1;
            if digits > 15 {
                return None;
            }
        }
    }
    if digits == 0 {
        return None;
    }
    if i < n && (tok[i] == b'e' || tok[i] == b'E') {
        i += 1;
        let eneg = match tok.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut e: i32 = 0;
        while i < n && tok[i].is_ascii_digit() {
            e = e * 10 + i32::from(tok[i] - b'0');
            i += 1;
            if i - start > 4 {
                return None;
            }
        }
        if i == start {
            return None;
        }
        scale += if eneg { -e } else { e };
    }
    if i != n {
        return None;
    }
    if mant == 0 {
        return Some(if neg { -0.0 } else { 0.0 });
    }
    if !(-22..=22).contains(&scale) {
        return None;
    }
    let m = mant as f64;
    let y = if scale < 0 {
        m / POW10[(-scale) as usize]
    } else {
        m * POW10[scale as usize]
    };
    // Outside the normal f32 range, or exactly on an f32 rounding midpoint: let the general parser decide.
    if !(f32::MIN_POSITIVE as f64..=f32::MAX as f64).contains(&y) {
        return None;
    }
    let dropped = y.to_bits() & ((1u64 << 29) - 1);
    if dropped == 1u64 << 28 {
        return None;
    }
    let v = y as f32;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_float_path_agrees_with_std_parse() {
        // Deterministic pseudo-random tokens in the published format and a few others.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let r = next();
            let mant = 10_000_000 + r % 90_000_000;
            let exp = (r >> 32) % 30;
            let sign = if (r >> 40) & 1 == 1 { "-" } else { "" };
            let esign = if (r >> 41) & 1 == 1 { "-" } else { "+" };
            let s = format!(
                "{sign}{}.{:07}e{esign}{:03}",
                mant / 10_000_000,
                mant % 10_000_000,
                exp
            );
            let want: f32 = s.parse().expect("valid");
            let got = parse_f32(s.as_bytes()).expect("parses");
            assert_eq!(got.to_bits(), want.to_bits(), "{s}");
        }
        for s in [
            "0",
            "-0.0",
            "1",
            "+2.5",
            "1e5",
            "3.4028235e38",
            "1.1754944e-38",
            "1e-45",
            "7e-46",
            "123456789012345678",
            "0.1",
            ".5",
            "5.",
            "1E-3",
        ] {
            let want: f32 = s.parse().expect("valid");
            assert_eq!(
                parse_f32(s.as_bytes()).map(f32::to_bits),
                Some(want.to_bits()),
                "{s}"
            );
        }
        for s in ["abc", "1e", "e5", "-", "1.2.3", "1e+-3", "--1", ""] {
            assert_eq!(parse_f32(s.as_bytes()), None, "{s}");
        }
    }

    #[test]
    fn lines_are_streamed_across_chunk_boundaries() {
        // Lines longer than nothing in particular, spread over several reads of 7 bytes.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(7);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let text = b"first line\r\n\nthird,x\nlast without newline";
        let mut got = Vec::new();
        let n = for_each_line(Trickle(text), "t", |i, l| {
            got.push((i, String::from_utf8(l.to_vec()).unwrap()));
            Ok(())
        })
        .unwrap();
        assert_eq!(n, text.len() as u64);
        assert_eq!(
            got,
            [
                (1, "first line".to_string()),
                (2, String::new()),
                (3, "third,x".to_string()),
                (4, "last without newline".to_string())
            ]
        );
        let mut count = 0;
        for_each_line(&b"a\nb\n"[..], "t", |_, _| {
            count += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(count, 2);
    }

    #[test]
    fn fields_are_split_and_counted() {
        let mut out = [&b""[..]; 3];
        assert_eq!(split_fields(b"a,b,,d", b',', &mut out), 4);
        assert_eq!(out, [&b"a"[..], &b"b"[..], &b""[..]]);
        let mut out = [&b""[..]; 3];
        assert_eq!(split_fields(b"x", b',', &mut out), 1);
        assert_eq!(out[0], b"x");
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"1.5"), None);
    }
}
