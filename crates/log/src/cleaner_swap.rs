//! The cleaner's files: its checkpoint, and the swap of cleaned segments into place with the
//! crash rules described in the `cleaner` module.

use std::fs;
use std::path::Path;

use crate::checkpoint::{
    io_error, offset_file_name, read_offset_file, read_optional, remove_if_present, sync_directory,
    write_offset_file,
};
use crate::segment::delete_segment_files;
use crate::LogError;

/// Offsets below the one in this file have been compacted.
pub(crate) const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// Present only while cleaned segments replace old ones; its presence commits the swap.
pub(crate) const SWAP_FILE: &str = "cleaner-swap";
/// Prefix of the directory inside the partition directory where a job writes its segments;
/// each job has its own, so a second job can never delete the files of a first one.
pub(crate) const CLEANED_DIR_PREFIX: &str = "cleaned-";

/// Writes the cleaner checkpoint (a version line, then the offset).
pub(crate) fn write_cleaner_checkpoint(dir: &Path, offset: i64) -> Result<(), LogError> {
    write_offset_file(dir, CLEANER_CHECKPOINT_FILE, offset)
}

/// Reads the cleaner checkpoint; missing or damaged counts as absent (everything is dirty).
pub(crate) fn read_cleaner_checkpoint(dir: &Path) -> Result<Option<i64>, LogError> {
    read_offset_file(dir, CLEANER_CHECKPOINT_FILE)
}

/// One cleaned segment waiting in the job's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CleanedSegment {
    /// Base offset of the first replaced segment; names the files.
    pub(crate) base_offset: i64,
    /// Base offsets of the segments it replaces, its own first.
    pub(crate) replaced_base_offsets: Vec<i64>,
}

/// `cleaner-swap`: a version line, the job's directory, a count line, then one line per
/// cleaned segment: its base offset followed by the base offsets it replaces.
pub(crate) fn encode_swap(cleaned_dir_name: &str, cleaned: &[CleanedSegment]) -> Vec<u8> {
    let mut text = format!("0\n{cleaned_dir_name}\n{}\n", cleaned.len());
    for segment in cleaned {
        text.push_str(&segment.base_offset.to_string());
        for replaced in &segment.replaced_base_offsets {
            text.push(' ');
            text.push_str(&replaced.to_string());
        }
        text.push('\n');
    }
    text.into_bytes()
}

fn decode_swap(text: &str) -> Option<(String, Vec<CleanedSegment>)> {
    let mut lines = text.lines();
    if lines.next()? != "0" {
        return None;
    }
    let cleaned_dir_name = lines.next()?;
    let suffix = cleaned_dir_name.strip_prefix(CLEANED_DIR_PREFIX)?;
    if suffix.is_empty() || !suffix.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut cleaned = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let offsets = lines
            .next()?
            .split_whitespace()
            .map(|offset| offset.parse::<i64>().ok())
            .collect::<Option<Vec<i64>>>()?;
        let (&base_offset, replaced_base_offsets) = offsets.split_first()?;
        if replaced_base_offsets.first() != Some(&base_offset) {
            return None;
        }
        cleaned.push(CleanedSegment {
            base_offset,
            replaced_base_offsets: replaced_base_offsets.to_vec(),
        });
    }
    Some((cleaned_dir_name.to_string(), cleaned))
}

/// Moves cleaned segments into place. Idempotent, so recovery can run it again after a crash
/// at any point: it deletes what it replaces (if still there) and renames what is still in
/// the job's directory, a segment's log last so that the cleaned log never sits beside an old index.
pub(crate) fn apply_swap(
    dir: &Path,
    cleaned_dir_name: &str,
    cleaned: &[CleanedSegment],
) -> Result<(), LogError> {
    let cleaned_dir = dir.join(cleaned_dir_name);
    for segment in cleaned {
        for &replaced in &segment.replaced_base_offsets {
            if replaced != segment.base_offset {
                delete_segment_files(dir, replaced)?;
            }
        }
        let cleaned_log = cleaned_dir.join(offset_file_name(segment.base_offset, "log"));
        let log_still_pending = cleaned_log.exists();
        for extension in ["index", "timeindex", "txnindex", "log"] {
            let name = offset_file_name(segment.base_offset, extension);
            let source = cleaned_dir.join(&name);
            let target = dir.join(&name);
            if source.exists() {
                fs::rename(&source, &target).map_err(io_error("rename", &target))?;
            } else if log_still_pending {
                // No cleaned index to go with the cleaned log: let open rebuild it.
                remove_if_present(&target)?;
            }
        }
    }
    sync_directory(dir)
}

pub(crate) fn remove_cleaned_dir(cleaned_dir: &Path) -> Result<(), LogError> {
    match fs::remove_dir_all(cleaned_dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error("remove", cleaned_dir)(error)),
    }
}

