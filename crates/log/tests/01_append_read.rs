//! Appending and reading back.

mod common;

use cauce_log::{Log, LogConfig, LogError};
use cauce_protocol::batch::{parse_header, validate_batches, BatchIter, TimestampType};
use common::{append_batches, batch, read_all, small_config};

#[test]
fn append_assigns_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut first = batch(3, 100, "a");
    let outcome = log.append(&mut first, 7, 500).unwrap();
    assert_eq!((outcome.base_offset, outcome.last_offset), (0, 2));
    assert!(!outcome.duplicate);
    assert_eq!(outcome.log_append_time, -1);
    let mut second = batch(2, 100, "b");
    let outcome = log.append(&mut second, 7, 500).unwrap();
    assert_eq!((outcome.base_offset, outcome.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 5);
    let header = parse_header(&second).unwrap();
    assert_eq!(header.base_offset, 3);
    assert_eq!(header.partition_leader_epoch, 7);
    let values = read_all(&log, 0);
    assert_eq!(
        values.iter().map(|(offset, _)| *offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(values[3].1, "b-0");
}

#[test]
fn append_of_several_batches_in_one_request_assigns_offsets_to_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut request = batch(2, 1, "a");
    request.extend_from_slice(&batch(3, 1, "b"));
    let outcome = log.append(&mut request, 0, 0).unwrap();
    assert_eq!((outcome.base_offset, outcome.last_offset), (0, 4));
    let headers = validate_batches(&request, 1 << 20).unwrap();
    assert_eq!(headers[1].base_offset, 2);
}

#[test]
fn invalid_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut request = batch(2, 1, "a");
    let mut bad = batch(2, 1, "b");
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    request.extend_from_slice(&bad);
    assert!(matches!(
        log.append(&mut request, 0, 0),
        Err(LogError::Batch(_))
    ));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn batch_over_max_message_bytes_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 100,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let mut big = batch(20, 1, "big");
    assert!(matches!(
        log.append(&mut big, 0, 0),
        Err(LogError::Batch(
            cauce_protocol::batch::BatchError::MessageTooLarge { .. }
        ))
    ));
}

#[test]
fn read_returns_whole_batches_within_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    append_batches(&mut log, 10, 2);
    let one_batch = batch(2, 1_000, "b0").len();
    // Room for three batches and a half: three whole batches come back.
    let slice = log
        .read(0, one_batch * 3 + one_batch / 2, i64::MAX)
        .unwrap();
    let bytes = slice.read_bytes().unwrap();
    let mut iter = BatchIter::new(&bytes);
    let headers: Vec<_> = iter.by_ref().map(|found| found.header).collect();
    assert!(iter.stop_reason().is_none());
    assert_eq!(headers.len(), 3);
    assert_eq!(headers[0].base_offset, 0);
    // Starting inside a batch returns that batch.
    let slice = log.read(5, one_batch, i64::MAX).unwrap();
    let header = parse_header(&slice.read_bytes().unwrap()).unwrap();
    assert_eq!(header.base_offset, 4);
}

#[test]
fn first_batch_returned_even_if_larger_than_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    append_batches(&mut log, 3, 50);
    let slice = log.read(0, 10, i64::MAX).unwrap();
    let bytes = slice.read_bytes().unwrap();
    let header = parse_header(&bytes).unwrap();
    assert_eq!(bytes.len(), header.total_size());
    assert!(bytes.len() > 10);
}

#[test]
fn read_stops_before_upper_bound_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    append_batches(&mut log, 5, 2);
    let slice = log.read(0, 1 << 20, 4).unwrap();
    let bytes = slice.read_bytes().unwrap();
    let offsets: Vec<_> = BatchIter::new(&bytes)
        .map(|found| found.header.base_offset)
        .collect();
    assert_eq!(offsets, vec![0, 2]);
    assert!(log.read(4, 1 << 20, 4).unwrap().is_empty());
}

