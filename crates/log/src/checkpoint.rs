//! Small files written atomically: file names, the log-start-offset checkpoint and the
//! clean-shutdown marker.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::LogError;

/// Records the log start offset moved by DeleteRecords and retention.
pub(crate) const LOG_START_OFFSET_FILE: &str = "log-start-offset";
/// Present only between `close()` and the next `open()`; its absence means a crash.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
/// Suffix of a file being written, never trusted on open.
pub(crate) const TEMPORARY_SUFFIX: &str = ".tmp";

/// `<20-digit offset>.<extension>`, so that names sort by offset.
pub(crate) fn offset_file_name(offset: i64, extension: &str) -> String {
    format!("{offset:020}.{extension}")
}

/// Parses a name made by [`offset_file_name`], returning the offset and extension.
pub(crate) fn parse_offset_file_name(name: &str) -> Option<(i64, &str)> {
    let (stem, extension) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, extension))
}

pub(crate) fn io_error(
    operation: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> LogError {
    let path = path.to_path_buf();
    move |source| LogError::Io {
        operation,
        path,
        source,
    }
}

/// fsyncs a directory so that creations, renames and deletions in it are durable.
pub(crate) fn sync_directory(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(io_error("sync directory", dir))
}

/// Replaces `dir/name` with `contents` so that a crash leaves either the old or the new file.
pub fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> Result<(), LogError> {
    let final_path = dir.join(name);
    let temporary_path = dir.join(format!("{name}{TEMPORARY_SUFFIX}"));
    let mut file = File::create(&temporary_path).map_err(io_error("create", &temporary_path))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io_error("write", &temporary_path))?;
    fs::rename(&temporary_path, &final_path).map_err(io_error("rename", &final_path))?;
    sync_directory(dir)
}

/// Reads a file that may legitimately be absent.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    match fs::read(path) {
        Ok(contents) => Ok(Some(contents)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error("read", path)(error)),
    }
}

/// Removes a file that may already be gone.
pub(crate) fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error("remove", path)(error)),
    }
}

/// Writes the log start offset as text: a version line, then the offset.
pub(crate) fn write_log_start_offset(dir: &Path, log_start_offset: i64) -> Result<(), LogError> {
    write_offset_file(dir, LOG_START_OFFSET_FILE, log_start_offset)
}

/// Reads the log start offset checkpoint; a damaged file counts as absent (the segments still
/// bound the start offset from below).
pub(crate) fn read_log_start_offset(dir: &Path) -> Result<Option<i64>, LogError> {
    read_offset_file(dir, LOG_START_OFFSET_FILE)
}

/// Writes a one-offset checkpoint atomically: a version line, then the offset.
pub(crate) fn write_offset_file(dir: &Path, file_name: &str, offset: i64) -> Result<(), LogError> {
    write_atomically(dir, file_name, format!("0\n{offset}\n").as_bytes())
}

/// Reads a one-offset checkpoint; missing or damaged counts as absent.
pub(crate) fn read_offset_file(dir: &Path, file_name: &str) -> Result<Option<i64>, LogError> {
    let path = dir.join(file_name);
    let Some(contents) = read_optional(&path)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&contents);
    let mut lines = text.lines();
    let parsed = match (lines.next(), lines.next()) {
        (Some("0"), Some(offset)) => offset.trim().parse::<i64>().ok(),
        _ => None,
    };
    if parsed.is_none() {
        tracing::warn!(path = %path.display(), "ignoring damaged offset checkpoint");
    }
    Ok(parsed)
}

/// Path of the clean-shutdown marker in `dir`.
pub(crate) fn clean_shutdown_path(dir: &Path) -> PathBuf {
    dir.join(CLEAN_SHUTDOWN_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_file_names_round_trip_and_sort() {
        let name = offset_file_name(42, "log");
        assert_eq!(name, "00000000000000000042.log");
        assert_eq!(parse_offset_file_name(&name), Some((42, "log")));
        assert!(offset_file_name(9, "log") < offset_file_name(10, "log"));
        assert_eq!(parse_offset_file_name("log-start-offset"), None);
        assert_eq!(
            parse_offset_file_name("00000000000000000042.log.tmp"),
            Some((42, "log.tmp"))
        );
    }

    #[test]
    fn log_start_offset_checkpoint_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_log_start_offset(dir.path()).unwrap(), None);
        write_log_start_offset(dir.path(), 1234).unwrap();
        assert_eq!(read_log_start_offset(dir.path()).unwrap(), Some(1234));
        fs::write(dir.path().join(LOG_START_OFFSET_FILE), b"garbage").unwrap();
        assert_eq!(read_log_start_offset(dir.path()).unwrap(), None);
    }
}
