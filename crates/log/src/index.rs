//! Sparse indexes of a segment: offset → file position, and timestamp → offset.
//!
//! Entries live in memory (a 1 GiB segment with a 4 KiB interval has ~260k entries, 2 MiB) and
//! are appended to their files with positional writes. Index files are never preallocated, so a
//! file whose size is not a multiple of the entry size was torn. Indexes are derived data: any
//! doubt about one and it is rebuilt from the log.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::io_error;
use crate::LogError;

/// relative offset u32 + file position u32.
pub(crate) const OFFSET_INDEX_ENTRY_SIZE: usize = 8;
/// timestamp i64 + relative offset u32.
pub(crate) const TIME_INDEX_ENTRY_SIZE: usize = 12;

/// One sparse offset-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetIndexEntry {
    /// Base offset of an indexed batch minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of that batch in the segment's log file.
    pub position: u32,
}

/// One time-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeIndexEntry {
    /// Largest record timestamp in the segment up to the indexed point.
    pub timestamp: i64,
    /// Base offset (relative) of the batch holding that timestamp.
    pub relative_offset: u32,
}

fn open_index_file(path: &Path, truncate: bool) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
        .map_err(io_error("open index", path))
}

/// Reads an index file; `Ok(None)` if it is missing.
fn read_index_file(path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    crate::checkpoint::read_optional(path)
}

/// Sparse map from offsets to file positions.
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    /// The index file, for appends and fsync.
    file: Arc<File>,
    /// Where the file lives, for rebuilds and errors.
    path: PathBuf,
    /// Entries in increasing order of offset and position.
    entries: Vec<OffsetIndexEntry>,
}

impl OffsetIndex {
    /// A new, empty index, discarding any file at `path`.
    pub(crate) fn create(path: &Path) -> Result<OffsetIndex, LogError> {
        Ok(OffsetIndex {
            file: Arc::new(open_index_file(path, true)?),
            path: path.to_path_buf(),
            entries: Vec::new(),
        })
    }

    /// Loads and checks an existing index. `Ok(Err(reason))` means it must be rebuilt.
    pub(crate) fn load(
        path: &Path,
        log_size: u64,
    ) -> Result<Result<OffsetIndex, String>, LogError> {
        let Some(contents) = read_index_file(path)? else {
            return Ok(Err("offset index is missing".to_string()));
        };
        if contents.len() % OFFSET_INDEX_ENTRY_SIZE != 0 {
            return Ok(Err(format!(
                "offset index size {} is not a multiple of {OFFSET_INDEX_ENTRY_SIZE}",
                contents.len()
            )));
        }
        let mut entries = Vec::with_capacity(contents.len() / OFFSET_INDEX_ENTRY_SIZE);
        for chunk in contents.chunks_exact(OFFSET_INDEX_ENTRY_SIZE) {
            let entry = OffsetIndexEntry {
                relative_offset: u32::from_be_bytes(chunk[0..4].try_into().expect("four bytes")),
                position: u32::from_be_bytes(chunk[4..8].try_into().expect("four bytes")),
            };
            if u64::from(entry.position) >= log_size {
                return Ok(Err(format!(
                    "offset index entry points at byte {} past the log end {log_size}",
                    entry.position
                )));
            }
            if let Some(previous) = entries.last() {
                let previous: &OffsetIndexEntry = previous;
                if entry.relative_offset <= previous.relative_offset
                    || entry.position <= previous.position
                {
                    return Ok(Err("offset index entries are not increasing".to_string()));
                }
            }
            entries.push(entry);
        }
        Ok(Ok(OffsetIndex {
            file: Arc::new(open_index_file(path, false)?),
            path: path.to_path_buf(),
            entries,
        }))
    }

    pub(crate) fn append(&mut self, relative_offset: u32, position: u32) -> Result<(), LogError> {
        if let Some(last) = self.entries.last() {
            debug_assert!(relative_offset > last.relative_offset && position > last.position);
        }
        let mut bytes = [0u8; OFFSET_INDEX_ENTRY_SIZE];
        bytes[0..4].copy_from_slice(&relative_offset.to_be_bytes());
        bytes[4..8].copy_from_slice(&position.to_be_bytes());
        let at = (self.entries.len() * OFFSET_INDEX_ENTRY_SIZE) as u64;
        self.file
            .write_all_at(&bytes, at)
            .map_err(io_error("append offset index", &self.path))?;
        self.entries.push(OffsetIndexEntry {
            relative_offset,
            position,
        });
        Ok(())
    }

    /// Position of the last indexed batch whose base offset is at most `relative_offset`;
    /// 0 when there is none. Scanning from there finds the batch holding the offset.
    pub(crate) fn lookup(&self, relative_offset: u32) -> u32 {
        let after = self
            .entries
            .partition_point(|entry| entry.relative_offset <= relative_offset);
        if after == 0 {
            0
        } else {
            self.entries[after - 1].position
        }
    }

