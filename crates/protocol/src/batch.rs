//! A zero-copy view of Kafka record batches (magic 2).
//!
//! The broker treats batches as opaque: it validates the header (sizes, magic, CRC-32C), rewrites
//! the fields that sit outside the CRC (`baseOffset`, `partitionLeaderEpoch`) and, for
//! LogAppendTime topics, stamps `maxTimestamp` and recomputes the CRC. It never re-encodes the
//! records. Header layout (big endian), as documented by Kafka:
//!
//! | offset | field                |
//! |-------:|----------------------|
//! | 0      | baseOffset i64       |
//! | 8      | batchLength i32      |
//! | 12     | partitionLeaderEpoch |
//! | 16     | magic i8             |
//! | 17     | crc u32 (CRC-32C of bytes 21..end) |
//! | 21     | attributes i16       |
//! | 23     | lastOffsetDelta i32  |
//! | 27     | baseTimestamp i64    |
//! | 35     | maxTimestamp i64     |
//! | 43     | producerId i64       |
//! | 51     | producerEpoch i16    |
//! | 53     | baseSequence i32     |
//! | 57     | recordsCount i32     |
//! | 61     | records...           |

use crate::compression::Compression;

/// Size of the fixed part of a magic-2 batch, up to the first record.
pub const BATCH_HEADER_SIZE: usize = 61;
/// Bytes before `batchLength` counts: baseOffset and batchLength itself.
pub const LOG_OVERHEAD: usize = 12;
/// Smallest legal `batchLength`: a header with no records.
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32;
/// The only record format this broker stores.
pub const CURRENT_MAGIC: i8 = 2;
/// `partitionLeaderEpoch` / `producerId` / `baseSequence` value meaning "not set".
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// `producerId` of a batch sent by a non-idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;
/// `producerEpoch` of a batch sent by a non-idempotent producer.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `baseSequence` of a batch sent by a non-idempotent producer.
pub const NO_SEQUENCE: i32 = -1;
/// Timestamp value meaning "no timestamp".
pub const NO_TIMESTAMP: i64 = -1;

/// Byte offsets of the header fields within a batch (see the table above).
pub const BASE_OFFSET_AT: usize = 0;
pub const BATCH_LENGTH_AT: usize = 8;
pub const PARTITION_LEADER_EPOCH_AT: usize = 12;
pub const MAGIC_AT: usize = 16;
pub const CRC_AT: usize = 17;
pub const ATTRIBUTES_AT: usize = 21;
pub const LAST_OFFSET_DELTA_AT: usize = 23;
pub const BASE_TIMESTAMP_AT: usize = 27;
pub const MAX_TIMESTAMP_AT: usize = 35;
pub const PRODUCER_ID_AT: usize = 43;
pub const PRODUCER_EPOCH_AT: usize = 51;
pub const BASE_SEQUENCE_AT: usize = 53;
pub const RECORDS_COUNT_AT: usize = 57;

/// Attribute bits, as documented by Kafka.
pub(crate) const COMPRESSION_MASK: i16 = 0x07;
pub(crate) const TIMESTAMP_TYPE_BIT: i16 = 0x08;
pub(crate) const TRANSACTIONAL_BIT: i16 = 0x10;
pub(crate) const CONTROL_BIT: i16 = 0x20;

/// Everything that can be wrong with a batch, its records or its compression.
///
/// The variants are distinct so that the broker can map each to its Kafka error code in one table.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Bad CRC, impossible sizes, a truncated batch or undecodable compressed data
    /// (Kafka's CORRUPT_MESSAGE).
    #[error("corrupt record batch: {reason}")]
    CorruptMessage { reason: String },
    /// A batch larger than `max.message.bytes` (Kafka's MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes is larger than the maximum of {max_size} bytes")]
    MessageTooLarge { size: usize, max_size: usize },
    /// Magic 0 or 1, which this broker does not store (Kafka's UNSUPPORTED_FOR_MESSAGE_FORMAT).
    #[error("record batch magic {magic} is not supported, expected 2")]
    UnsupportedMagic { magic: i8 },
    /// A well-formed batch whose fields break Kafka's rules (Kafka's INVALID_RECORD).
    #[error("invalid record: {reason}")]
    InvalidRecord { reason: String },
    /// Compression attribute 5..7, which no Kafka version defines.
    #[error("compression codec id {codec_id} is unknown, expected 0..=4")]
    UnknownCompression { codec_id: u8 },
}

