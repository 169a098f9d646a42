//! A partition's log on disk.
//!
//! [`Log`] is single-writer: the broker wraps it in a mutex for appends. Reads return a
//! [`ReadSlice`] (a shared file handle, position and length) so the bytes can be read after
//! the mutex is released; group commit works the same way through [`FlushHandle`].
//!
//! # Layout
//!
//! Modules:
//! - `log`: [`Log`]: open (with recovery), append and its checks (batch validation, keys on
//!   compacted topics, sizes, timestamps, producer sequences), roll, flush, close.
//! - `config`: [`LogConfig`], the per-partition settings, named after Kafka's topic configs.
//! - `read`: fetch reads and lookups by timestamp.
//! - `retention`: DeleteRecords, retention.ms / retention.bytes, truncation.
//! - `cleaner`: log compaction (`cleanup.policy=compact`), Kafka's log cleaner: the job and
//!   its install; `cleaner_plan` decides when and what to clean, `cleaner_swap` swaps cleaned
//!   segments in and finishes an interrupted swap at open.
//! - `segment`: one `.log` file and its two indexes; recovery of a single segment.
//! - `index`: the sparse offset and time indexes.
//! - `producer_state`: producer sequence checks, open transactions and the last stable
//!   offset, and their snapshots.
//! - `txn_index`: the aborted transactions of each segment, for `read_committed` fetches.
//! - `epoch_cache`: leader epoch → start offset (KIP-101).
//! - `scan`: positional reads of batch headers.
//! - `checkpoint`: file names, atomic small-file writes, log start offset.
//!
//! Files in a partition directory:
//! - `<20-digit base offset>.log`: concatenated magic-2 record batches, stored as received
//!   except for the broker-assigned base offset, leader epoch and LogAppendTime.
//! - `<base>.index`: big-endian (relative offset u32, file position u32) pairs, one per
//!   `index.interval.bytes` of log; the batch at that position has that base offset.
//! - `<base>.timeindex`: (max timestamp so far i64, relative offset u32) pairs with increasing
//!   timestamps; the offset is the base offset of the batch that holds that timestamp.
//! - `<base>.txnindex`: one 34-byte entry per ABORT marker in the segment (producer id, first
//!   offset, marker offset, last stable offset), as Kafka's; only once the segment has one.
//! - `<offset>.snapshot`: producer state as of `offset` (written on roll and close; the newest
//!   two are kept).
//! - `log-start-offset`: the log start offset moved by DeleteRecords or retention.
//! - `leader-epoch-checkpoint`: epoch → start offset lines.
//! - `cleaner-offset-checkpoint`: offsets below it have been compacted.
//! - `cleaned-<n>/`: compacted segments a job is writing; `cleaner-swap` lists the segments they
//!   replace while they are moved into place (see `cleaner` for the crash rules).
//! - `clean-shutdown`: written by [`Log::close`], removed by [`Log::open`]; without it, the
//!   active segment is recovered (CRC-checked, torn tail cut, indexes rebuilt).
//!
//! Small files are written atomically (temporary file, fsync, rename, directory fsync).
//! Indexes are derived data: a missing or damaged one is rebuilt from its log.

mod checkpoint;
mod cleaner;
mod cleaner_plan;
mod cleaner_swap;
mod config;
mod epoch_cache;
mod index;
mod log;
mod producer_state;
mod read;
mod retention;
mod scan;
mod segment;
mod txn_index;

use std::path::PathBuf;

use cauce_protocol::batch::BatchError;

pub use crate::checkpoint::{read_optional, write_atomically};
pub use crate::cleaner::{CompactedSegments, CompactionJob, CompactionOutcome};
pub use crate::config::{LogConfig, TimestampType};
pub use crate::epoch_cache::EpochEntry;
pub use crate::log::{AppendOutcome, FlushHandle, Log};
pub use crate::producer_state::{ProducerBatchMetadata, ProducerEntry, MAX_REMEMBERED_BATCHES};
pub use crate::read::ReadSlice;
pub use crate::retention::RetentionOutcome;
pub use crate::txn_index::AbortedTxn;

/// Everything that can go wrong in a partition's log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed; the path says which file.
    #[error("{operation} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "append to segment".
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A produced batch failed validation; the variant says which Kafka error applies.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// Replicated batches do not continue the log where it ends.
    #[error("replicated batch starts at offset {found}, but the log ends at {expected}")]
    ReplicaOffsetMismatch {
        /// The log end offset.
        expected: i64,
        /// The batch's base offset.
        found: i64,
    },
    /// One append larger than a whole segment (Kafka's RECORD_BATCH_TOO_LARGE).
    #[error("record set of {size} bytes is larger than segment.bytes {segment_bytes}")]
    RecordSetTooLarge {
        /// Bytes in the append.
        size: usize,
        /// The configured segment size.
        segment_bytes: u64,
    },
    /// An offset outside [log start, log end] (Kafka's OFFSET_OUT_OF_RANGE).
    #[error("offset {requested} is outside the log range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: i64,
        /// First offset still in the log.
        log_start_offset: i64,
        /// Offset the next append will get.
        log_end_offset: i64,
    },
    /// A batch from a fenced (older) producer epoch (Kafka's INVALID_PRODUCER_EPOCH).
    #[error("producer {producer_id} sent epoch {request_epoch}, older than the current epoch {current_epoch}")]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// Epoch the log knows.
        current_epoch: i16,
        /// Epoch in the batch.
        request_epoch: i16,
    },
    /// A record a compacted topic cannot take: one without a key, or one in a batch that
    /// cannot be read to find out (Kafka's INVALID_RECORD).
    #[error("{reason} (batch at offset {base_offset})")]
    KeylessRecord {
        /// The batch's base offset as the producer sent it.
        base_offset: i64,
        /// What is wrong.
        reason: String,
    },
    /// A CreateTime timestamp outside the allowed window (Kafka's INVALID_TIMESTAMP).
    #[error(
        "timestamp {timestamp} is {reason} than {limit_ms} ms from the broker's time {now_ms}"
    )]
    InvalidTimestamp {
        /// The offending batch timestamp.
        timestamp: i64,
        /// The broker's clock at append.
        now_ms: i64,
        /// "further in the past" or "further in the future".
        reason: &'static str,
        /// The configured limit.
        limit_ms: i64,
    },
    /// A batch that does not fit the producer's transaction (Kafka's INVALID_TXN_STATE).
    #[error("producer {producer_id}: {reason}")]
    InvalidTxnState {
        /// The producer.
        producer_id: i64,
        /// What does not fit.
        reason: &'static str,
    },
    /// A marker from an older transaction coordinator than the last one that wrote for the
    /// producer (Kafka's TRANSACTION_COORDINATOR_FENCED).
    #[error("producer {producer_id}: marker from coordinator epoch {request_epoch}, older than {current_epoch}")]
    TransactionCoordinatorFenced {
        /// The producer.
        producer_id: i64,
        /// Coordinator epoch of the producer's last marker.
        current_epoch: i32,
        /// Coordinator epoch of the refused marker.
        request_epoch: i32,
    },
    /// A sequence gap or reordering (Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error("producer {producer_id} epoch {producer_epoch}: expected sequence {expected_sequence}, found {found_sequence}")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The producer's epoch.
        producer_epoch: i16,
        /// Sequence that would have been in order.
        expected_sequence: i32,
        /// Sequence in the batch.
        found_sequence: i32,
    },
}
