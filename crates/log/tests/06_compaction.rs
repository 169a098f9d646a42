//! Log compaction: `cleanup.policy=compact` and `compact,delete`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use cauce_log::{Log, LogConfig};
use cauce_protocol::batch::{self, BatchHeader, BatchIter};
use cauce_protocol::compression::Compression;
use cauce_protocol::records::{build_batch, decode_batch, BatchOptions, NewRecord, Record};

/// Clock used for appends; record timestamps are close to it.
const APPEND_NOW_MS: i64 = 1_000_000;

/// Compact-only, small segments, cleaned whenever anything is dirty.
fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 256,
        cleanup_policy_compact: true,
        cleanup_policy_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

/// A batch of keyed records (`None` value = tombstone), all at `timestamp_ms`.
fn keyed_batch(
    records: &[(String, Option<String>)],
    timestamp_ms: i64,
    compression: Compression,
) -> Vec<u8> {
    let records: Vec<NewRecord> = records
        .iter()
        .map(|(key, value)| NewRecord {
            timestamp_ms,
            key: Some(key.clone().into_bytes()),
            value: value.clone().map(String::into_bytes),
            headers: Vec::new(),
        })
        .collect();
    let options = BatchOptions {
        compression,
        ..BatchOptions::default()
    };
    build_batch(0, &records, &options).unwrap()
}

fn put(log: &mut Log, key: &str, value: &str, timestamp_ms: i64) -> i64 {
    let mut bytes = keyed_batch(
        &[(key.to_string(), Some(value.to_string()))],
        timestamp_ms,
        Compression::None,
    );
    log.append(&mut bytes, 0, APPEND_NOW_MS)
        .unwrap()
        .base_offset
}

fn delete(log: &mut Log, key: &str, timestamp_ms: i64) -> i64 {
    let mut bytes = keyed_batch(&[(key.to_string(), None)], timestamp_ms, Compression::None);
    log.append(&mut bytes, 0, APPEND_NOW_MS)
        .unwrap()
        .base_offset
}

/// Every batch readable from the log start, with its records, CRC-checked.
fn read_batches(log: &Log) -> Vec<(BatchHeader, Vec<Record>)> {
    let mut offset = log.log_start_offset();
    let mut batches = Vec::new();
    while offset < log.log_end_offset() {
        let slice = log.read(offset, 1 << 20, i64::MAX).unwrap();
        if slice.is_empty() {
            break;
        }
        let bytes = slice.read_bytes().unwrap();
        let mut iter = BatchIter::new(&bytes);
        for found in iter.by_ref() {
            batch::verify_crc(&found.header, found.bytes).unwrap();
            let (header, records) = decode_batch(found.bytes, usize::MAX).unwrap();
            assert!(header.next_offset() > offset, "reads move forward");
            offset = header.next_offset();
            batches.push((header, records));
        }
        assert!(iter.stop_reason().is_none(), "reads return whole batches");
    }
    batches
}

/// (offset, key, value) of every readable record.
type Entry = (i64, String, Option<String>);

fn read_records(log: &Log) -> Vec<Entry> {
    read_batches(log)
        .into_iter()
        .flat_map(|(header, records)| {
            records.into_iter().map(move |record| {
                (
                    record.offset(&header),
                    String::from_utf8(record.key.clone().unwrap().to_vec()).unwrap(),
                    record
                        .value
                        .map(|value| String::from_utf8(value.to_vec()).unwrap()),
                )
            })
        })
        .collect()
}

/// Key → (offset, value) of the latest record of each key.
fn latest_by_key(entries: &[Entry]) -> BTreeMap<String, (i64, Option<String>)> {
    let mut latest = BTreeMap::new();
    for (offset, key, value) in entries {
        latest.insert(key.clone(), (*offset, value.clone()));
    }
    latest
}