impl BatchError {
    pub(crate) fn corrupt(reason: impl Into<String>) -> BatchError {
        BatchError::CorruptMessage {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> BatchError {
        BatchError::InvalidRecord {
            reason: reason.into(),
        }
    }
}

/// How record timestamps in a batch were assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// The producer's clock (`message.timestamp.type=CreateTime`).
    #[default]
    CreateTime,
    /// The broker's clock at append (`message.timestamp.type=LogAppendTime`).
    LogAppendTime,
}

/// A parsed copy of a batch header; cheap to keep around after the buffer is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record; rewritten by the broker on append.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field; gives the batch's extent.
    pub batch_length: i32,
    /// Leader epoch at append time; drives OffsetForLeaderEpoch and truncation.
    pub partition_leader_epoch: i32,
    /// Record format version; always 2 once parsed.
    pub magic: i8,
    /// CRC-32C stored in the batch, over bytes 21..end.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record; record timestamps are deltas from it.
    pub base_timestamp: i64,
    /// Largest record timestamp (or the append time for LogAppendTime); feeds time indexes.
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 when the producer is not idempotent.
    pub producer_id: i64,
    /// Epoch of `producer_id`, fences zombie producers.
    pub producer_epoch: i16,
    /// Sequence of the first record, used for duplicate and gap detection.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

impl BatchHeader {
    /// Offset of the last record in the batch.
    /// Saturates rather than overflows: the fields come from peers and from disk.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Offset that follows this batch (saturating, as [`BatchHeader::last_offset`]).
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Whole size of the batch in bytes, header included.
    pub fn total_size(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// The codec of the records section.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8)
    }

    /// Whether the batch is part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch carries a control record (transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Who assigned the timestamps.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch comes from an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence of the last record, wrapping from `i32::MAX` to 0 as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// Adds `increment` to a producer sequence number, wrapping past `i32::MAX` to 0.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence < 0 || increment < 0 {
        return sequence;
    }
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("four bytes"))
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("eight bytes"))
}

/// Parses the header of the batch starting at `buf[0]`.
///
/// Only the header must be present; use [`validate_batches`] to check that the whole batch is.
pub fn parse_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    // Legacy message sets keep their magic byte at the same offset, so it can be checked before
    // knowing which layout follows.
    if buf.len() <= MAGIC_AT {
        return Err(BatchError::corrupt(format!(
            "expected at least {BATCH_HEADER_SIZE} bytes of batch header, found {}",
            buf.len()
        )));
    }
    let magic = buf[MAGIC_AT] as i8;
    if magic != CURRENT_MAGIC {
        if magic == 0 || magic == 1 {
            return Err(BatchError::UnsupportedMagic { magic });
        }
        return Err(BatchError::corrupt(format!(
            "expected magic 2, found {magic}"
        )));
    }
    if buf.len() < BATCH_HEADER_SIZE {
        return Err(BatchError::corrupt(format!(
            "expected at least {BATCH_HEADER_SIZE} bytes of batch header, found {}",
            buf.len()
        )));
    }
    let batch_length = read_i32(buf, BATCH_LENGTH_AT);
    if batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::corrupt(format!(
            "expected batch length of at least {MIN_BATCH_LENGTH}, found {batch_length}"
        )));
    }
    Ok(BatchHeader {
        base_offset: read_i64(buf, BASE_OFFSET_AT),
        batch_length,
        partition_leader_epoch: read_i32(buf, PARTITION_LEADER_EPOCH_AT),
        magic,
        crc: read_i32(buf, CRC_AT) as u32,
        attributes: read_i16(buf, ATTRIBUTES_AT),
        last_offset_delta: read_i32(buf, LAST_OFFSET_DELTA_AT),
        base_timestamp: read_i64(buf, BASE_TIMESTAMP_AT),
        max_timestamp: read_i64(buf, MAX_TIMESTAMP_AT),
        producer_id: read_i64(buf, PRODUCER_ID_AT),
        producer_epoch: read_i16(buf, PRODUCER_EPOCH_AT),
        base_sequence: read_i32(buf, BASE_SEQUENCE_AT),
        records_count: read_i32(buf, RECORDS_COUNT_AT),
    })
}

