//! Errors of the data layer: one-line messages that name the file, the line and the offending value.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while locating, downloading, verifying or parsing a dataset.
///
/// `file` fields hold a display name: a path for extracted files, or `member in archive` for zip members.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A signal line does not hold exactly one window of values.
    #[error("{file}: line {line}: expected {expected} values, found {found}")]
    WrongValueCount {
        /// File (or archive member) being parsed.
        file: String,
        /// 1-based line number.
        line: usize,
        /// Values a line must hold (the window length).
        expected: usize,
        /// Values found on the line.
        found: usize,
    },

    /// A label or subject line does not hold exactly one integer.
    #[error("{file}: line {line}: expected one integer, found {found} values")]
    NotOneValue {
        /// File (or archive member) being parsed.
        file: String,
        /// 1-based line number.
        line: usize,
        /// Values found on the line.
        found: usize,
    },

    /// A token that does not parse as a number.
    #[error("{file}: line {line}: value {token:?} is not a number")]
    NotANumber {
        /// File (or archive member) being parsed.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The offending token.
        token: String,
    },

    /// A label or subject token that does not parse as an integer.
    #[error("{file}: line {line}: value {token:?} is not an integer")]
    NotAnInteger {
        /// File (or archive member) being parsed.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The offending token.
        token: String,
    },

    /// A NaN or infinity in the signals.
    #[error("{file}: line {line}: non-finite value {token}")]
    NonFinite {
        /// File (or archive member) being parsed.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The offending token.
        token: String,
    },

    /// A finite number too large for `f32`.
    #[error("{file}: line {line}: value {token} is out of the f32 range")]
    OutOfRange {
        /// File (or archive member) being parsed.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The offending token.
        token: String,
    },

    /// A class label outside the dataset's label range.
    #[error("{file}: line {line}: label {value} outside {min}..{max}")]
    LabelOutOfRange {
        /// File (or archive member) being parsed.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The label found.
        value: i64,
        /// Smallest valid label.
        min: i64,
        /// Largest valid label.
        max: i64,
    },

    /// A subject (domain) id outside the dataset's id range (ids must be positive).
    #[error("{file}: line {line}: subject {value} outside {min}..{max}")]
    SubjectOutOfRange {
        /// File (or archive member) being parsed.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The subject id found.
        value: i64,
        /// Smallest valid id.
        min: u32,
        /// Largest valid id.
        max: u32,
    },

    /// Two files that must describe the same windows have different line counts.
    #[error("{file}: {lines} lines, but {other_file} has {other_lines}; both must have one line per window")]
    LineCountMismatch {
        /// The file whose count disagrees.
        file: String,
        /// Its line count.
        lines: usize,
        /// The reference file.
        other_file: String,
        /// The reference line count.
        other_lines: usize,
    },

    /// Neither the archive nor the extracted folder is where it should be.
    #[error(
        "{title} archive not found: expected {} (or the extracted folder {}/). \
         Get it with `codats datasets download {name}`, or download {url} yourself and put it there.",
        path.display(),
        folder.display()
    )]
    ArchiveNotFound {
        /// Human name of the dataset (`UCI HAR`).
        title: String,
        /// Registry name (`ucihar`).
        name: String,
        /// Where the archive was expected.
        path: PathBuf,
        /// Where the extracted folder was expected.
        folder: PathBuf,
        /// Where the archive can be downloaded from.
        url: String,
    },

    /// The file is not a readable zip archive (truncated or corrupt).
    #[error("{}: not a readable zip archive (truncated or corrupt): {reason}", path.display())]
    CorruptArchive {
        /// The archive.
        path: PathBuf,
        /// What the zip reader reported.
        reason: String,
    },

    /// An expected member is absent from the archive.
    #[error("{}: member {member:?} is missing", archive.display())]
    MissingMember {
        /// The archive.
        archive: PathBuf,
        /// Full member name inside the archive.
        member: String,
    },

    /// A member's uncompressed size differs from the published one.
    #[error("{}: member {member:?} is {found} bytes, expected {expected}", archive.display())]
    WrongMemberSize {
        /// The archive.
        archive: PathBuf,
        /// Full member name inside the archive.
        member: String,
        /// Published size in bytes.
        expected: u64,
        /// Size found (declared by the archive, or read).
        found: u64,
    },

    /// A member's data does not match its CRC-32.
    #[error("{}: member {member:?} fails its CRC-32 check (expected {expected:08x}, computed {found:08x}): the archive is corrupt", archive.display())]
    CrcMismatch {
        /// The archive.
        archive: PathBuf,
        /// Full member name inside the archive.
        member: String,
        /// CRC-32 recorded in the archive.
        expected: u32,
        /// CRC-32 of the data read.
        found: u32,
    },

    /// A member's compressed data cannot be decoded.
    #[error("{}: member {member:?} cannot be decompressed: {reason}", archive.display())]
    CorruptMember {
        /// The archive.
        archive: PathBuf,
        /// Full member name inside the archive.
        member: String,
        /// What the decompressor reported.
        reason: String,
    },

    /// The HTTP download failed (connection, status, short body).
    #[error("could not download {url}: {reason}. Without network access, put the file at {}", path.display())]
    Download {
        /// The URL.
        url: String,
        /// Where the file should end up.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// The download completed but the file is not the expected archive.
    #[error("downloaded {url}, but it is not the expected archive (nothing was saved at {}): {source}", path.display())]
    DownloadVerify {
        /// The URL.
        url: String,
        /// Where the file would have been saved.
        path: PathBuf,
        /// The verification failure.
        source: Box<DataError>,
    },

    /// A built-in dataset description is invalid.
    #[error("dataset spec {name}: {reason}")]
    Spec {
        /// Spec name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A malformed line in a text input: wrong number of fields, a value that is not a number, an
    /// unknown name. The reason names the field and the offending value.
    #[error("{file}: line {line}: {reason}")]
    BadLine {
        /// File (or archive member) being parsed.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong, with the offending value.
        reason: String,
    },

    /// A read or decompression error part-way through a file.
    #[error("{file}: cannot read past line {line}: {source}")]
    Read {
        /// File (or archive member) being read.
        file: String,
        /// Lines read successfully before the error.
        line: usize,
        /// The underlying error.
        source: io::Error,
    },

    /// A dataset's files are not where they should be.
    #[error("{title}: no data found in {}: {hint}", dir.display())]
    NotFound {
        /// Human name of the dataset.
        title: String,
        /// The folder (or file) that was searched.
        dir: PathBuf,
        /// What was looked for, and how to get it.
        hint: String,
    },

    /// An input codats cannot read as is and the user must convert first (uWave's `.rar` files).
    #[error("{}: {reason}", path.display())]
    NeedsExtraction {
        /// The file that needs converting.
        path: PathBuf,
        /// What to do.
        reason: String,
    },

    /// A problem with a whole file: a table's missing column, wrong type, null or non-finite value
    /// (naming column and row), a gesture file name without a gesture index, an empty recording.
    #[error("{file}: {reason}")]
    BadFile {
        /// The file.
        file: String,
        /// What is wrong, naming the column, row or value.
        reason: String,
    },

    /// Loader options that cannot work (a window of length 0, a tabular run without columns...).
    #[error("{0}")]
    Options(String),

    /// The input parsed, but no window could be cut from it.
    #[error("{name}: no windows: {reason}")]
    NoWindows {
        /// Dataset name.
        name: String,
        /// Why (too short, every row skipped, ...).
        reason: String,
    },

    /// A file's sha256 differs from the one the dataset description records.
    #[error("{}: sha256 is {found}, expected {expected}; the file is damaged or not the published archive", path.display())]
    Sha256Mismatch {
        /// The file.
        path: PathBuf,
        /// Recorded sha256 (hex).
        expected: String,
        /// Computed sha256 (hex).
        found: String,
    },

    /// The preprocessed-window cache could not be read back or written.
    #[error("cache {}: {reason}", path.display())]
    Cache {
        /// Cache file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// An I/O error on a named path.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl DataError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
