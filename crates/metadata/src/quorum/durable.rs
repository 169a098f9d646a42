//! Small files replaced whole and atomically: the vote, the committed pointer, the snapshot.
//!
//! A file is written to a temporary name, fsynced, renamed over the old one, and the directory
//! is fsynced, so after a crash it holds either the old or the new contents, never a mix.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Writes `value` as JSON to `path`, durably and atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let contents = serde_json::to_vec(value).map_err(io::Error::other)?;
    let temporary = path.with_extension("tmp");
    {
        let mut file = File::create(&temporary)?;
        file.write_all(&contents)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, path)?;
    sync_parent_directory(path)
}

/// Reads JSON written by [`write_json`]; `None` when the file does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    let contents = match fs::read(path) {
        Ok(contents) => contents,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let value = serde_json::from_slice(&contents).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not valid: {error}", path.display()),
        )
    })?;
    Ok(Some(value))
}

/// Makes a rename or a newly created file in `path`'s directory survive a crash.
pub(crate) fn sync_parent_directory(path: &Path) -> io::Result<()> {
    let directory = path.parent().unwrap_or_else(|| Path::new("."));
    File::open(directory)?.sync_all()
}

/// Runs blocking file work on tokio's blocking pool, off the reactor threads.
pub(crate) async fn blocking<T, F>(work: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_value_reads_back_and_an_absent_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value.json");
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), None);
        write_json(&path, &vec![1u32, 2]).unwrap();
        write_json(&path, &vec![3u32]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), Some(vec![3]));
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_absent_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value.json");
        fs::write(&path, b"{not json").unwrap();
        let error = read_json::<Vec<u32>>(&path).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
