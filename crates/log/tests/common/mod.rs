//! Helpers shared by the log's integration tests.
#![allow(dead_code)]

use cauce_log::{Log, LogConfig};
use cauce_protocol::batch::BatchIter;
use cauce_protocol::records::{build_batch, decode_batch, BatchOptions, NewRecord};

/// A batch of `count` records with timestamps `first_timestamp..`, values `"{tag}-{i}"`.
pub fn batch(count: usize, first_timestamp: i64, tag: &str) -> Vec<u8> {
    let records: Vec<NewRecord> = (0..count)
        .map(|index| {
            NewRecord::value_only(
                first_timestamp + index as i64,
                format!("{tag}-{index}").into_bytes(),
            )
        })
        .collect();
    build_batch(0, &records, &BatchOptions::default()).unwrap()
}

/// A batch from an idempotent producer.
pub fn idempotent_batch(
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    count: usize,
) -> Vec<u8> {
    let records: Vec<NewRecord> = (0..count)
        .map(|index| {
            NewRecord::value_only(
                1_000,
                format!("seq-{}", base_sequence + index as i32).into_bytes(),
            )
        })
        .collect();
    let options = BatchOptions {
        producer_id,
        producer_epoch,
        base_sequence,
        ..BatchOptions::default()
    };
    build_batch(0, &records, &options).unwrap()
}

/// Appends `count`-record batches until `batches` have been written; returns base offsets.
pub fn append_batches(log: &mut Log, batches: usize, count: usize) -> Vec<i64> {
    (0..batches)
        .map(|index| {
            let mut bytes = batch(count, 1_000 + index as i64, &format!("b{index}"));
            log.append(&mut bytes, 0, 10_000).unwrap().base_offset
        })
        .collect()
}

/// Every (offset, value) readable from `from` up to the log end, following segments.
pub fn read_all(log: &Log, from: i64) -> Vec<(i64, String)> {
    let mut offset = from;
    let mut values = Vec::new();
    while offset < log.log_end_offset() {
        let slice = log.read(offset, 1 << 20, i64::MAX).unwrap();
        assert!(
            !slice.is_empty(),
            "empty read at {offset} below the log end"
        );
        let bytes = slice.read_bytes().unwrap();
        let mut iter = BatchIter::new(&bytes);
        for batch in iter.by_ref() {
            let (header, records) = decode_batch(batch.bytes, usize::MAX).unwrap();
            for record in records {
                let record_offset = record.offset(&header);
                if record_offset >= offset {
                    values.push((
                        record_offset,
                        String::from_utf8(record.value.unwrap().to_vec()).unwrap(),
                    ));
                }
            }
            offset = header.next_offset();
        }
        assert!(
            iter.stop_reason().is_none(),
            "reads return whole batches only"
        );
    }
    values
}

/// A config with small segments and a dense index so tests exercise rolls and lookups.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4 * 1024,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}