/// 20,000 updates over 200 keys in batches of 10; returns what was written.
fn write_updates(log: &mut Log) -> Vec<Entry> {
    let mut written = Vec::new();
    for batch_index in 0..2_000 {
        let records: Vec<(String, Option<String>)> = (0..10)
            .map(|in_batch| {
                let update = batch_index * 10 + in_batch;
                (
                    format!("key-{}", (update * 7) % 200),
                    Some(format!("value-{update}")),
                )
            })
            .collect();
        let mut bytes = keyed_batch(&records, 1_000 + batch_index as i64, Compression::None);
        let base = log
            .append(&mut bytes, 0, APPEND_NOW_MS)
            .unwrap()
            .base_offset;
        for (index, (key, value)) in records.into_iter().enumerate() {
            written.push((base + index as i64, key, value));
        }
    }
    written
}

/// Whether a compaction job's directory of cleaned segments is in the partition directory.
fn cleaned_dir_exists(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("cleaned-")
    })
}

#[test]
fn latest_value_per_key_survives_and_offsets_do_not_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    let written = write_updates(&mut log);
    log.roll(APPEND_NOW_MS).unwrap();
    let segments_before = log.segment_count();
    let size_before = log.size_bytes();
    let log_end_before = log.log_end_offset();
    assert!(segments_before > 20, "many small segments");

    let outcome = log.compact_now(APPEND_NOW_MS).unwrap().unwrap();
    assert!(outcome.installed);
    assert_eq!(outcome.records_removed, 20_000 - 200);
    assert_eq!(outcome.cleaned_up_to_offset, log_end_before);
    assert_eq!(log.cleaner_checkpoint(), log_end_before);
    assert_eq!(outcome.bytes_before, size_before);
    assert_eq!(log.size_bytes(), outcome.bytes_after);
    assert!(log.size_bytes() < size_before / 10);
    assert!(
        log.segment_count() < segments_before,
        "small cleaned segments merge"
    );
    assert_eq!(log.log_end_offset(), log_end_before);
    assert_eq!(log.log_start_offset(), 0);
    assert!(!cleaned_dir_exists(dir.path()));

    let expected = latest_by_key(&written);
    let read = read_records(&log);
    assert_eq!(read.len(), 200, "exactly one record per key");
    assert_eq!(latest_by_key(&read), expected);
    for (offset, key, value) in &read {
        assert_eq!(expected[key], (*offset, value.clone()));
    }

    // A fetch inside a removed range returns the next retained batch.
    let retained: Vec<i64> = read.iter().map(|entry| entry.0).collect();
    let removed = (1..log_end_before)
        .find(|offset| !retained.contains(offset))
        .unwrap();
    let next_retained = *retained.iter().find(|offset| **offset > removed).unwrap();
    let slice = log.read(removed, 1, i64::MAX).unwrap();
    let bytes = slice.read_bytes().unwrap();
    let (header, records) = decode_batch(&bytes, usize::MAX).unwrap();
    assert!(header.last_offset() >= removed);
    let first_at_or_after = records
        .iter()
        .map(|record| record.offset(&header))
        .find(|offset| *offset >= removed)
        .unwrap();
    assert_eq!(first_at_or_after, next_retained);

    // A second pass with nothing new to clean is not due.
    assert!(log.compact_now(APPEND_NOW_MS).unwrap().is_none());
}

#[test]
fn active_segment_is_never_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    for round in 0..50 {
        put(&mut log, "sealed", &format!("s{round}"), 1_000);
    }
    log.roll(APPEND_NOW_MS).unwrap();
    let active_base = log.log_end_offset();
    for round in 0..50 {
        put(&mut log, "active", &format!("a{round}"), 1_000);
        put(&mut log, "sealed", &format!("late{round}"), 1_000);
    }
    let active_records_before: Vec<Entry> = read_records(&log)
        .into_iter()
        .filter(|entry| entry.0 >= active_base)
        .collect();

    let outcome = log.compact_now(APPEND_NOW_MS).unwrap().unwrap();
    assert!(outcome.installed);
    assert_eq!(outcome.cleaned_up_to_offset, active_base);
    let read = read_records(&log);
    let active_records_after: Vec<Entry> = read
        .iter()
        .filter(|entry| entry.0 >= active_base)
        .cloned()
        .collect();
    assert_eq!(active_records_after, active_records_before);
    assert_eq!(
        active_records_after.len(),
        100,
        "duplicates in the active segment stay"
    );
    // The sealed part keeps its last "sealed" value: the newer ones are in the active segment.
    let sealed_part: Vec<&Entry> = read.iter().filter(|entry| entry.0 < active_base).collect();
    assert_eq!(sealed_part.len(), 1);
    assert_eq!(sealed_part[0].0, 49);
    assert_eq!(*log.segment_base_offsets().last().unwrap(), active_base);
}