/// At open: finishes a swap whose `cleaner-swap` file exists, and deletes every job
/// directory.
pub(crate) fn recover_interrupted_swap(dir: &Path) -> Result<(), LogError> {
    let swap_path = dir.join(SWAP_FILE);
    let mut changed = false;
    if let Some(contents) = read_optional(&swap_path)? {
        match decode_swap(&String::from_utf8_lossy(&contents)) {
            Some((cleaned_dir_name, cleaned)) => {
                tracing::warn!(dir = %dir.display(), segments = cleaned.len(), "finishing an interrupted compaction swap");
                apply_swap(dir, &cleaned_dir_name, &cleaned)?;
            }
            // Written atomically, so damage is not a torn write; the old segments are trusted.
            None => {
                tracing::warn!(path = %swap_path.display(), "ignoring damaged compaction swap file")
            }
        }
        remove_if_present(&swap_path)?;
        changed = true;
    }
    for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
        let entry = entry.map_err(io_error("list", dir))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(CLEANED_DIR_PREFIX)
        {
            remove_cleaned_dir(&entry.path())?;
            changed = true;
        }
    }
    if changed {
        sync_directory(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::checkpoint::write_atomically;
    use std::collections::HashMap;

    use cauce_protocol::records;

    use super::*;
    use crate::config::LogConfig;
    use crate::log::Log;

    fn compacting() -> LogConfig {
        LogConfig {
            cleanup_policy_compact: true,
            cleanup_policy_delete: false,
            ..LogConfig::default()
        }
    }

    /// A log of `updates` single-record batches over `keys` keys, rolled so all is sealed.
    fn log_with_updates(dir: &Path, updates: usize, keys: usize) -> Log {
        use cauce_protocol::records::{build_batch, BatchOptions, NewRecord};
        let config = LogConfig {
            segment_bytes: 2 * 1024,
            index_interval_bytes: 128,
            min_cleanable_dirty_ratio: 0.0,
            ..compacting()
        };
        let mut log = Log::open(dir, config).unwrap();
        for update in 0..updates {
            let record = NewRecord {
                timestamp_ms: 1_000,
                key: Some(format!("k{}", update % keys).into_bytes()),
                value: Some(format!("v{update}").into_bytes()),
                headers: Vec::new(),
            };
            let mut bytes = build_batch(0, &[record], &BatchOptions::default()).unwrap();
            log.append(&mut bytes, 0, 10_000).unwrap();
        }
        log.roll(10_000).unwrap();
        log
    }

    /// Key → (offset, value) of every readable record, checking each key appears once.
    fn latest_records(log: &Log) -> HashMap<String, (i64, String)> {
        let mut found = HashMap::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let slice = log.read(offset, 1 << 20, i64::MAX).unwrap();
            if slice.is_empty() {
                break;
            }
            let bytes = slice.read_bytes().unwrap();
            for found_batch in cauce_protocol::batch::BatchIter::new(&bytes) {
                let (header, decoded) =
                    records::decode_batch(found_batch.bytes, usize::MAX).unwrap();
                for record in decoded {
                    let key = String::from_utf8(record.key.clone().unwrap().to_vec()).unwrap();
                    let value = String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap();
                    let previous = found.insert(key, (record.offset(&header), value));
                    assert!(previous.is_none(), "one record per key");
                }
                offset = header.next_offset();
            }
        }
        found
    }

    #[test]
    fn a_swap_interrupted_after_its_commit_point_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with_updates(dir.path(), 2_000, 20);
        let segments_before = log.segment_count();
        let compacted = log.compaction_job(10_000).unwrap().run().unwrap();
        let merged = compacted
            .cleaned
            .iter()
            .find(|cleaned| cleaned.replaced_base_offsets.len() > 1)
            .expect("small cleaned segments merge")
            .clone();
        // Crash in the middle of apply_swap: marker written, one replaced segment deleted,
        // only the offset index of the merged segment renamed.
        let cleaned_dir_name = compacted.cleaned_dir_name.clone();
        let swap = encode_swap(&cleaned_dir_name, &compacted.cleaned);
        write_atomically(dir.path(), SWAP_FILE, &swap).unwrap();
        delete_segment_files(dir.path(), merged.replaced_base_offsets[1]).unwrap();
        let index_name = offset_file_name(merged.base_offset, "index");
        fs::rename(
            dir.path().join(&cleaned_dir_name).join(&index_name),
            dir.path().join(&index_name),
        )
        .unwrap();
        drop(compacted);
        drop(log);

        let log = Log::open(dir.path(), compacting()).unwrap();
        assert!(!dir.path().join(SWAP_FILE).exists());
        assert!(!dir.path().join(&cleaned_dir_name).exists());
        assert!(log.segment_count() < segments_before);
        let latest = latest_records(&log);
        assert_eq!(latest.len(), 20);
        for key in 0..20 {
            let last_update = 2_000 - 20 + key;
            assert_eq!(
                latest[&format!("k{key}")],
                (last_update as i64, format!("v{last_update}"))
            );
        }
    }

    #[test]
    fn swap_file_round_trips() {
        let cleaned = vec![
            CleanedSegment {
                base_offset: 0,
                replaced_base_offsets: vec![0, 10, 20],
            },
            CleanedSegment {
                base_offset: 30,
                replaced_base_offsets: vec![30],
            },
        ];
        let text = String::from_utf8(encode_swap("cleaned-3", &cleaned)).unwrap();
        assert_eq!(decode_swap(&text), Some(("cleaned-3".to_string(), cleaned)));
        assert_eq!(decode_swap("0\ncleaned-3\n1\n5 6\n"), None);
        assert_eq!(decode_swap("0\ncleaned-3\n2\n5 5\n"), None);
        assert_eq!(decode_swap("0\n../x\n1\n5 5\n"), None);
    }
}
