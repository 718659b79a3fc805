//! The one error type of ringdb.
//!
//! `Error` is `Clone` (I/O errors sit behind an `Arc`) so that a single failed
//! fdatasync can be handed to every writer whose records it covered.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in ringdb.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    Io {
        /// What ringdb was doing, e.g. `"write wal segment"`.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The error the kernel (or the simulated disk) returned.
        source: Arc<io::Error>,
    },
    /// Bytes read from disk are not what ringdb wrote: a checksum mismatch,
    /// an impossible length, a truncated record in the middle of the log.
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset in the file where the damage was found.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// An fdatasync of the WAL failed earlier. The kernel may have dropped the
    /// dirty pages, so the store refuses writes until it is reopened; reads
    /// still work.
    Poisoned {
        /// The original failure.
        cause: Arc<Error>,
    },
    /// A key, value or batch is larger than the documented limit.
    TooLarge {
        /// `"key"`, `"value"`, `"batch"` or [`Error::ENTRY_COUNT`] (then the
        /// two sizes count entries, not bytes).
        what: &'static str,
        /// The offending size.
        size_bytes: usize,
        /// The limit it exceeded.
        limit_bytes: usize,
    },
    /// Writes are stopped: a flush or compaction could not write a table
    /// for lack of space (the half-made table is gone, nothing references
    /// it). Reads go on; the store retries in the background and writes
    /// resume by themselves once a retried table write succeeds, with no
    /// reopen.
    NoSpace {
        /// The failed table write.
        cause: Arc<Error>,
    },
    /// An option has a value ringdb cannot work with.
    InvalidOptions(String),
    /// A merge could not be applied: no `Options::merge_operator` is set
    /// for a store that holds merge operands, or the operator refused them.
    MergeFailed {
        /// The key whose operands were being folded.
        key: bytes::Bytes,
        /// Why.
        reason: String,
    },
    /// The database was closed.
    Closed,
    /// ringdb broke one of its own invariants (a bug, not bad input or bad
    /// bytes on disk): reported instead of a panic where the store can
    /// refuse the one operation and go on.
    Internal {
        /// What went wrong.
        what: String,
    },
}

/// `Result` with ringdb's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The `what` of a [`Error::TooLarge`] for a batch with too many
    /// entries: its sizes count entries.
    pub const ENTRY_COUNT: &'static str = "batch entry count";

    /// `error` as [`Error::NoSpace`] if it is an I/O error for lack of
    /// space, else unchanged. For table writes only: a WAL or manifest
    /// write that fails for lack of space stays final.
    pub(crate) fn table_write_stopped(error: Error) -> Error {
        match &error {
            Error::Io { source, .. }
                if source.raw_os_error() == Some(libc::ENOSPC)
                    || source.kind() == io::ErrorKind::StorageFull =>
            {
                Error::NoSpace {
                    cause: Arc::new(error),
                }
            }
            _ => error,
        }
    }

    /// Wraps an `io::Error` with the operation and path it came from.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// Builds an [`Error::Corruption`].
    pub(crate) fn corruption(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corruption {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // NOTE: some operations have no file (starting a backend); an
            // empty path would print as a stray space before the colon.
            Error::Io { op, path, source } if path.as_os_str().is_empty() => write!(f, "{op}: {source}"),
            Error::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            Error::Corruption { path, offset, reason } => {
                write!(f, "corruption in {} at offset {offset}: {reason}", path.display())
            }
            Error::Poisoned { cause } => {
                write!(f, "writes refused until reopen after a failed WAL sync: {cause}")
            }
            Error::TooLarge {
                what,
                size_bytes,
                limit_bytes,
            } if *what == Error::ENTRY_COUNT => write!(
                f,
                "batch of {size_bytes} entries exceeds the limit of {limit_bytes} entries"
            ),
            Error::TooLarge {
                what,
                size_bytes,
                limit_bytes,
            } => {
                write!(
                    f,
                    "{what} of {size_bytes} bytes exceeds the limit of {limit_bytes} bytes"
                )
            }
            Error::NoSpace { cause } => write!(
                f,
                "writes are stopped until a retried flush or compaction finds space: {cause}"
            ),
            Error::InvalidOptions(why) => write!(f, "invalid options: {why}"),
            Error::MergeFailed { key, reason } => write!(f, "merge of key {key:?} failed: {reason}"),
            Error::Closed => write!(f, "the database is closed"),
            Error::Internal { what } => write!(f, "internal error (a ringdb bug): {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source.as_ref()),
            Error::Poisoned { cause } | Error::NoSpace { cause } => Some(cause.as_ref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_name_their_path_only_when_there_is_one() {
        let denied = || io::Error::from_raw_os_error(libc::EPERM);
        let without = Error::io("start io_uring", PathBuf::new(), denied()).to_string();
        assert!(without.starts_with("start io_uring: "), "{without}");
        let with = Error::io("open", "/d/LOCK", denied()).to_string();
        assert!(with.starts_with("open /d/LOCK: "), "{with}");
    }

    #[test]
    fn too_large_names_its_unit() {
        let entries = Error::TooLarge {
            what: Error::ENTRY_COUNT,
            size_bytes: 11,
            limit_bytes: 10,
        };
        assert_eq!(
            entries.to_string(),
            "batch of 11 entries exceeds the limit of 10 entries"
        );
        let value = Error::TooLarge {
            what: "value",
            size_bytes: 11,
            limit_bytes: 10,
        };
        assert_eq!(
            value.to_string(),
            "value of 11 bytes exceeds the limit of 10 bytes"
        );
    }
}
