//! The durable metadata log of a single node: one file of checksummed, length-prefixed records.
//!
//! Each entry is `length: u32 | crc32c: u32 | JSON record`. Records are rare (topic and config
//! changes), so each append is fsynced before it is acknowledged. A torn or corrupt tail left
//! by a crash is cut off at open; every complete entry before it is kept.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::framing::{next_frame, push_frame};
use crate::record::MetadataRecord;
use crate::MetadataError;

const LOG_FILE_NAME: &str = "metadata.log";

/// The append-only file of metadata records.
pub struct MetadataStore {
    /// Open for appends; records are never rewritten.
    file: File,
    /// Where the file lives, for log messages.
    path: PathBuf,
}

impl MetadataStore {
    /// Opens (or creates) the store in `dir` and returns it with every complete record in it.
    pub fn open(dir: &Path) -> Result<(MetadataStore, Vec<MetadataRecord>), MetadataError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut contents = Vec::new();
        file.read_to_end(&mut contents)?;
        let (records, valid_length) = decode_entries(&contents)?;
        if valid_length < contents.len() {
            tracing::warn!(
                path = %path.display(),
                kept_bytes = valid_length,
                dropped_bytes = contents.len() - valid_length,
                "metadata log had a torn tail; truncated"
            );
            file.set_len(valid_length as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        Ok((MetadataStore { file, path }, records))
    }

    /// Appends records durably: they are on disk when this returns.
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<(), MetadataError> {
        let mut buffer = Vec::new();
        for record in records {
            let payload = serde_json::to_vec(record).map_err(|error| MetadataError::BadRecord {
                index: 0,
                reason: error.to_string(),
            })?;
            push_frame(&payload, &mut buffer).ok_or_else(|| MetadataError::BadRecord {
                index: 0,
                reason: format!("record of {} bytes is too long", payload.len()),
            })?;
        }
        self.file.write_all(&buffer)?;
        self.file.sync_data()?;
        tracing::debug!(path = %self.path.display(), records = records.len(), "metadata records appended");
        Ok(())
    }
}

/// Decodes entries up to the first incomplete or corrupt one; returns them and the valid length.
fn decode_entries(contents: &[u8]) -> Result<(Vec<MetadataRecord>, usize), MetadataError> {
    let mut records = Vec::new();
    let mut position = 0;
    while let Some((payload, next)) = next_frame(contents, position) {
        let record = serde_json::from_slice(payload).map_err(|error| MetadataError::BadRecord {
            index: records.len() as u64,
            reason: error.to_string(),
        })?;
        records.push(record);
        position = next;
    }
    Ok((records, position))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let first = MetadataRecord::Cluster {
            cluster_id: "abc".into(),
        };
        let second = MetadataRecord::RegisterBroker {
            broker_id: 1,
            host: "h".into(),
            port: 1,
            rack: None,
            incarnation: None,
        };
        {
            let (mut store, records) = MetadataStore::open(dir.path()).unwrap();
            assert!(records.is_empty());
            store.append(&[first.clone(), second.clone()]).unwrap();
        }
        // Half an entry, as a crash mid-write would leave.
        let path = dir.path().join(LOG_FILE_NAME);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0, 0, 0, 50, 1, 2]).unwrap();
        drop(file);
        let (mut store, records) = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(records, vec![first.clone(), second.clone()]);
        store.append(std::slice::from_ref(&first)).unwrap();
        drop(store);
        let (_, records) = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(records, vec![first.clone(), second, first]);
    }
}