#[test]
fn read_outside_the_log_is_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    append_batches(&mut log, 2, 2);
    assert!(log.read(4, 100, i64::MAX).unwrap().is_empty());
    assert!(matches!(
        log.read(5, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read(-1, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn segment_rolls_at_segment_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    append_batches(&mut log, 200, 5);
    assert!(
        log.segment_count() > 3,
        "expected several segments, found {}",
        log.segment_count()
    );
    for base_offset in log.segment_base_offsets() {
        let path = dir.path().join(format!("{base_offset:020}.log"));
        assert!(std::fs::metadata(path).unwrap().len() <= config.segment_bytes);
    }
    // Reads cross segment boundaries one segment at a time and see every record.
    let values = read_all(&log, 0);
    assert_eq!(values.len(), 1000);
    assert!(values
        .iter()
        .enumerate()
        .all(|(index, (offset, _))| *offset == index as i64));
}

#[test]
fn segment_rolls_after_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let mut first = batch(1, 10_000, "a");
    log.append(&mut first, 0, 10_000).unwrap();
    let mut second = batch(1, 10_500, "b");
    log.append(&mut second, 0, 10_500).unwrap();
    assert_eq!(log.segment_count(), 1);
    let mut third = batch(1, 11_500, "c");
    log.append(&mut third, 0, 11_500).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn segment_rolls_when_index_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 1,
        segment_index_bytes: 8 * 4,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    append_batches(&mut log, 12, 1);
    assert!(log.segment_count() >= 2);
    assert_eq!(read_all(&log, 0).len(), 12);
}

#[test]
fn log_append_time_rewrites_max_timestamp_and_crc() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let mut bytes = batch(3, 5, "a");
    let outcome = log.append(&mut bytes, 0, 123_456).unwrap();
    assert_eq!(outcome.log_append_time, 123_456);
    let stored = log
        .read(0, 1 << 20, i64::MAX)
        .unwrap()
        .read_bytes()
        .unwrap();
    let headers = validate_batches(&stored, 1 << 20).unwrap();
    assert_eq!(headers[0].max_timestamp, 123_456);
    assert_eq!(headers[0].timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(
        log.offset_for_timestamp(100_000).unwrap(),
        Some((0, 123_456, 0))
    );
}

#[test]
fn flush_messages_sets_needs_flush_and_flush_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: 5,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let mut bytes = batch(3, 1, "a");
    assert!(!log.append(&mut bytes, 0, 50).unwrap().needs_flush);
    assert_eq!(log.unflushed_since_ms(), Some(50));
    let mut bytes = batch(3, 1, "b");
    assert!(log.append(&mut bytes, 0, 60).unwrap().needs_flush);
    let handle = log.flush_handle();
    handle.sync().unwrap();
    log.mark_flushed(handle.up_to_offset);
    assert_eq!(log.unflushed_messages(), 0);
    assert_eq!(log.unflushed_since_ms(), None);
    let mut bytes = batch(1, 1, "c");
    assert!(!log.append(&mut bytes, 0, 70).unwrap().needs_flush);
    log.flush().unwrap();
    assert_eq!(log.unflushed_messages(), 0);
}

#[test]
fn reads_are_unaffected_by_later_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    append_batches(&mut log, 2, 2);
    let slice = log.read(0, 1 << 20, i64::MAX).unwrap();
    append_batches(&mut log, 2, 2);
    let bytes = slice.read_bytes().unwrap();
    assert_eq!(BatchIter::new(&bytes).count(), 2);
}

/// The broker clock in this test, close to the records' timestamps.
const NOW: i64 = 1_700_000_000_000;

#[test]
fn refused_batches_leave_later_appends_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut first = common::batch(2, 1_700_000_000_000, "first");
    log.append(&mut first, 0, NOW).unwrap();
    let mut damaged = common::batch(1, 1_700_000_000_000, "third");
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    assert!(log.append(&mut damaged, 0, NOW).is_err());
    let mut cut = common::batch(1, 1_700_000_000_000, "fourth");
    cut.truncate(cut.len() - 3);
    assert!(log.append(&mut cut, 0, NOW).is_err());
    let mut fifth = common::batch(1, 1_700_000_000_000, "fifth");
    assert_eq!(log.append(&mut fifth, 0, NOW).unwrap().base_offset, 2);
    let slice = log.read(0, 1 << 20, log.log_end_offset()).unwrap();
    let bytes = slice.read_bytes().unwrap();
    assert_eq!(bytes.len(), first.len() + fifth.len());
}
