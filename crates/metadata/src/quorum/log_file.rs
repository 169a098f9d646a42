//! The raft log on disk: one append-only file of checksummed records.
//!
//! Each record is `length: u32 | crc32c: u32 | JSON`, big endian, as in the single-node store.
//! The first record may be a `Purged` marker naming the last entry a purge removed; every other
//! record is one log entry, in index order without gaps. Appends are fsynced before they are
//! reported durable. A truncate cuts the file where the first removed entry starts. A purge
//! rewrites the file (temporary file, rename), which is cheap because the metadata log is small
//! and purged only after a snapshot. A torn or corrupt tail left by a crash is cut off at open;
//! every complete entry before it is kept.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::durable::sync_parent_directory;
use super::types::{Entry, LogId};
use crate::framing::{next_frame, push_frame};

/// The file's name inside the quorum directory.
pub(crate) const LOG_FILE_NAME: &str = "raft.log";

/// One record of the file, as read back.
#[derive(Deserialize)]
enum LogRecord {
    /// Entries up to and including this id were purged before the file was written.
    Purged(LogId),
    /// A log entry.
    Entry(Entry),
}

/// One record of the file, as written; borrows so appends do not clone entries.
#[derive(Serialize)]
enum LogRecordRef<'a> {
    /// See [`LogRecord::Purged`].
    Purged(&'a LogId),
    /// See [`LogRecord::Entry`].
    Entry(&'a Entry),
}

/// What a reopened file holds.
#[derive(Debug, Default)]
pub(crate) struct RecoveredLog {
    /// The last purged entry, if the log was ever purged.
    pub purged: Option<LogId>,
    /// Every complete entry, in index order.
    pub entries: Vec<Entry>,
}

/// The open log file and where its entries are.
pub(crate) struct LogFile {
    /// Open for appends; rewritten only by a purge.
    file: File,
    /// Where the file lives, for rewrites and log messages.
    path: PathBuf,
    /// Byte offset at which each entry's record starts, by log index, so a truncate knows where
    /// to cut and a purge what to keep.
    offsets: BTreeMap<u64, u64>,
    /// Length of the file, all of it valid records.
    length: u64,
}

impl LogFile {
    /// Opens (or creates) the log in `dir`, cutting off a torn tail, and returns what it holds.
    pub(crate) fn open(dir: &Path) -> io::Result<(LogFile, RecoveredLog)> {
        let path = dir.join(LOG_FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        // The file may have just been created; its directory entry must survive a crash too.
        sync_parent_directory(&path)?;
        let mut contents = Vec::new();
        file.read_to_end(&mut contents)?;
        let decoded = decode_log(&contents)?;
        if decoded.valid_length < contents.len() {
            tracing::warn!(
                path = %path.display(),
                kept_bytes = decoded.valid_length,
                dropped_bytes = contents.len() - decoded.valid_length,
                "raft log had a torn tail; truncated"
            );
            file.set_len(decoded.valid_length as u64)?;
            file.sync_all()?;
        }
        let log_file = LogFile {
            file,
            path,
            offsets: decoded.offsets,
            length: decoded.valid_length as u64,
        };
        Ok((log_file, decoded.log))
    }

    /// Appends entries durably: they are on disk when this returns.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buffer = Vec::new();
        let mut offsets = Vec::with_capacity(entries.len());
        for entry in entries {
            offsets.push((entry.log_id.index, self.length + buffer.len() as u64));
            encode_record(&LogRecordRef::Entry(entry), &mut buffer)?;
        }
        self.file.write_all(&buffer)?;
        self.file.sync_data()?;
        self.length += buffer.len() as u64;
        self.offsets.extend(offsets);
        Ok(())
    }

    /// Removes the entry at `index` and every later one, durably.
    pub(crate) fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        let Some((_, &cut_at)) = self.offsets.range(index..).next() else {
            return Ok(());
        };
        self.file.set_len(cut_at)?;
        self.file.sync_data()?;
        self.offsets.split_off(&index);
        self.length = cut_at;
        Ok(())
    }

    /// Removes every entry up to and including `purged`, durably, remembering `purged`.
    pub(crate) fn purge_through(&mut self, purged: &LogId) -> io::Result<()> {
        let kept_offsets = self.offsets.split_off(&(purged.index + 1));
        let keep_from = kept_offsets.values().next().copied().unwrap_or(self.length);
        let mut contents = Vec::new();
        encode_record(&LogRecordRef::Purged(purged), &mut contents)?;
        let header_length = contents.len() as u64;
        let mut kept = vec![0; (self.length - keep_from) as usize];
        self.file.read_exact_at(&mut kept, keep_from)?;
        contents.extend_from_slice(&kept);
        self.replace_contents(&contents)?;
        self.offsets = kept_offsets
            .into_iter()
            .map(|(index, offset)| (index, offset - keep_from + header_length))
            .collect();
        self.length = contents.len() as u64;
        Ok(())
    }

    /// Replaces the whole file atomically and reopens it for appends.
    fn replace_contents(&mut self, contents: &[u8]) -> io::Result<()> {
        let temporary = self.path.with_extension("tmp");
        {
            let mut file = File::create(&temporary)?;
            file.write_all(contents)?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &self.path)?;
        sync_parent_directory(&self.path)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)?;
        Ok(())
    }
}

/// A decoded file: its log, where each entry starts, and how much of it is valid.
struct DecodedLog {
    /// The purge marker and the entries.
    log: RecoveredLog,
    /// Byte offset of each entry's record, by index.
    offsets: BTreeMap<u64, u64>,
    /// Bytes of complete, intact records from the start.
    valid_length: usize,
}