/// CRC-32C of a whole batch as Kafka defines it: from `attributes` to the end.
pub fn compute_crc(batch: &[u8]) -> u32 {
    debug_assert!(batch.len() >= BATCH_HEADER_SIZE, "crc of a partial batch");
    crc32c::crc32c(&batch[ATTRIBUTES_AT..])
}

/// Checks the stored CRC of a whole batch (exactly one batch, `batch.len() == total_size`).
pub fn verify_crc(header: &BatchHeader, batch: &[u8]) -> Result<(), BatchError> {
    debug_assert_eq!(batch.len(), header.total_size());
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::corrupt(format!(
            "expected crc {:#010x} from the batch at offset {}, computed {computed:#010x}",
            header.crc, header.base_offset
        )));
    }
    Ok(())
}

/// Checks the rules a producer's batch must follow beyond its framing.
fn check_fields(header: &BatchHeader) -> Result<(), BatchError> {
    if header.last_offset_delta < 0 {
        return Err(BatchError::invalid(format!(
            "expected a non-negative last offset delta, found {}",
            header.last_offset_delta
        )));
    }
    if header.records_count < 1 {
        return Err(BatchError::invalid(format!(
            "expected at least one record in the batch, found {}",
            header.records_count
        )));
    }
    // A transaction marker carries its producer but no sequence; whether a control batch may
    // be appended at all depends on who sends it, which the log decides.
    if header.has_producer_id() && header.base_sequence < 0 && !header.is_control() {
        return Err(BatchError::invalid(format!(
            "expected a base sequence for producer id {}, found {}",
            header.producer_id, header.base_sequence
        )));
    }
    header.compression()?;
    Ok(())
}

/// Validates every batch of a produce request's records buffer without decompressing.
///
/// Checks magic, sizes (no trailing partial batch), size against `max_batch_bytes`, CRC-32C and
/// the fields that must hold for any magic-2 batch. Returns the parsed headers in order.
pub fn validate_batches(
    buf: &[u8],
    max_batch_bytes: usize,
) -> Result<Vec<BatchHeader>, BatchError> {
    if buf.is_empty() {
        return Err(BatchError::corrupt(
            "expected at least one record batch, found none",
        ));
    }
    let mut headers = Vec::new();
    let mut position = 0usize;
    while position < buf.len() {
        let remaining = &buf[position..];
        let header = parse_header(remaining)?;
        let total_size = header.total_size();
        if total_size > remaining.len() {
            return Err(BatchError::corrupt(format!(
                "expected {total_size} bytes for the batch at byte {position}, found {}",
                remaining.len()
            )));
        }
        if total_size > max_batch_bytes {
            return Err(BatchError::MessageTooLarge {
                size: total_size,
                max_size: max_batch_bytes,
            });
        }
        verify_crc(&header, &remaining[..total_size])?;
        check_fields(&header)?;
        headers.push(header);
        position += total_size;
    }
    debug_assert_eq!(position, buf.len());
    Ok(headers)
}

