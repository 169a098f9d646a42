//! The aborted-transaction index of a segment (`<base offset>.txnindex`), as Kafka's
//! `TransactionIndex`: one entry per ABORT marker in the segment, so that a `read_committed`
//! fetch can tell the consumer which producers' records to drop in the range it returns.
//!
//! The file is a flat array of 34-byte big-endian entries: `int16 version` (0),
//! `int64 producerId`, `int64 firstOffset` (the transaction's first record), `int64 lastOffset`
//! (the abort marker) and `int64 lastStableOffset` (the LSO right after the abort). Entries are
//! in increasing `lastOffset`. The file exists only once the segment holds an abort; the entries
//! are also kept in memory, as a segment rarely has many.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::checkpoint::{io_error, offset_file_name, read_optional, remove_if_present};
use crate::LogError;

/// Bytes of one entry on disk.
const ENTRY_BYTES: usize = 34;
/// The only entry version Kafka defines.
const ENTRY_VERSION: i16 = 0;

/// One aborted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
    /// The last stable offset once the abort was written: no transaction that started before
    /// it is still open, so a fetch below it needs no entry of a later segment.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut bytes = [0u8; ENTRY_BYTES];
        bytes[0..2].copy_from_slice(&ENTRY_VERSION.to_be_bytes());
        bytes[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        bytes[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        bytes[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        bytes[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<AbortedTxn, String> {
        let field = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        if version != ENTRY_VERSION {
            return Err(format!("expected entry version 0, found {version}"));
        }
        Ok(AbortedTxn {
            producer_id: field(2),
            first_offset: field(10),
            last_offset: field(18),
            last_stable_offset: field(26),
        })
    }
}

/// The aborted transactions whose marker is in one segment.
#[derive(Debug)]
pub(crate) struct TxnIndex {
    /// Where the entries are kept.
    path: PathBuf,
    /// The entries, in increasing `last_offset`.
    entries: Vec<AbortedTxn>,
    /// Open for appends once the file exists.
    file: Option<File>,
}

/// Path of the index of the segment at `base_offset`.
pub(crate) fn txn_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(offset_file_name(base_offset, "txnindex"))
}

impl TxnIndex {
    /// An empty index; its file is created with the first entry.
    pub(crate) fn empty(path: PathBuf) -> TxnIndex {
        TxnIndex {
            path,
            entries: Vec::new(),
            file: None,
        }
    }

    /// Loads the index of the segment `[base_offset, next_offset)`. Entries outside the segment
    /// (a marker cut off with a torn tail, a damaged entry and everything after it, a partial
    /// entry) are dropped and the file cut to the entries kept; recovery adds back the aborts
    /// it replays.
    pub(crate) fn load(
        path: PathBuf,
        base_offset: i64,
        next_offset: i64,
    ) -> Result<TxnIndex, LogError> {
        let Some(bytes) = read_optional(&path)? else {
            return Ok(TxnIndex::empty(path));
        };
        let mut entries = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
        for chunk in bytes.chunks_exact(ENTRY_BYTES) {
            let entry = match AbortedTxn::decode(chunk) {
                Ok(entry) => entry,
                Err(reason) => {
                    tracing::warn!(index = %path.display(), %reason, "ignoring the rest of a damaged transaction index");
                    break;
                }
            };
            let in_order = entries
                .last()
                .is_none_or(|previous: &AbortedTxn| previous.last_offset < entry.last_offset);
            if entry.last_offset < base_offset || entry.last_offset >= next_offset || !in_order {
                break;
            }
            entries.push(entry);
        }
        let mut index = TxnIndex {
            path,
            entries,
            file: None,
        };
        if index.entries.len() * ENTRY_BYTES != bytes.len() {
            tracing::info!(
                index = %index.path.display(),
                kept = index.entries.len(),
                "transaction index cut to the entries inside its segment"
            );
            index.rewrite()?;
        }
        Ok(index)
    }

    /// The entries, in increasing marker offset.
    pub(crate) fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// The offset of the newest abort marker recorded.
    pub(crate) fn last_marker_offset(&self) -> Option<i64> {
        self.entries.last().map(|entry| entry.last_offset)
    }

    /// Adds the entry of an abort marker newer than every recorded one.
    pub(crate) fn append(&mut self, entry: AbortedTxn) -> Result<(), LogError> {
        if let Some(last) = self.last_marker_offset() {
            debug_assert!(
                entry.last_offset > last,
                "abort at {} after one at {last}",
                entry.last_offset
            );
            if entry.last_offset <= last {
                return Ok(());
            }
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .map_err(io_error("open transaction index", &self.path))?,
            ),
        };
        file.write_all(&entry.encode())
            .map_err(io_error("append to transaction index", &self.path))?;
        self.entries.push(entry);
        Ok(())
    }

    /// Drops every entry whose marker is at or after `offset`.
    pub(crate) fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let kept = self
            .entries
            .partition_point(|entry| entry.last_offset < offset);
        if kept == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(kept);
        self.rewrite()
    }

    /// Writes the file anew from the entries in memory (none: no file).
    fn rewrite(&mut self) -> Result<(), LogError> {
        self.file = None;
        if self.entries.is_empty() {
            return remove_if_present(&self.path);
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&self.path)
            .map_err(io_error("open transaction index", &self.path))?;
        let length = (self.entries.len() * ENTRY_BYTES) as u64;
        file.set_len(length)
            .map_err(io_error("truncate transaction index", &self.path))?;
        drop(file);
        Ok(())
    }

    /// Flushes the entries to disk.
    pub(crate) fn sync(&self) -> Result<(), LogError> {
        match &self.file {
            Some(file) => file
                .sync_data()
                .map_err(io_error("sync transaction index", &self.path)),
            None => Ok(()),
        }
    }

    /// Adds to `aborted` the transactions of this segment that overlap `[fetch_offset,
    /// upper_bound)`, and says whether a later segment may hold more: not once an entry's
    /// last stable offset reaches `upper_bound` (every transaction open below the bound has
    /// then ended), as Kafka's `collectAbortedTxns`.
    pub(crate) fn collect(
        &self,
        fetch_offset: i64,
        upper_bound: i64,
        aborted: &mut Vec<AbortedTxn>,
    ) -> bool {
        for entry in &self.entries {
            if entry.last_offset >= fetch_offset && entry.first_offset < upper_bound {
                aborted.push(*entry);
            }
            if entry.last_stable_offset >= upper_bound {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: 7,
            first_offset,
            last_offset,
            last_stable_offset: last_offset + 1,
        }
    }

    #[test]
    fn entries_are_kafkas_34_bytes_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = txn_index_path(dir.path(), 100);
        let mut index = TxnIndex::empty(path.clone());
        assert!(!path.exists(), "no file before the first abort");
        index.append(entry(100, 105)).unwrap();
        index.append(entry(103, 110)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 68);
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes());
        assert_eq!(&bytes[18..26], &105i64.to_be_bytes());
        let reloaded = TxnIndex::load(path, 100, 200).unwrap();
        assert_eq!(reloaded.entries(), &[entry(100, 105), entry(103, 110)]);
    }

    #[test]
    fn loading_drops_entries_past_the_segment_end_and_partial_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = txn_index_path(dir.path(), 0);
        let mut index = TxnIndex::empty(path.clone());
        for (first, last) in [(0, 4), (5, 9), (10, 14)] {
            index.append(entry(first, last)).unwrap();
        }
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0, 0, 1]).unwrap();
        // The log was cut at offset 10: the marker at 14 is gone.
        let reloaded = TxnIndex::load(path.clone(), 0, 10).unwrap();
        assert_eq!(reloaded.entries(), &[entry(0, 4), entry(5, 9)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 68);
    }

    #[test]
    fn truncation_drops_markers_at_or_after_the_offset_and_the_file_with_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = txn_index_path(dir.path(), 0);
        let mut index = TxnIndex::empty(path.clone());
        index.append(entry(0, 4)).unwrap();
        index.append(entry(5, 9)).unwrap();
        index.truncate_to(9).unwrap();
        assert_eq!(index.entries(), &[entry(0, 4)]);
        index.append(entry(6, 12)).unwrap();
        assert_eq!(
            TxnIndex::load(path.clone(), 0, 20).unwrap().entries(),
            &[entry(0, 4), entry(6, 12)]
        );
        index.truncate_to(0).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn collecting_stops_at_the_first_entry_whose_stable_offset_reaches_the_bound() {
        let index = TxnIndex {
            path: PathBuf::new(),
            entries: vec![
                AbortedTxn {
                    producer_id: 1,
                    first_offset: 0,
                    last_offset: 10,
                    last_stable_offset: 3,
                },
                AbortedTxn {
                    producer_id: 2,
                    first_offset: 3,
                    last_offset: 12,
                    last_stable_offset: 20,
                },
                AbortedTxn {
                    producer_id: 3,
                    first_offset: 15,
                    last_offset: 25,
                    last_stable_offset: 26,
                },
            ],
            file: None,
        };
        let mut aborted = Vec::new();
        assert!(!index.collect(11, 18, &mut aborted));
        let producers: Vec<_> = aborted.iter().map(|entry| entry.producer_id).collect();
        assert_eq!(
            producers,
            [2],
            "the first ended before 11, the third starts after 18"
        );
        aborted.clear();
        assert!(index.collect(0, 100, &mut aborted));
        assert_eq!(aborted.len(), 3);
    }
}