#[test]
fn tombstones_are_removed_after_delete_retention_ms() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: 10_000,
        ..compact_config()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let written_at = 100_000;
    put(&mut log, "gone", "v1", written_at);
    put(&mut log, "gone", "v2", written_at);
    put(&mut log, "kept", "v", written_at);
    let tombstone_offset = delete(&mut log, "gone", written_at);
    log.roll(APPEND_NOW_MS).unwrap();

    // First pass: the tombstone supersedes the older values and stays.
    let first = log.compact_now(written_at + 1_000).unwrap().unwrap();
    assert_eq!((first.records_removed, first.tombstones_removed), (2, 0));
    assert_eq!(
        read_records(&log),
        vec![
            (2, "kept".to_string(), Some("v".to_string())),
            (tombstone_offset, "gone".to_string(), None),
        ]
    );

    // Second pass: the tombstone is clean now but younger than delete.retention.ms.
    put(&mut log, "other", "x", written_at);
    log.roll(APPEND_NOW_MS).unwrap();
    let second = log.compact_now(written_at + 5_000).unwrap().unwrap();
    assert!(second.installed);
    assert_eq!(second.tombstones_removed, 0);
    assert!(read_records(&log).contains(&(tombstone_offset, "gone".to_string(), None)));

    // Third pass, past delete.retention.ms: the clean tombstone goes. A tombstone just as old
    // but still dirty (never survived a pass) stays until the next pass.
    let late_tombstone_offset = delete(&mut log, "late", written_at);
    log.roll(APPEND_NOW_MS).unwrap();
    let third = log.compact_now(written_at + 20_000).unwrap().unwrap();
    assert_eq!(third.tombstones_removed, 1);
    let read = read_records(&log);
    assert!(!read.iter().any(|entry| entry.1 == "gone"));
    assert!(read.contains(&(late_tombstone_offset, "late".to_string(), None)));
    assert!(read.contains(&(2, "kept".to_string(), Some("v".to_string()))));

    put(&mut log, "another", "y", written_at);
    log.roll(APPEND_NOW_MS).unwrap();
    let fourth = log.compact_now(written_at + 20_000).unwrap().unwrap();
    assert_eq!(fourth.tombstones_removed, 1);
    assert!(!read_records(&log).iter().any(|entry| entry.1 == "late"));
}

#[test]
fn min_compaction_lag_ms_protects_recent_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_compaction_lag_ms: 10_000,
        ..compact_config()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    for round in 0..20 {
        put(&mut log, "old", &format!("o{round}"), 100_000);
    }
    log.roll(APPEND_NOW_MS).unwrap();
    let recent_base = log.log_end_offset();
    for round in 0..20 {
        put(&mut log, "recent", &format!("r{round}"), 195_000);
    }
    log.roll(APPEND_NOW_MS).unwrap();

    // At 200,000 only the first segment is 10 s old.
    let outcome = log.compact_now(200_000).unwrap().unwrap();
    assert_eq!(outcome.records_removed, 19);
    assert_eq!(log.cleaner_checkpoint(), recent_base);
    let read = read_records(&log);
    assert_eq!(read.iter().filter(|entry| entry.1 == "recent").count(), 20);
    assert_eq!(read.iter().filter(|entry| entry.1 == "old").count(), 1);

    // Everything recent is too young: not due at all.
    assert!(log.compaction_job(200_000).is_none());
    // Later it is.
    let later = log.compact_now(206_000).unwrap().unwrap();
    assert_eq!(later.records_removed, 19);
    assert_eq!(read_records(&log).len(), 2);
}

