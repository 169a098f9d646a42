//! Lookups by timestamp and by leader epoch.

mod common;

use cauce_log::{Log, LogConfig};
use cauce_protocol::compression::Compression;
use cauce_protocol::records::{build_batch, BatchOptions, NewRecord};
use common::{batch, small_config};

#[test]
fn offset_for_timestamp_finds_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    // Record i has timestamp 10 * i; batches of 5, compressed, over several segments.
    for batch_index in 0..100 {
        let records: Vec<_> = (0..5)
            .map(|index| NewRecord::value_only((batch_index * 5 + index) * 10, vec![b'x'; 20]))
            .collect();
        let options = BatchOptions {
            compression: Compression::Lz4,
            ..BatchOptions::default()
        };
        let mut bytes = build_batch(0, &records, &options).unwrap();
        log.append(&mut bytes, 3, 0).unwrap();
    }
    assert!(log.segment_count() > 2);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 0, 3)));
    assert_eq!(
        log.offset_for_timestamp(1_230).unwrap(),
        Some((123, 1_230, 3))
    );
    assert_eq!(
        log.offset_for_timestamp(1_231).unwrap(),
        Some((124, 1_240, 3))
    );
    assert_eq!(
        log.offset_for_timestamp(4_990).unwrap(),
        Some((499, 4_990, 3))
    );
    assert_eq!(log.offset_for_timestamp(4_991).unwrap(), None);
    for target in (0..5_000).step_by(97) {
        let (offset, timestamp, _) = log.offset_for_timestamp(target).unwrap().unwrap();
        assert_eq!(offset, (target + 9) / 10);
        assert_eq!(timestamp, offset * 10);
    }
}

#[test]
fn offset_for_timestamp_handles_out_of_order_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let records = vec![
        NewRecord::value_only(500, b"a".to_vec()),
        NewRecord::value_only(100, b"b".to_vec()),
        NewRecord::value_only(300, b"c".to_vec()),
    ];
    let mut bytes = build_batch(0, &records, &BatchOptions::default()).unwrap();
    log.append(&mut bytes, 0, 0).unwrap();
    assert_eq!(log.offset_for_timestamp(200).unwrap(), Some((0, 500, 0)));
    assert_eq!(log.max_timestamp_and_offset().unwrap(), Some((500, 0)));
}

#[test]
fn max_timestamp_and_offset_finds_the_record_with_the_largest_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.max_timestamp_and_offset().unwrap(), None);
    for index in 0..100 {
        let timestamp = if index == 37 {
            1_000_000
        } else {
            1_000 + index
        };
        let records = vec![
            NewRecord::value_only(1, vec![b'y'; 30]),
            NewRecord::value_only(timestamp, vec![b'y'; 30]),
        ];
        let mut bytes = build_batch(0, &records, &BatchOptions::default()).unwrap();
        log.append(&mut bytes, 0, 0).unwrap();
    }
    assert_eq!(
        log.max_timestamp_and_offset().unwrap(),
        Some((1_000_000, 75))
    );
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(
        log.max_timestamp_and_offset().unwrap(),
        Some((1_000_000, 75))
    );
}

#[test]
fn end_offset_for_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    for (epoch, batches) in [(1, 3), (2, 2), (4, 4)] {
        for _ in 0..batches {
            let mut bytes = batch(2, 1, "e");
            log.append(&mut bytes, epoch, 0).unwrap();
        }
    }
    // Epoch 1: 0..6, epoch 2: 6..10, epoch 4: 10..18.
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 6)));
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 10)));
    assert_eq!(log.end_offset_for_epoch(3), Some((2, 10)));
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 18)));
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 0)));
    assert_eq!(log.end_offset_for_epoch(5), None);
    // Survives a restart, and without its checkpoint it is rebuilt from the batches.
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 10)));
    drop(log);
    std::fs::remove_file(dir.path().join("leader-epoch-checkpoint")).unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.end_offset_for_epoch(3), Some((2, 10)));
    // Truncation forgets epochs that started after the new end.
    log.truncate_to(8).unwrap();
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 8)));
    assert_eq!(log.latest_epoch(), Some(2));
}
