//! The records inside a magic-2 batch: decoding (decompressing when needed) and building.
//!
//! Each record, after the batch header (and after decompression), is:
//! `length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
//! keyLength varint (-1 = null), key, valueLength varint (-1 = null), value,
//! headerCount varint, then per header: keyLength varint, key, valueLength varint (-1 = null), value`.
//! Varints are zig-zag encoded, as in protobuf.
//!
//! The broker itself rarely looks inside batches; this module serves ListOffsets by timestamp,
//! compaction, the metadata log and tests.

use bytes::Bytes;

use crate::batch::{
    self, BatchError, BatchHeader, TimestampType, ATTRIBUTES_AT, BASE_SEQUENCE_AT,
    BASE_TIMESTAMP_AT, BATCH_HEADER_SIZE, BATCH_LENGTH_AT, CONTROL_BIT, CRC_AT, CURRENT_MAGIC,
    LAST_OFFSET_DELTA_AT, LOG_OVERHEAD, MAGIC_AT, MAX_TIMESTAMP_AT, NO_TIMESTAMP,
    PARTITION_LEADER_EPOCH_AT, PRODUCER_EPOCH_AT, PRODUCER_ID_AT, RECORDS_COUNT_AT,
    TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT,
};
use crate::compression::{self, Compression};