#[test]
fn dirty_ratio_below_threshold_skips_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        ..compact_config()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    for key in 0..100 {
        put(&mut log, &format!("k{key}"), "first", 1_000);
    }
    log.roll(APPEND_NOW_MS).unwrap();
    // All dirty: ratio 1.
    let first = log.compact_now(APPEND_NOW_MS).unwrap().unwrap();
    assert_eq!(first.records_removed, 0);
    let clean_size = log.size_bytes();

    // A few updates: far below half the log.
    for key in 0..10 {
        put(&mut log, &format!("k{key}"), "second", 1_000);
    }
    log.roll(APPEND_NOW_MS).unwrap();
    assert!(log.compaction_job(APPEND_NOW_MS).is_none());
    assert!(log.compact_now(APPEND_NOW_MS).unwrap().is_none());
    assert_eq!(read_records(&log).len(), 110, "nothing removed");

    // Enough updates to make the dirty part at least half the cleanable log.
    for key in 0..100 {
        put(&mut log, &format!("k{key}"), "third", 1_000);
    }
    log.roll(APPEND_NOW_MS).unwrap();
    assert!(log.size_bytes() >= 2 * clean_size);
    let outcome = log.compact_now(APPEND_NOW_MS).unwrap().unwrap();
    assert_eq!(outcome.records_removed, 110);
    let read = read_records(&log);
    assert_eq!(read.len(), 100);
    assert!(read.iter().all(|entry| entry.2.as_deref() == Some("third")));
}

#[test]
fn max_compaction_lag_forces_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.9,
        max_compaction_lag_ms: 60_000,
        ..compact_config()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    for key in 0..100 {
        put(&mut log, &format!("k{key}"), "first", 100_000);
    }
    log.roll(APPEND_NOW_MS).unwrap();
    log.compact_now(100_000).unwrap().unwrap();
    for key in 0..10 {
        put(&mut log, &format!("k{key}"), "second", 150_000);
    }
    log.roll(APPEND_NOW_MS).unwrap();
    // The dirty ratio is low and the dirty records are 50 s old.
    assert!(log.compact_now(200_000).unwrap().is_none());
    // At 61 s the lag forces a pass.
    let outcome = log.compact_now(211_000).unwrap().unwrap();
    assert!(outcome.installed);
    assert_eq!(outcome.records_removed, 10);
    assert_eq!(read_records(&log).len(), 100);
}

#[test]
fn compacted_log_survives_reopen_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    let mut written = write_updates(&mut log);
    log.roll(APPEND_NOW_MS).unwrap();
    log.compact_now(APPEND_NOW_MS).unwrap().unwrap();
    let checkpoint = log.cleaner_checkpoint();
    // Data in the active segment after the pass.
    for key in 0..5 {
        let value = format!("after-{key}");
        let offset = put(&mut log, &format!("key-{key}"), &value, 5_000);
        written.push((offset, format!("key-{key}"), Some(value)));
    }
    let before_close = read_records(&log);
    let log_end = log.log_end_offset();
    log.close().unwrap();

    let log = Log::open(dir.path(), compact_config()).unwrap();
    assert_eq!(read_records(&log), before_close);
    assert_eq!(log.cleaner_checkpoint(), checkpoint);
    assert_eq!(log.log_end_offset(), log_end);
    // Unclean: dropped without close, as after kill -9.
    drop(log);
    let log = Log::open(dir.path(), compact_config()).unwrap();
    assert_eq!(read_records(&log), before_close);
    assert_eq!(log.cleaner_checkpoint(), checkpoint);

    // Indexes of cleaned segments are rebuilt if lost.
    for base in log.segment_base_offsets() {
        let _ = std::fs::remove_file(dir.path().join(format!("{base:020}.index")));
    }
    drop(log);
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    assert_eq!(read_records(&log), before_close);

    // And compaction goes on from where it was.
    log.roll(APPEND_NOW_MS).unwrap();
    log.compact_now(APPEND_NOW_MS).unwrap().unwrap();
    let read = read_records(&log);
    assert_eq!(read.len(), 200);
    assert_eq!(latest_by_key(&read), latest_by_key(&written));
}