/// Rewrites `baseOffset` of the batch starting at `batch[0]`; outside the CRC.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites `partitionLeaderEpoch` of the batch starting at `batch[0]`; outside the CRC.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch starting at `batch[0]` as LogAppendTime with `timestamp_ms` as its
/// `maxTimestamp`, then recomputes the CRC (both fields are inside it).
///
/// `batch` must hold at least the whole batch; bytes past it are left alone.
pub fn set_log_append_time(batch: &mut [u8], timestamp_ms: i64) -> Result<(), BatchError> {
    let header = parse_header(batch)?;
    let total_size = header.total_size();
    if batch.len() < total_size {
        return Err(BatchError::corrupt(format!(
            "expected {total_size} bytes of batch, found {}",
            batch.len()
        )));
    }
    let attributes = header.attributes | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = compute_crc(&batch[..total_size]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// One batch found by [`BatchIter`].
#[derive(Debug, Clone, Copy)]
pub struct BatchRef<'a> {
    /// Byte position of the batch in the iterated buffer, for indexes and slicing.
    pub position: usize,
    /// The parsed header.
    pub header: BatchHeader,
    /// The whole batch, header included.
    pub bytes: &'a [u8],
}

/// Walks concatenated batches, stopping cleanly at a partial or malformed trailing batch.
///
/// It checks framing only (magic, length); CRCs are the caller's choice via [`verify_crc`],
/// since fetch paths skip them and recovery needs them. After the iterator returns `None`,
/// [`BatchIter::stopped_at`] gives the first byte not consumed and [`BatchIter::stop_reason`]
/// says why, if it was not the end of the buffer.
pub struct BatchIter<'a> {
    /// The buffer being walked.
    buf: &'a [u8],
    /// Start of the next batch to yield.
    position: usize,
    /// Why iteration ended early; `None` while running or after a clean end.
    stop_reason: Option<BatchError>,
    /// Set once iteration has ended, so later calls keep returning `None`.
    finished: bool,
}

impl<'a> BatchIter<'a> {
    /// Starts walking `buf` at its first byte.
    pub fn new(buf: &'a [u8]) -> BatchIter<'a> {
        BatchIter {
            buf,
            position: 0,
            stop_reason: None,
            finished: false,
        }
    }

    /// First byte that was not yielded as part of a batch.
    pub fn stopped_at(&self) -> usize {
        self.position
    }

    /// Why iteration stopped before the end of the buffer: a partial batch or a bad header.
    pub fn stop_reason(&self) -> Option<&BatchError> {
        self.stop_reason.as_ref()
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = BatchRef<'a>;

    fn next(&mut self) -> Option<BatchRef<'a>> {
        if self.finished || self.position >= self.buf.len() {
            self.finished = true;
            return None;
        }
        let remaining = &self.buf[self.position..];
        let header = match parse_header(remaining) {
            Ok(header) => header,
            Err(error) => {
                self.stop_reason = Some(error);
                self.finished = true;
                return None;
            }
        };
        let total_size = header.total_size();
        if total_size > remaining.len() {
            self.stop_reason = Some(BatchError::corrupt(format!(
                "expected {total_size} bytes for the batch at byte {}, found {}",
                self.position,
                remaining.len()
            )));
            self.finished = true;
            return None;
        }
        let batch = BatchRef {
            position: self.position,
            header,
            bytes: &remaining[..total_size],
        };
        self.position += total_size;
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{build_batch, BatchOptions, NewRecord};

    fn sample_batch(record_count: usize) -> Vec<u8> {
        let records: Vec<NewRecord> = (0..record_count)
            .map(|index| {
                NewRecord::value_only(1_000 + index as i64, format!("v{index}").into_bytes())
            })
            .collect();
        build_batch(0, &records, &BatchOptions::default()).expect("build batch")
    }

    #[test]
    fn parse_header_reads_every_field() {
        let options = BatchOptions {
            producer_id: 77,
            producer_epoch: 3,
            base_sequence: 10,
            partition_leader_epoch: 5,
            is_transactional: true,
            ..BatchOptions::default()
        };
        let records = vec![
            NewRecord::value_only(100, b"a".to_vec()),
            NewRecord::value_only(300, b"b".to_vec()),
            NewRecord::value_only(200, b"c".to_vec()),
        ];
        let batch = build_batch(42, &records, &options).unwrap();
        let header = parse_header(&batch).unwrap();
        assert_eq!(header.base_offset, 42);
        assert_eq!(header.total_size(), batch.len());
        assert_eq!(header.partition_leader_epoch, 5);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.last_offset(), 44);
        assert_eq!(header.next_offset(), 45);
        assert_eq!(header.base_timestamp, 100);
        assert_eq!(header.max_timestamp, 300);
        assert_eq!(header.producer_id, 77);
        assert_eq!(header.producer_epoch, 3);
        assert_eq!(header.base_sequence, 10);
        assert_eq!(header.last_sequence(), 12);
        assert_eq!(header.records_count, 3);
        assert!(header.is_transactional());
        assert!(!header.is_control());
        assert_eq!(header.timestamp_type(), TimestampType::CreateTime);
        assert_eq!(header.compression().unwrap(), Compression::None);
    }

    #[test]
    fn validate_accepts_concatenated_batches() {
        let mut buf = sample_batch(3);
        buf.extend_from_slice(&sample_batch(2));
        let headers = validate_batches(&buf, 1 << 20).unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[1].records_count, 2);
    }