/// Appends a zig-zag varint (32-bit).
pub fn write_varint(output: &mut Vec<u8>, value: i32) {
    write_unsigned_varlong(output, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

/// Appends a zig-zag varlong (64-bit).
pub fn write_varlong(output: &mut Vec<u8>, value: i64) {
    write_unsigned_varlong(output, ((value << 1) ^ (value >> 63)) as u64);
}

fn write_unsigned_varlong(output: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        output.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    output.push(value as u8);
}

fn read_unsigned_varlong(
    buf: &[u8],
    position: &mut usize,
    max_bytes: usize,
) -> Result<u64, BatchError> {
    let mut value = 0u64;
    for index in 0..max_bytes {
        let Some(&byte) = buf.get(*position) else {
            return Err(BatchError::corrupt(
                "expected a varint, found the end of the records",
            ));
        };
        *position += 1;
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(BatchError::corrupt(format!(
        "expected a varint of at most {max_bytes} bytes, found a longer one"
    )))
}

/// Reads a zig-zag varint (32-bit) at `*position`, advancing it.
pub fn read_varint(buf: &[u8], position: &mut usize) -> Result<i32, BatchError> {
    let raw = read_unsigned_varlong(buf, position, 5)?;
    if raw > u64::from(u32::MAX) {
        return Err(BatchError::corrupt(
            "expected a 32-bit varint, found a larger value",
        ));
    }
    let raw = raw as u32;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a zig-zag varlong (64-bit) at `*position`, advancing it.
pub fn read_varlong(buf: &[u8], position: &mut usize) -> Result<i64, BatchError> {
    let raw = read_unsigned_varlong(buf, position, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// A record header: a non-null key and a nullable value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// Header name; Kafka requires it non-null (UTF-8 by convention, not checked here).
    pub key: Bytes,
    /// Header value; `None` is a null value.
    pub value: Option<Bytes>,
}

/// A decoded record; slices share the (decompressed) records buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Record attributes; unused by Kafka today, kept for fidelity.
    pub attributes: i8,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Key; `None` is a null key.
    pub key: Option<Bytes>,
    /// Value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Application headers in order.
    pub headers: Vec<RecordHeader>,
}

impl Record {
    /// Absolute offset of the record in its partition.
    pub fn offset(&self, header: &BatchHeader) -> i64 {
        header
            .base_offset
            .saturating_add(i64::from(self.offset_delta))
    }

    /// The record's timestamp as clients see it: the batch's `maxTimestamp` for LogAppendTime.
    pub fn timestamp(&self, header: &BatchHeader) -> i64 {
        match header.timestamp_type() {
            TimestampType::LogAppendTime => header.max_timestamp,
            // Saturating: the delta is the client's, never checked against the header.
            TimestampType::CreateTime => header.base_timestamp.saturating_add(self.timestamp_delta),
        }
    }
}

/// Iterates the records of one batch, owning the decompressed records section.
pub struct RecordIter {
    /// The records section, decompressed; decoded records slice into it.
    records: Bytes,
    /// Where the next record starts in `records`.
    position: usize,
    /// Records still to yield, from the header's `recordsCount`.
    remaining: i32,
}

impl Iterator for RecordIter {
    type Item = Result<Record, BatchError>;

    fn next(&mut self) -> Option<Result<Record, BatchError>> {
        if self.remaining <= 0 {
            return None;
        }
        self.remaining -= 1;
        let result = decode_record(&self.records, &mut self.position);
        if result.is_err() {
            // A record that does not decode leaves no reliable place to resume from.
            self.remaining = 0;
        }
        Some(result)
    }
}

/// Starts iterating the records of the whole batch `batch` (exactly one batch), refusing a
/// compressed one that would decompress to more than `max_decompressed` bytes (see
/// [`compression::decompression_limit`]).
pub fn records(
    batch: &[u8],
    max_decompressed: usize,
) -> Result<(BatchHeader, RecordIter), BatchError> {
    let header = batch::parse_header(batch)?;
    if batch.len() < header.total_size() {
        return Err(BatchError::corrupt(format!(
            "expected {} bytes of batch, found {}",
            header.total_size(),
            batch.len()
        )));
    }
    let section = &batch[BATCH_HEADER_SIZE..header.total_size()];
    let codec = header.compression()?;
    let records = match codec {
        Compression::None => Bytes::copy_from_slice(section),
        _ => Bytes::from(compression::decompress(codec, section, max_decompressed)?),
    };
    Ok((
        header,
        RecordIter {
            records,
            position: 0,
            remaining: header.records_count,
        },
    ))
}

/// Decodes every record of one batch (decompressed to at most `max_decompressed` bytes).
pub fn decode_batch(
    batch: &[u8],
    max_decompressed: usize,
) -> Result<(BatchHeader, Vec<Record>), BatchError> {
    let (header, iter) = records(batch, max_decompressed)?;
    let decoded = iter.collect::<Result<Vec<_>, _>>()?;
    Ok((header, decoded))
}

fn read_nullable_bytes(records: &Bytes, position: &mut usize) -> Result<Option<Bytes>, BatchError> {
    let length = read_varint(records, position)?;
    if length < 0 {
        return Ok(None);
    }
    let length = length as usize;
    if length > records.len() - *position {
        return Err(BatchError::corrupt(format!(
            "expected {length} bytes of record field, found {}",
            records.len() - *position
        )));
    }
    let slice = records.slice(*position..*position + length);
    *position += length;
    Ok(Some(slice))
}

fn decode_record(records: &Bytes, position: &mut usize) -> Result<Record, BatchError> {
    let length = read_varint(records, position)?;
    if length < 0 || length as usize > records.len() - *position {
        return Err(BatchError::corrupt(format!(
            "expected a record length within the remaining {} bytes, found {length}",
            records.len() - *position
        )));
    }
    let end = *position + length as usize;
    // Parse within the record's own extent so a bad field cannot read into the next record.
    let body = records.slice(..end);
    let attributes = *body
        .get(*position)
        .ok_or_else(|| BatchError::corrupt("expected record attributes, found the end"))?
        as i8;
    *position += 1;
    let timestamp_delta = read_varlong(&body, position)?;
    let offset_delta = read_varint(&body, position)?;
    let key = read_nullable_bytes(&body, position)?;
    let value = read_nullable_bytes(&body, position)?;
    let header_count = read_varint(&body, position)?;
    if header_count < 0 {
        return Err(BatchError::corrupt(format!(
            "expected a non-negative header count, found {header_count}"
        )));
    }
    let mut headers = Vec::with_capacity((header_count as usize).min(64));
    for _ in 0..header_count {
        let header_key = read_nullable_bytes(&body, position)?
            .ok_or_else(|| BatchError::corrupt("expected a header key, found null"))?;
        let header_value = read_nullable_bytes(&body, position)?;
        headers.push(RecordHeader {
            key: header_key,
            value: header_value,
        });
    }
    if *position != end {
        return Err(BatchError::corrupt(format!(
            "expected the record to end at byte {end}, it ended at {position}"
        )));
    }
    Ok(Record {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
    })
}

/// A record to put into a new batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRecord {
    /// Absolute timestamp in milliseconds (CreateTime).
    pub timestamp_ms: i64,
    /// Key; `None` is a null key.
    pub key: Option<Vec<u8>>,
    /// Value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers as (name, nullable value).
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl NewRecord {
    /// A record with only a value, the common case in tests.
    pub fn value_only(timestamp_ms: i64, value: Vec<u8>) -> NewRecord {
        NewRecord {
            timestamp_ms,
            key: None,
            value: Some(value),
            headers: Vec::new(),
        }
    }
}

/// Header fields of a batch being built; `Default` is a plain non-idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Codec for the records section.
    pub compression: Compression,
    /// Idempotent producer id, -1 for none.
    pub producer_id: i64,
    /// Producer epoch, -1 for none.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 for none.
    pub base_sequence: i32,
    /// Leader epoch to stamp; the broker overwrites it on append.
    pub partition_leader_epoch: i32,
    /// Sets the transactional attribute bit.
    pub is_transactional: bool,
    /// Sets the control attribute bit (transaction markers).
    pub is_control: bool,
    /// Sets the timestamp-type attribute bit.
    pub timestamp_type: TimestampType,
}

impl Default for BatchOptions {
    fn default() -> BatchOptions {
        BatchOptions {
            compression: Compression::None,
            producer_id: batch::NO_PRODUCER_ID,
            producer_epoch: batch::NO_PRODUCER_EPOCH,
            base_sequence: batch::NO_SEQUENCE,
            partition_leader_epoch: batch::NO_PARTITION_LEADER_EPOCH,
            is_transactional: false,
            is_control: false,
            timestamp_type: TimestampType::CreateTime,
        }
    }
}

fn write_nullable_bytes(output: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varint(output, -1),
        Some(bytes) => {
            write_varint(output, bytes.len() as i32);
            output.extend_from_slice(bytes);
        }
    }
}

fn encode_record(output: &mut Vec<u8>, record: &NewRecord, offset_delta: i32, base_timestamp: i64) {
    let mut body = Vec::with_capacity(32 + record.value.as_ref().map_or(0, Vec::len));
    body.push(0); // attributes
    write_varlong(&mut body, record.timestamp_ms - base_timestamp);
    write_varint(&mut body, offset_delta);
    write_nullable_bytes(&mut body, record.key.as_deref());
    write_nullable_bytes(&mut body, record.value.as_deref());
    write_varint(&mut body, record.headers.len() as i32);
    for (header_key, header_value) in &record.headers {
        write_nullable_bytes(&mut body, Some(header_key));
        write_nullable_bytes(&mut body, header_value.as_deref());
    }
    write_varint(output, body.len() as i32);
    output.extend_from_slice(&body);
}

/// Builds one magic-2 batch holding `records`, with offsets from `base_offset` and a valid CRC.
///
/// The base timestamp is the first record's; `maxTimestamp` is the largest record timestamp.
pub fn build_batch(
    base_offset: i64,
    records: &[NewRecord],
    options: &BatchOptions,
) -> Result<Vec<u8>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::invalid(
            "expected at least one record to build a batch",
        ));
    }
    let base_timestamp = records[0].timestamp_ms;
    let max_timestamp = records
        .iter()
        .map(|record| record.timestamp_ms)
        .max()
        .unwrap_or(NO_TIMESTAMP);
    let mut section = Vec::new();
    for (index, record) in records.iter().enumerate() {
        encode_record(&mut section, record, index as i32, base_timestamp);
    }
    let section = compression::compress(options.compression, &section)?;

    let mut attributes = i16::from(options.compression.id());
    if options.timestamp_type == TimestampType::LogAppendTime {
        attributes |= TIMESTAMP_TYPE_BIT;
    }
    if options.is_transactional {
        attributes |= TRANSACTIONAL_BIT;
    }
    if options.is_control {
        attributes |= CONTROL_BIT;
    }
    let header = BatchHeader {
        base_offset,
        batch_length: 0,
        partition_leader_epoch: options.partition_leader_epoch,
        magic: CURRENT_MAGIC,
        crc: 0,
        attributes,
        last_offset_delta: (records.len() - 1) as i32,
        base_timestamp,
        max_timestamp,
        producer_id: options.producer_id,
        producer_epoch: options.producer_epoch,
        base_sequence: options.base_sequence,
        records_count: records.len() as i32,
    };
    Ok(assemble_batch(&header, &section))
}