#[test]
fn compression_codec_is_preserved() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    let mut codec_by_base = HashMap::new();
    for round in 0..20 {
        for compression in [Compression::Lz4, Compression::Zstd] {
            // Half the keys of each batch are rewritten by the next batch of the same codec.
            let records: Vec<(String, Option<String>)> = (0..10)
                .map(|index| {
                    let key = if index % 2 == 0 {
                        format!("{compression:?}-shared-{index}")
                    } else {
                        format!("{compression:?}-{round}-{index}")
                    };
                    (key, Some(format!("{round}-{index}")))
                })
                .collect();
            let mut bytes = keyed_batch(&records, 1_000, compression);
            let base = log
                .append(&mut bytes, 0, APPEND_NOW_MS)
                .unwrap()
                .base_offset;
            codec_by_base.insert(base, compression);
        }
    }
    log.roll(APPEND_NOW_MS).unwrap();
    let outcome = log.compact_now(APPEND_NOW_MS).unwrap().unwrap();
    assert_eq!(outcome.records_removed, 2 * 19 * 5);

    let batches = read_batches(&log);
    assert_eq!(batches.len(), 40, "every batch keeps its odd keys");
    for (header, records) in &batches {
        assert_eq!(
            header.compression().unwrap(),
            codec_by_base[&header.base_offset]
        );
        assert_eq!(header.last_offset_delta, 9, "the next offset stays");
        let last_round = header.base_offset >= 38 * 10;
        assert_eq!(records.len(), if last_round { 10 } else { 5 });
    }
}

#[test]
fn compaction_result_is_discarded_if_segments_changed() {
    // DeleteRecords between the job and its install.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    write_updates(&mut log);
    log.roll(APPEND_NOW_MS).unwrap();
    let job = log.compaction_job(APPEND_NOW_MS).unwrap();
    let compacted = job.run().unwrap();
    assert!(cleaned_dir_exists(dir.path()));
    let second_base = log.segment_base_offsets()[1];
    log.delete_records_before(second_base).unwrap();
    let before = read_records(&log);
    let size_before = log.size_bytes();
    let outcome = log.install_compaction(compacted).unwrap();
    assert!(!outcome.installed);
    assert_eq!(read_records(&log), before);
    assert_eq!(log.size_bytes(), size_before);
    assert_eq!(log.cleaner_checkpoint(), 0);
    assert!(!cleaned_dir_exists(dir.path()));
    // A fresh job works.
    assert!(log.compact_now(APPEND_NOW_MS).unwrap().unwrap().installed);

    // Retention between the job and its install.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cleanup_policy_delete: true,
        retention_ms: 1_000,
        ..compact_config()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    for round in 0..200 {
        put(&mut log, &format!("k{}", round % 10), "v", 1_000 + round);
    }
    log.roll(APPEND_NOW_MS).unwrap();
    let compacted = log.compaction_job(1_500).unwrap().run().unwrap();
    let retention = log.enforce_retention(5_000).unwrap();
    assert!(retention.deleted_segments > 0);
    let before = read_records(&log);
    assert!(!log.install_compaction(compacted).unwrap().installed);
    assert_eq!(read_records(&log), before);

    // Truncation (follower) between the job and its install.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    write_updates(&mut log);
    let compacted = log.compaction_job(APPEND_NOW_MS).unwrap().run().unwrap();
    let middle = log.segment_base_offsets()[3] + 1;
    log.truncate_to(middle).unwrap();
    let before = read_records(&log);
    assert!(!log.install_compaction(compacted).unwrap().installed);
    assert_eq!(read_records(&log), before);
}

