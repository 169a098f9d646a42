//! Retention, DeleteRecords and truncation.

mod common;

use cauce_log::{Log, LogConfig, LogError};
use common::{append_batches, batch, read_all, small_config};

#[test]
fn retention_bytes_deletes_oldest_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    append_batches(&mut log, 200, 5);
    let segments_before = log.segment_count();
    let size_before = log.size_bytes();
    let retention_bytes = (size_before / 2) as i64;
    log.set_config(LogConfig {
        retention_bytes,
        ..small_config()
    });
    let outcome = log.enforce_retention(0).unwrap();
    assert!(outcome.deleted_segments > 0);
    assert_eq!(
        log.segment_count(),
        segments_before - outcome.deleted_segments
    );
    assert_eq!(log.size_bytes(), size_before - outcome.deleted_bytes);
    assert!(log.size_bytes() as i64 >= retention_bytes);
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    assert_eq!(outcome.log_start_offset, log.log_start_offset());
    let first_base = log.segment_base_offsets()[0];
    assert!(!dir.path().join("00000000000000000000.log").exists());
    assert!(matches!(
        log.read(0, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, first_base).len() as i64, 1_000 - first_base);
}

#[test]
fn retention_ms_deletes_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 1_000,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    // Old records, then a roll, then new ones.
    for index in 0..5 {
        let mut bytes = batch(3, 1_000 + index, "old");
        log.append(&mut bytes, 0, 1_000).unwrap();
    }
    log.roll(1_000).unwrap();
    for index in 0..5 {
        let mut bytes = batch(3, 9_000 + index, "new");
        log.append(&mut bytes, 0, 9_000).unwrap();
    }
    log.roll(9_000).unwrap();
    let mut bytes = batch(1, 9_500, "active");
    log.append(&mut bytes, 0, 9_500).unwrap();
    assert_eq!(log.segment_count(), 3);
    let outcome = log.enforce_retention(9_600).unwrap();
    assert_eq!(outcome.deleted_segments, 1);
    assert_eq!(log.log_start_offset(), 15);
    // Everything expired, but the active segment stays.
    let outcome = log.enforce_retention(1_000_000).unwrap();
    assert_eq!(outcome.deleted_segments, 1);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 30);
}

#[test]
fn delete_records_moves_log_start_offset_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    append_batches(&mut log, 200, 5);
    let bases = log.segment_base_offsets();
    let target = bases[2] + 3;
    assert_eq!(log.delete_records_before(target).unwrap(), target);
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(log.segment_base_offsets()[0], bases[2]);
    assert!(matches!(
        log.read(target - 1, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, target)[0].0, target);
    // Lower offsets do not move it back; beyond the end is out of range.
    assert_eq!(log.delete_records_before(1).unwrap(), target);
    assert!(log.delete_records_before(1_001).is_err());
    drop(log); // even without a clean shutdown
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().0, target);
}

#[test]
fn delete_records_to_log_end_empties_the_readable_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    append_batches(&mut log, 20, 5);
    log.delete_records_before(100).unwrap();
    assert_eq!(log.log_start_offset(), 100);
    assert!(log.read(100, 100, i64::MAX).unwrap().is_empty());
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
}

#[test]
fn truncate_to() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    append_batches(&mut log, 200, 5);
    let segments_before = log.segment_count();
    log.truncate_to(503).unwrap();
    // The batch holding offsets 500..=504 goes whole.
    assert_eq!(log.log_end_offset(), 500);
    assert!(log.segment_count() < segments_before);
    assert_eq!(read_all(&log, 0).len(), 500);
    let mut bytes = batch(2, 1, "after");
    assert_eq!(log.append(&mut bytes, 0, 0).unwrap().base_offset, 500);
    let size = log.size_bytes();
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 502);
    assert_eq!(log.size_bytes(), size);
}

#[test]
fn truncate_below_log_start_restarts_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    append_batches(&mut log, 50, 5);
    log.delete_records_before(200).unwrap();
    log.truncate_to(150).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (150, 150));
    assert_eq!(log.segment_count(), 1);
    let mut bytes = batch(1, 1, "x");
    assert_eq!(log.append(&mut bytes, 0, 0).unwrap().base_offset, 150);
}