    #[test]
    fn validate_rejects_bad_crc_as_corrupt() {
        let mut buf = sample_batch(3);
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        assert!(matches!(
            validate_batches(&buf, 1 << 20),
            Err(BatchError::CorruptMessage { .. })
        ));
    }

    #[test]
    fn validate_rejects_trailing_partial_batch() {
        let mut buf = sample_batch(3);
        let second = sample_batch(2);
        buf.extend_from_slice(&second[..second.len() - 1]);
        assert!(matches!(
            validate_batches(&buf, 1 << 20),
            Err(BatchError::CorruptMessage { .. })
        ));
    }

    #[test]
    fn validate_rejects_short_batch_length() {
        let mut buf = sample_batch(1);
        buf[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&48i32.to_be_bytes());
        assert!(matches!(
            validate_batches(&buf, 1 << 20),
            Err(BatchError::CorruptMessage { .. })
        ));
    }

    #[test]
    fn validate_rejects_batch_over_max_message_bytes() {
        let buf = sample_batch(10);
        let result = validate_batches(&buf, buf.len() - 1);
        assert!(matches!(result, Err(BatchError::MessageTooLarge { .. })));
        assert!(validate_batches(&buf, buf.len()).is_ok());
    }

    #[test]
    fn validate_rejects_old_magic() {
        let mut buf = sample_batch(1);
        buf[MAGIC_AT] = 1;
        assert_eq!(
            validate_batches(&buf, 1 << 20),
            Err(BatchError::UnsupportedMagic { magic: 1 })
        );
    }

    #[test]
    fn validate_rejects_negative_last_offset_delta_as_invalid_record() {
        let mut buf = sample_batch(1);
        buf[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4].copy_from_slice(&(-1i32).to_be_bytes());
        let crc = compute_crc(&buf);
        buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_batches(&buf, 1 << 20),
            Err(BatchError::InvalidRecord { .. })
        ));
    }

    #[test]
    fn offset_and_epoch_rewrites_keep_crc_valid() {
        let mut buf = sample_batch(2);
        set_base_offset(&mut buf, 9_000);
        set_partition_leader_epoch(&mut buf, 12);
        let headers = validate_batches(&buf, 1 << 20).unwrap();
        assert_eq!(headers[0].base_offset, 9_000);
        assert_eq!(headers[0].partition_leader_epoch, 12);
    }

    #[test]
    fn log_append_time_sets_bit_max_timestamp_and_crc() {
        let mut buf = sample_batch(2);
        set_log_append_time(&mut buf, 5_555).unwrap();
        let headers = validate_batches(&buf, 1 << 20).unwrap();
        assert_eq!(headers[0].max_timestamp, 5_555);
        assert_eq!(headers[0].timestamp_type(), TimestampType::LogAppendTime);
    }

    #[test]
    fn iterator_stops_cleanly_at_partial_trailing_batch() {
        let first = sample_batch(2);
        let mut buf = first.clone();
        buf.extend_from_slice(&sample_batch(3)[..30]);
        let mut iter = BatchIter::new(&buf);
        let batches: Vec<_> = iter.by_ref().collect();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].bytes, &first[..]);
        assert_eq!(iter.stopped_at(), first.len());
        assert!(iter.stop_reason().is_some());
    }

    #[test]
    fn iterator_reports_clean_end() {
        let mut buf = sample_batch(2);
        buf.extend_from_slice(&sample_batch(1));
        let mut iter = BatchIter::new(&buf);
        assert_eq!(iter.by_ref().count(), 2);
        assert_eq!(iter.stopped_at(), buf.len());
        assert!(iter.stop_reason().is_none());
    }

    #[test]
    fn sequence_wraps_past_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 0), 5);
    }
}