#[test]
fn compact_and_delete_policy_applies_both() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cleanup_policy_delete: true,
        retention_ms: 50_000,
        ..compact_config()
    };
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    for round in 0..100 {
        put(
            &mut log,
            &format!("old-{}", round % 5),
            &format!("{round}"),
            10_000,
        );
    }
    log.roll(APPEND_NOW_MS).unwrap();
    let recent_base = log.log_end_offset();
    for round in 0..100 {
        put(
            &mut log,
            &format!("new-{}", round % 5),
            &format!("{round}"),
            100_000,
        );
    }
    log.roll(APPEND_NOW_MS).unwrap();

    // retention.ms removes the old segments...
    let retention = log.enforce_retention(100_000).unwrap();
    assert!(retention.deleted_segments > 0);
    assert!(log.log_start_offset() <= recent_base);
    assert!(read_records(&log)
        .iter()
        .all(|entry| entry.1.starts_with("new-")));
    // ...and compaction the duplicates of what is left.
    let outcome = log.compact_now(100_000).unwrap().unwrap();
    assert!(outcome.installed);
    let read = read_records(&log);
    assert_eq!(read.len(), 5);
    assert!(read.iter().all(|entry| entry.1.starts_with("new-")));
    // Compacted segments still expire.
    let later = log.enforce_retention(200_000).unwrap();
    assert!(later.deleted_segments > 0);
    assert!(read_records(&log).is_empty());

    // The same data under compact alone: retention.ms deletes nothing.
    let dir = tempfile::tempdir().unwrap();
    let compact_only = LogConfig {
        cleanup_policy_delete: false,
        ..config
    };
    let mut log = Log::open(dir.path(), compact_only).unwrap();
    for round in 0..100 {
        put(
            &mut log,
            &format!("old-{}", round % 5),
            &format!("{round}"),
            10_000,
        );
    }
    log.roll(APPEND_NOW_MS).unwrap();
    log.compact_now(100_000).unwrap().unwrap();
    let retention = log.enforce_retention(100_000).unwrap();
    assert_eq!(retention.deleted_segments, 0);
    assert_eq!(read_records(&log).len(), 5);
}

#[test]
fn reads_during_compaction_see_a_consistent_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    let written = write_updates(&mut log);
    log.roll(APPEND_NOW_MS).unwrap();
    let slice_before = log.read(0, 4096, i64::MAX).unwrap();
    let records_before = read_records(&log);

    let job = log.compaction_job(APPEND_NOW_MS).unwrap();
    // Appends and reads go on while the job runs (it borrows nothing of the log).
    let compacted = job.run().unwrap();
    let appended = put(&mut log, "key-0", "during", 5_000);
    assert_eq!(read_records(&log).len(), records_before.len() + 1);
    let slice_during = log.read(0, 4096, i64::MAX).unwrap();

    let outcome = log.install_compaction(compacted).unwrap();
    assert!(outcome.installed);

    // Slices taken before the swap still read the old, whole batches.
    for slice in [slice_before, slice_during] {
        let bytes = slice.read_bytes().unwrap();
        let mut iter = BatchIter::new(&bytes);
        let mut first_offsets = Vec::new();
        for found in iter.by_ref() {
            batch::verify_crc(&found.header, found.bytes).unwrap();
            let (header, records) = decode_batch(found.bytes, usize::MAX).unwrap();
            assert_eq!(records.len(), 10);
            first_offsets.push(header.base_offset);
        }
        assert!(iter.stop_reason().is_none());
        assert_eq!(first_offsets[0], 0);
    }

    // Reads after the swap see the compacted log plus what was appended meanwhile.
    let read = read_records(&log);
    assert_eq!(read.len(), 201);
    assert_eq!(
        read.last().unwrap(),
        &(appended, "key-0".to_string(), Some("during".to_string()))
    );
    let mut expected = latest_by_key(&written);
    let cleaned: Vec<Entry> = read
        .iter()
        .filter(|entry| entry.0 < appended)
        .cloned()
        .collect();
    assert_eq!(latest_by_key(&cleaned), expected);
    expected.insert("key-0".to_string(), (appended, Some("during".to_string())));
    assert_eq!(latest_by_key(&read), expected);
}

#[test]
fn idempotent_producer_state_survives_compaction_without_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    let options = BatchOptions {
        producer_id: 42,
        producer_epoch: 3,
        base_sequence: 0,
        ..BatchOptions::default()
    };
    let record = |value: &str| NewRecord {
        timestamp_ms: 1_000,
        key: Some(b"shared".to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: Vec::new(),
    };
    let mut idempotent = build_batch(0, &[record("p0"), record("p1")], &options).unwrap();
    log.append(&mut idempotent, 0, APPEND_NOW_MS).unwrap();
    // A plain producer then rewrites the key: the idempotent batch loses every record.
    put(&mut log, "shared", "plain", 1_000);
    log.roll(APPEND_NOW_MS).unwrap();
    let outcome = log.compact_now(APPEND_NOW_MS).unwrap().unwrap();
    assert_eq!(outcome.records_removed, 2);

    let batches = read_batches(&log);
    assert_eq!(batches.len(), 2, "the producer's last batch stays, empty");
    assert_eq!(batches[0].0.producer_id, 42);
    assert_eq!(batches[0].0.records_count, 0);
    assert_eq!(batches[0].0.last_sequence(), 1);
    assert_eq!(batches[0].1.len(), 0);
    log.close().unwrap();

    // Without snapshots the state comes from replaying the log.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "snapshot")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let log = Log::open(dir.path(), compact_config()).unwrap();
    let state = log.producer_state(42).unwrap();
    assert_eq!(state.producer_epoch, 3);
    assert_eq!(state.last_sequence(), Some(1));
}