/// A complete batch: `header`'s fields (its length, magic and CRC are computed here) followed
/// by the records `section`.
fn assemble_batch(header: &BatchHeader, section: &[u8]) -> Vec<u8> {
    let total_size = BATCH_HEADER_SIZE + section.len();
    let mut batch = vec![0u8; BATCH_HEADER_SIZE];
    batch.extend_from_slice(section);
    let put = |batch: &mut Vec<u8>, at: usize, bytes: &[u8]| {
        batch[at..at + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut batch, 0, &header.base_offset.to_be_bytes());
    put(
        &mut batch,
        BATCH_LENGTH_AT,
        &((total_size - LOG_OVERHEAD) as i32).to_be_bytes(),
    );
    put(
        &mut batch,
        PARTITION_LEADER_EPOCH_AT,
        &header.partition_leader_epoch.to_be_bytes(),
    );
    batch[MAGIC_AT] = CURRENT_MAGIC as u8;
    put(&mut batch, ATTRIBUTES_AT, &header.attributes.to_be_bytes());
    put(
        &mut batch,
        LAST_OFFSET_DELTA_AT,
        &header.last_offset_delta.to_be_bytes(),
    );
    put(
        &mut batch,
        BASE_TIMESTAMP_AT,
        &header.base_timestamp.to_be_bytes(),
    );
    put(
        &mut batch,
        MAX_TIMESTAMP_AT,
        &header.max_timestamp.to_be_bytes(),
    );
    put(
        &mut batch,
        PRODUCER_ID_AT,
        &header.producer_id.to_be_bytes(),
    );
    put(
        &mut batch,
        PRODUCER_EPOCH_AT,
        &header.producer_epoch.to_be_bytes(),
    );
    put(
        &mut batch,
        BASE_SEQUENCE_AT,
        &header.base_sequence.to_be_bytes(),
    );
    put(
        &mut batch,
        RECORDS_COUNT_AT,
        &header.records_count.to_be_bytes(),
    );
    let crc = batch::compute_crc(&batch);
    put(&mut batch, CRC_AT, &crc.to_be_bytes());
    debug_assert_eq!(batch.len(), total_size);
    batch
}

/// Re-encodes a decoded record exactly: its attributes, timestamp and offset deltas are kept.
fn encode_decoded_record(output: &mut Vec<u8>, record: &Record) {
    let mut body = Vec::with_capacity(32 + record.value.as_ref().map_or(0, Bytes::len));
    body.push(record.attributes as u8);
    write_varlong(&mut body, record.timestamp_delta);
    write_varint(&mut body, record.offset_delta);
    write_nullable_bytes(&mut body, record.key.as_deref());
    write_nullable_bytes(&mut body, record.value.as_deref());
    write_varint(&mut body, record.headers.len() as i32);
    for header in &record.headers {
        write_nullable_bytes(&mut body, Some(&header.key));
        write_nullable_bytes(&mut body, header.value.as_deref());
    }
    write_varint(output, body.len() as i32);
    output.extend_from_slice(&body);
}

/// Rebuilds a batch keeping only `retained`, a subset (in order) of the records decoded from
/// the batch `original` describes; this is what log compaction writes.
///
/// Everything that identifies the batch is kept: base offset, `lastOffsetDelta` (so the next
/// offset and the producer's last sequence stay), partition leader epoch, attributes and
/// codec (recompressed with the same codec), base timestamp (so record timestamp deltas stay
/// valid), producer id, epoch and base sequence. `maxTimestamp` is recomputed from the kept
/// records for CreateTime and kept for LogAppendTime, as Kafka's cleaner does.
///
/// With no records left the result is an empty batch (`recordsCount` 0, no records section,
/// uncompressed), which Kafka keeps to preserve an idempotent producer's last sequence.
pub fn rebuild_batch(original: &BatchHeader, retained: &[Record]) -> Result<Vec<u8>, BatchError> {
    debug_assert!(
        retained
            .windows(2)
            .all(|pair| pair[0].offset_delta < pair[1].offset_delta),
        "retained records must be in offset order"
    );
    if let Some(record) = retained
        .iter()
        .find(|record| record.offset_delta < 0 || record.offset_delta > original.last_offset_delta)
    {
        return Err(BatchError::invalid(format!(
            "expected record offset deltas within 0..={}, found {}",
            original.last_offset_delta, record.offset_delta
        )));
    }
    let (section, attributes) = if retained.is_empty() {
        (Vec::new(), original.attributes & !batch::COMPRESSION_MASK)
    } else {
        let mut section = Vec::new();
        for record in retained {
            encode_decoded_record(&mut section, record);
        }
        (
            compression::compress(original.compression()?, &section)?,
            original.attributes,
        )
    };
    let max_timestamp = match original.timestamp_type() {
        TimestampType::LogAppendTime => original.max_timestamp,
        TimestampType::CreateTime => retained
            .iter()
            .map(|record| {
                original
                    .base_timestamp
                    .saturating_add(record.timestamp_delta)
            })
            .max()
            .unwrap_or(original.max_timestamp),
    };
    let header = BatchHeader {
        attributes,
        max_timestamp,
        records_count: retained.len() as i32,
        ..*original
    };
    Ok(assemble_batch(&header, &section))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn full_record(timestamp_ms: i64) -> NewRecord {
        NewRecord {
            timestamp_ms,
            key: Some(b"key".to_vec()),
            value: None,
            headers: vec![
                (b"h1".to_vec(), Some(b"v1".to_vec())),
                (b"h2".to_vec(), None),
            ],
        }
    }

    #[test]
    fn varint_known_encodings() {
        let mut output = Vec::new();
        write_varint(&mut output, 0);
        write_varint(&mut output, -1);
        write_varint(&mut output, 1);
        write_varint(&mut output, 300);
        assert_eq!(output, vec![0x00, 0x01, 0x02, 0xd8, 0x04]);
    }

    #[test]
    fn overlong_varint_is_corrupt() {
        let buf = [0xffu8; 11];
        assert!(read_varint(&buf, &mut 0).is_err());
        assert!(read_varlong(&buf, &mut 0).is_err());
    }

    #[test]
    fn batch_round_trips_keys_nulls_and_headers() {
        let records = vec![
            full_record(1_000),
            NewRecord::value_only(999, b"v".to_vec()),
        ];
        let batch = build_batch(10, &records, &BatchOptions::default()).unwrap();
        let (header, decoded) = decode_batch(&batch, usize::MAX).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].key.as_deref(), Some(&b"key"[..]));
        assert_eq!(decoded[0].value, None);
        assert_eq!(decoded[0].headers.len(), 2);
        assert_eq!(decoded[0].headers[1].value, None);
        assert_eq!(decoded[1].offset(&header), 11);
        assert_eq!(decoded[1].timestamp(&header), 999);
        assert_eq!(header.max_timestamp, 1_000);
    }

    #[test]
    fn every_codec_builds_a_readable_batch() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let records: Vec<_> = (0..50).map(|index| full_record(index * 10)).collect();
            let options = BatchOptions {
                compression,
                ..BatchOptions::default()
            };
            let batch = build_batch(0, &records, &options).unwrap();
            let headers = batch::validate_batches(&batch, 1 << 20).unwrap();
            assert_eq!(headers[0].compression().unwrap(), compression);
            let (_, decoded) = decode_batch(&batch, usize::MAX).unwrap();
            assert_eq!(decoded.len(), 50);
            assert_eq!(decoded[49].timestamp_delta, 490);
        }
    }

    #[test]
    fn log_append_time_records_report_batch_max_timestamp() {
        let mut batch = build_batch(
            0,
            &[NewRecord::value_only(5, b"x".to_vec())],
            &BatchOptions::default(),
        )
        .unwrap();
        batch::set_log_append_time(&mut batch, 77).unwrap();
        let (header, decoded) = decode_batch(&batch, usize::MAX).unwrap();
        assert_eq!(decoded[0].timestamp(&header), 77);
    }

    #[test]
    fn truncated_records_section_is_corrupt() {
        let batch = build_batch(0, &[full_record(1)], &BatchOptions::default()).unwrap();
        let mut truncated = batch[..batch.len() - 2].to_vec();
        let length = (truncated.len() - LOG_OVERHEAD) as i32;
        truncated[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        assert!(decode_batch(&truncated, usize::MAX).is_err());
    }

    #[test]
    fn empty_record_list_is_rejected() {
        assert!(build_batch(0, &[], &BatchOptions::default()).is_err());
    }

    #[test]
    fn rebuilt_batch_keeps_offsets_sequence_and_codec() {
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let records: Vec<_> = (0..5).map(|index| full_record(100 + index)).collect();
            let options = BatchOptions {
                compression,
                producer_id: 7,
                producer_epoch: 2,
                base_sequence: 40,
                partition_leader_epoch: 3,
                ..BatchOptions::default()
            };
            let original = build_batch(1_000, &records, &options).unwrap();
            let (header, decoded) = decode_batch(&original, usize::MAX).unwrap();
            let kept = vec![decoded[1].clone(), decoded[3].clone()];
            let rebuilt = rebuild_batch(&header, &kept).unwrap();
            let rebuilt_header = batch::validate_batches(&rebuilt, 1 << 20).unwrap()[0];
            assert_eq!(rebuilt_header.base_offset, 1_000);
            assert_eq!(rebuilt_header.last_offset_delta, 4);
            assert_eq!(rebuilt_header.records_count, 2);
            assert_eq!(rebuilt_header.producer_id, 7);
            assert_eq!(rebuilt_header.producer_epoch, 2);
            assert_eq!(rebuilt_header.base_sequence, 40);
            assert_eq!(rebuilt_header.partition_leader_epoch, 3);
            assert_eq!(rebuilt_header.compression().unwrap(), compression);
            assert_eq!(rebuilt_header.max_timestamp, 103);
            let (_, redecoded) = decode_batch(&rebuilt, usize::MAX).unwrap();
            assert_eq!(redecoded, kept);
            assert_eq!(redecoded[1].offset(&rebuilt_header), 1_003);
            assert_eq!(redecoded[1].timestamp(&rebuilt_header), 103);
        }
    }

    #[test]
    fn rebuilt_batch_without_records_is_an_empty_uncompressed_header() {
        let options = BatchOptions {
            compression: Compression::Zstd,
            producer_id: 7,
            producer_epoch: 0,
            base_sequence: 0,
            ..BatchOptions::default()
        };
        let original = build_batch(10, &[full_record(5), full_record(6)], &options).unwrap();
        let header = batch::parse_header(&original).unwrap();
        let empty = rebuild_batch(&header, &[]).unwrap();
        assert_eq!(empty.len(), BATCH_HEADER_SIZE);
        let empty_header = batch::parse_header(&empty).unwrap();
        batch::verify_crc(&empty_header, &empty).unwrap();
        assert_eq!(empty_header.records_count, 0);
        assert_eq!(empty_header.next_offset(), 12);
        assert_eq!(empty_header.last_sequence(), 1);
        assert_eq!(empty_header.compression().unwrap(), Compression::None);
        assert_eq!(decode_batch(&empty, usize::MAX).unwrap().1, vec![]);
    }

    fn arbitrary_record() -> impl Strategy<Value = NewRecord> {
        (
            -1_000_000i64..1_000_000,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 0..8),
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
                ),
                0..3,
            ),
        )
            .prop_map(|(timestamp_ms, key, value, headers)| NewRecord {
                timestamp_ms,
                key,
                value,
                headers,
            })
    }

    proptest! {
        #[test]
        fn varint_round_trips(value in any::<i32>()) {
            let mut output = Vec::new();
            write_varint(&mut output, value);
            let mut position = 0;
            prop_assert_eq!(read_varint(&output, &mut position).unwrap(), value);
            prop_assert_eq!(position, output.len());
        }

        #[test]
        fn varlong_round_trips(value in any::<i64>()) {
            let mut output = Vec::new();
            write_varlong(&mut output, value);
            let mut position = 0;
            prop_assert_eq!(read_varlong(&output, &mut position).unwrap(), value);
            prop_assert_eq!(position, output.len());
        }

        #[test]
        fn built_batches_iterate_back_to_their_records(
            records in proptest::collection::vec(arbitrary_record(), 1..20),
            base_offset in 0i64..1_000_000_000,
            codec_id in 0u8..5,
        ) {
            let options = BatchOptions {
                compression: Compression::from_id(codec_id).unwrap(),
                ..BatchOptions::default()
            };
            let batch = build_batch(base_offset, &records, &options).unwrap();
            let mut concatenated = batch.clone();
            concatenated.extend_from_slice(&batch);
            let headers = batch::validate_batches(&concatenated, 1 << 24).unwrap();
            prop_assert_eq!(headers.len(), 2);
            let (header, decoded) = decode_batch(&batch, usize::MAX).unwrap();
            prop_assert_eq!(header.base_offset, base_offset);
            prop_assert_eq!(decoded.len(), records.len());
            for (index, (original, decoded)) in records.iter().zip(&decoded).enumerate() {
                prop_assert_eq!(decoded.offset(&header), base_offset + index as i64);
                prop_assert_eq!(decoded.timestamp(&header), original.timestamp_ms);
                prop_assert_eq!(decoded.key.as_deref(), original.key.as_deref());
                prop_assert_eq!(decoded.value.as_deref(), original.value.as_deref());
                prop_assert_eq!(decoded.headers.len(), original.headers.len());
                for (decoded_header, (key, value)) in decoded.headers.iter().zip(&original.headers) {
                    prop_assert_eq!(&decoded_header.key[..], &key[..]);
                    prop_assert_eq!(decoded_header.value.as_deref(), value.as_deref());
                }
            }
        }
    }
}
