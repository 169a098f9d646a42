//! Per-partition log settings, named after Kafka's topic configs.

pub use cauce_protocol::batch::TimestampType;

/// How a partition's log rolls, indexes, flushes and expires data.
///
/// Field names follow Kafka's topic configs (`segment.bytes` → `segment_bytes`); `Default`
/// carries Kafka's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this; capped at 4 GiB
    /// because index positions are u32.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    pub segment_ms: i64,
    /// `retention.ms`: delete segments whose newest timestamp is older; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger; -1 is unlimited.
    pub retention_bytes: i64,
    /// `index.interval.bytes`: log bytes between sparse offset-index entries.
    pub index_interval_bytes: u32,
    /// `segment.index.bytes`: largest index file; the segment rolls when an index is full.
    pub segment_index_bytes: u32,
    /// `flush.messages`: appended messages after which the broker should fsync.
    pub flush_messages: u64,
    /// `flush.ms`: age of unflushed data after which the broker should fsync.
    pub flush_ms: u64,
    /// `message.timestamp.type`: whether the broker stamps its own clock on each batch.
    pub message_timestamp_type: TimestampType,
    /// `max.message.bytes`: largest batch a producer may append.
    pub max_message_bytes: u32,
    /// `message.timestamp.before.max.ms`: how far in the past a CreateTime timestamp may be.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a CreateTime timestamp may be.
    pub message_timestamp_after_max_ms: i64,
    /// `cleanup.policy` contains `compact`: the log cleaner keeps the latest record per key.
    pub cleanup_policy_compact: bool,
    /// `cleanup.policy` contains `delete`: retention.ms / retention.bytes delete old segments.
    pub cleanup_policy_delete: bool,
    /// `delete.retention.ms`: how long a tombstone outlives the cleaning pass that first kept
    /// it, so that consumers reading the log's tail still see the deletion.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: share of uncleaned bytes that makes a log due for cleaning.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are never compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty record older than this makes the log due regardless
    /// of the dirty ratio.
    pub max_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        const SEVEN_DAYS_MS: i64 = 7 * 24 * 60 * 60 * 1000;
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: SEVEN_DAYS_MS,
            retention_ms: SEVEN_DAYS_MS,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
            message_timestamp_type: TimestampType::CreateTime,
            max_message_bytes: 1_048_588,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 60 * 60 * 1000,
            cleanup_policy_compact: false,
            cleanup_policy_delete: true,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

impl LogConfig {
    /// The most bytes one batch may decompress to when the broker reads its records
    /// (timestamp lookups, compaction): a multiple of `max.message.bytes`, capped.
    pub fn max_decompressed_bytes(&self) -> usize {
        cauce_protocol::compression::decompression_limit(self.max_message_bytes as usize)
    }

    /// `segment_bytes` limited to what u32 file positions can address.
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, u64::from(u32::MAX))
    }

    /// Entries an offset index may hold before the segment must roll.
    pub(crate) fn max_offset_index_entries(&self) -> usize {
        (self.segment_index_bytes as usize / crate::index::OFFSET_INDEX_ENTRY_SIZE).max(1)
    }

    /// Entries a time index may hold before the segment must roll.
    pub(crate) fn max_time_index_entries(&self) -> usize {
        (self.segment_index_bytes as usize / crate::index::TIME_INDEX_ENTRY_SIZE).max(1)
    }
}