#[test]
fn a_job_interrupted_before_install_leaves_the_log_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    write_updates(&mut log);
    log.roll(APPEND_NOW_MS).unwrap();
    let before = read_records(&log);
    let compacted = log.compaction_job(APPEND_NOW_MS).unwrap().run().unwrap();
    assert!(cleaned_dir_exists(dir.path()));
    // Crash: neither installed nor closed.
    drop(compacted);
    drop(log);
    let log = Log::open(dir.path(), compact_config()).unwrap();
    assert!(!cleaned_dir_exists(dir.path()));
    assert_eq!(read_records(&log), before);
    assert_eq!(log.cleaner_checkpoint(), 0);
}

/// One keyed record in a transactional batch of `producer_id` (epoch 0).
fn transactional_put(
    log: &mut Log,
    producer_id: i64,
    sequence: i32,
    key: &str,
    value: &str,
) -> i64 {
    let record = NewRecord {
        timestamp_ms: APPEND_NOW_MS,
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: Vec::new(),
    };
    let options = BatchOptions {
        producer_id,
        producer_epoch: 0,
        base_sequence: sequence,
        is_transactional: true,
        ..BatchOptions::default()
    };
    let mut bytes = build_batch(0, &[record], &options).unwrap();
    log.append(&mut bytes, 0, APPEND_NOW_MS)
        .unwrap()
        .base_offset
}

/// The values of `key` in the log, data records only.
fn values_of_key(log: &Log, key: &str) -> Vec<String> {
    read_batches(log)
        .into_iter()
        .filter(|(header, _)| !header.is_control())
        .flat_map(|(_, records)| records)
        .filter(|record| record.key.as_deref() == Some(key.as_bytes()))
        .map(|record| String::from_utf8(record.value.unwrap().to_vec()).unwrap())
        .collect()
}

#[test]
fn aborted_records_never_supersede_and_unstable_offsets_are_not_cleaned() {
    use cauce_protocol::control::{EndTxnMarker, TransactionResult};
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config()).unwrap();
    put(&mut log, "k", "committed", APPEND_NOW_MS);
    transactional_put(&mut log, 77, 0, "k", "aborted");
    let abort = EndTxnMarker {
        result: TransactionResult::Abort,
        coordinator_epoch: 0,
    };
    log.append_marker(77, 0, abort, 0, APPEND_NOW_MS).unwrap();
    log.roll(APPEND_NOW_MS).unwrap();
    put(&mut log, "later", "x", APPEND_NOW_MS);
    log.on_high_watermark(log.log_end_offset());
    log.compact_now(APPEND_NOW_MS).unwrap().expect("a pass");
    // The aborted value of k is no newer value of k: the committed one stays.
    assert_eq!(values_of_key(&log, "k")[0], "committed");
    assert!(
        !log.aborted_transactions(0, log.log_end_offset()).is_empty(),
        "the abort is still indexed"
    );

    // Producer 88 leaves a transaction open: nothing from it on is cleaned, even once newer
    // values of its key are written and segments roll.
    let open = transactional_put(&mut log, 88, 0, "k", "open");
    log.roll(APPEND_NOW_MS).unwrap();
    put(&mut log, "k", "newest", APPEND_NOW_MS);
    log.roll(APPEND_NOW_MS).unwrap();
    put(&mut log, "later", "y", APPEND_NOW_MS);
    log.on_high_watermark(log.log_end_offset());
    assert_eq!(log.first_unstable_offset(), Some(open));
    log.compact_now(APPEND_NOW_MS).unwrap();
    let values = values_of_key(&log, "k");
    assert!(
        values.contains(&"open".to_string()) && values.contains(&"newest".to_string()),
        "{values:?}"
    );
}