/// Decodes records up to the first incomplete or corrupt one.
///
/// A record whose checksum holds but whose contents make no sense (bad JSON, an entry out of
/// order) is not a torn write but damage or a bug, and is an error rather than a silent cut.
fn decode_log(contents: &[u8]) -> io::Result<DecodedLog> {
    let mut decoded = DecodedLog {
        log: RecoveredLog::default(),
        offsets: BTreeMap::new(),
        valid_length: 0,
    };
    while let Some((payload, next_position)) = next_frame(contents, decoded.valid_length) {
        let record: LogRecord = serde_json::from_slice(payload).map_err(|error| {
            invalid_data(format!(
                "raft log record at byte {} is not valid: {error}",
                decoded.valid_length
            ))
        })?;
        match record {
            LogRecord::Purged(log_id) if decoded.valid_length == 0 => {
                decoded.log.purged = Some(log_id)
            }
            LogRecord::Purged(_) => {
                return Err(invalid_data(format!(
                    "raft log has a purge marker at byte {}, expected one only at the start",
                    decoded.valid_length
                )))
            }
            LogRecord::Entry(entry) => {
                check_next_index(&decoded.log, &entry)?;
                decoded
                    .offsets
                    .insert(entry.log_id.index, decoded.valid_length as u64);
                decoded.log.entries.push(entry);
            }
        }
        decoded.valid_length = next_position;
    }
    Ok(decoded)
}

/// Checks that `entry` directly follows the last entry (or the purge marker) of `log`.
fn check_next_index(log: &RecoveredLog, entry: &Entry) -> io::Result<()> {
    let previous = log
        .entries
        .last()
        .map(|last| last.log_id.index)
        .or(log.purged.map(|purged| purged.index));
    let expected = match previous {
        None => entry.log_id.index,
        Some(index) => index.checked_add(1).ok_or_else(|| {
            invalid_data(format!("raft log entry index {index} has no successor"))
        })?,
    };
    if entry.log_id.index == expected {
        return Ok(());
    }
    Err(invalid_data(format!(
        "raft log entry has index {}, expected {expected}",
        entry.log_id.index
    )))
}

/// Appends one framed record to `buffer`.
fn encode_record(record: &LogRecordRef<'_>, buffer: &mut Vec<u8>) -> io::Result<()> {
    let payload = serde_json::to_vec(record).map_err(io::Error::other)?;
    push_frame(&payload, buffer)
        .ok_or_else(|| invalid_data(format!("raft log record of {} bytes", payload.len())))
}

/// An `InvalidData` error with `message`.
fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::record::MetadataRecord;

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(vec![MetadataRecord::ProducerIds {
                next_producer_id: index as i64,
            }]),
        }
    }

    fn indexes(log: &RecoveredLog) -> Vec<u64> {
        log.entries.iter().map(|entry| entry.log_id.index).collect()
    }

    fn file_length(dir: &Path) -> u64 {
        std::fs::metadata(dir.join(LOG_FILE_NAME)).unwrap().len()
    }

    #[test]
    fn a_torn_tail_is_cut_at_reopen_keeping_every_complete_entry() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, recovered) = LogFile::open(dir.path()).unwrap();
            assert!(recovered.entries.is_empty());
            log.append(&[entry(0), entry(1), entry(2)]).unwrap();
        }
        let complete_length = file_length(dir.path());
        // Half a record, as a crash in the middle of a write leaves.
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE_NAME))
            .unwrap();
        file.write_all(&[0, 0, 0, 90, 1, 2, 3, b'{']).unwrap();
        drop(file);

        let (mut log, recovered) = LogFile::open(dir.path()).unwrap();
        assert_eq!(indexes(&recovered), vec![0, 1, 2]);
        assert_eq!(recovered.entries[2].payload, entry(2).payload);
        assert_eq!(file_length(dir.path()), complete_length);

        log.append(&[entry(3)]).unwrap();
        drop(log);
        let (_, recovered) = LogFile::open(dir.path()).unwrap();
        assert_eq!(indexes(&recovered), vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_record_with_a_bad_checksum_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = LogFile::open(dir.path()).unwrap();
            log.append(&[entry(0), entry(1)]).unwrap();
        }
        let path = dir.path().join(LOG_FILE_NAME);
        let mut contents = std::fs::read(&path).unwrap();
        let last = contents.len() - 2;
        contents[last] ^= 0xff;
        std::fs::write(&path, &contents).unwrap();

        let (_, recovered) = LogFile::open(dir.path()).unwrap();
        assert_eq!(indexes(&recovered), vec![0]);
    }

    #[test]
    fn truncate_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = LogFile::open(dir.path()).unwrap();
            log.append(&(0..6).map(entry).collect::<Vec<_>>()).unwrap();
            log.truncate_from(4).unwrap();
            log.purge_through(&entry(1).log_id).unwrap();
            log.append(&[entry(4)]).unwrap();
            log.truncate_from(4).unwrap();
            log.append(&[entry(4), entry(5)]).unwrap();
        }
        let (mut log, recovered) = LogFile::open(dir.path()).unwrap();
        assert_eq!(recovered.purged, Some(entry(1).log_id));
        assert_eq!(indexes(&recovered), vec![2, 3, 4, 5]);

        log.purge_through(&entry(9).log_id).unwrap();
        drop(log);
        let (_, recovered) = LogFile::open(dir.path()).unwrap();
        assert_eq!(recovered.purged, Some(entry(9).log_id));
        assert!(recovered.entries.is_empty());
    }

    #[test]
    fn an_intact_entry_out_of_order_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = LogFile::open(dir.path()).unwrap();
            log.append(&[entry(0), entry(2)]).unwrap();
        }
        let error = LogFile::open(dir.path()).err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