    pub(crate) fn last(&self) -> Option<OffsetIndexEntry> {
        self.entries.last().copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn sync(&self) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(io_error("sync offset index", &self.path))
    }
}

/// Sparse map from timestamps to offsets.
#[derive(Debug)]
pub(crate) struct TimeIndex {
    /// The index file, for appends and fsync.
    file: Arc<File>,
    /// Where the file lives, for rebuilds and errors.
    path: PathBuf,
    /// Entries with strictly increasing timestamps.
    entries: Vec<TimeIndexEntry>,
}

impl TimeIndex {
    /// A new, empty index, discarding any file at `path`.
    pub(crate) fn create(path: &Path) -> Result<TimeIndex, LogError> {
        Ok(TimeIndex {
            file: Arc::new(open_index_file(path, true)?),
            path: path.to_path_buf(),
            entries: Vec::new(),
        })
    }

    /// Loads and checks an existing index. `Ok(Err(reason))` means it must be rebuilt.
    pub(crate) fn load(path: &Path) -> Result<Result<TimeIndex, String>, LogError> {
        let Some(contents) = read_index_file(path)? else {
            return Ok(Err("time index is missing".to_string()));
        };
        if contents.len() % TIME_INDEX_ENTRY_SIZE != 0 {
            return Ok(Err(format!(
                "time index size {} is not a multiple of {TIME_INDEX_ENTRY_SIZE}",
                contents.len()
            )));
        }
        let mut entries: Vec<TimeIndexEntry> =
            Vec::with_capacity(contents.len() / TIME_INDEX_ENTRY_SIZE);
        for chunk in contents.chunks_exact(TIME_INDEX_ENTRY_SIZE) {
            let entry = TimeIndexEntry {
                timestamp: i64::from_be_bytes(chunk[0..8].try_into().expect("eight bytes")),
                relative_offset: u32::from_be_bytes(chunk[8..12].try_into().expect("four bytes")),
            };
            if let Some(previous) = entries.last() {
                if entry.timestamp <= previous.timestamp
                    || entry.relative_offset < previous.relative_offset
                {
                    return Ok(Err("time index entries are not increasing".to_string()));
                }
            }
            entries.push(entry);
        }
        Ok(Ok(TimeIndex {
            file: Arc::new(open_index_file(path, false)?),
            path: path.to_path_buf(),
            entries,
        }))
    }

    /// Appends an entry if `timestamp` is newer than the last one; older ones add nothing.
    pub(crate) fn maybe_append(
        &mut self,
        timestamp: i64,
        relative_offset: u32,
    ) -> Result<(), LogError> {
        if let Some(last) = self.entries.last() {
            if timestamp <= last.timestamp {
                return Ok(());
            }
            debug_assert!(relative_offset >= last.relative_offset);
        }
        let mut bytes = [0u8; TIME_INDEX_ENTRY_SIZE];
        bytes[0..8].copy_from_slice(&timestamp.to_be_bytes());
        bytes[8..12].copy_from_slice(&relative_offset.to_be_bytes());
        let at = (self.entries.len() * TIME_INDEX_ENTRY_SIZE) as u64;
        self.file
            .write_all_at(&bytes, at)
            .map_err(io_error("append time index", &self.path))?;
        self.entries.push(TimeIndexEntry {
            timestamp,
            relative_offset,
        });
        Ok(())
    }

    /// The last entry with a timestamp below `timestamp`: no record before its batch can be
    /// at or after `timestamp`.
    pub(crate) fn last_entry_before(&self, timestamp: i64) -> Option<TimeIndexEntry> {
        let after = self
            .entries
            .partition_point(|entry| entry.timestamp < timestamp);
        after.checked_sub(1).map(|index| self.entries[index])
    }

    pub(crate) fn last(&self) -> Option<TimeIndexEntry> {
        self.entries.last().copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn sync(&self) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(io_error("sync time index", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_finds_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut index = OffsetIndex::create(&path).unwrap();
        index.append(10, 100).unwrap();
        index.append(20, 200).unwrap();
        assert_eq!(index.lookup(5), 0);
        assert_eq!(index.lookup(10), 100);
        assert_eq!(index.lookup(19), 100);
        assert_eq!(index.lookup(25), 200);
        let reloaded = OffsetIndex::load(&path, 1_000).unwrap().unwrap();
        assert_eq!(reloaded.len(), 2);
        assert!(OffsetIndex::load(&path, 150).unwrap().is_err());
    }

    #[test]
    fn time_index_skips_older_timestamps_and_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut index = TimeIndex::create(&path).unwrap();
        index.maybe_append(100, 0).unwrap();
        index.maybe_append(90, 3).unwrap();
        index.maybe_append(200, 5).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.last_entry_before(100), None);
        assert_eq!(index.last_entry_before(150).unwrap().relative_offset, 0);
        assert_eq!(TimeIndex::load(&path).unwrap().unwrap().len(), 2);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, b"xx"))
            .unwrap();
        assert!(TimeIndex::load(&path).unwrap().is_err());
    }
}
