//! Control batches: the transaction markers (COMMIT and ABORT) a coordinator has the partition
//! leaders write, and the reading of any control record's type.
//!
//! A control batch has the transactional and control attribute bits, the producer's id and
//! epoch, base sequence -1 and exactly one record. That record's key is `int16 version` (0) and
//! `int16 type`; for a marker its value is `int16 version` (0) and `int32 coordinatorEpoch`.
//! Kafka's other control types (2 to 6: leader change, snapshot header and footer, KRaft
//! version and voters) live only in its metadata log; a partition reader skips them.

use crate::batch::{BatchError, BatchHeader};
use crate::records::{self, build_batch, BatchOptions, NewRecord};

/// The type in a control record's key, as Kafka numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    /// Ends a transaction whose records readers must skip.
    Abort,
    /// Ends a transaction whose records readers may return.
    Commit,
    /// Any other type, kept by number (Kafka's metadata-log control records, or a future one).
    Other(i16),
}

impl ControlType {
    fn from_code(code: i16) -> ControlType {
        match code {
            0 => ControlType::Abort,
            1 => ControlType::Commit,
            other => ControlType::Other(other),
        }
    }

    fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
            ControlType::Other(code) => code,
        }
    }
}

/// Whether a transaction was committed or aborted, the two markers a partition stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionResult {
    /// The transaction's records are visible to `read_committed` readers.
    Commit,
    /// The transaction's records are skipped by `read_committed` readers.
    Abort,
}

impl TransactionResult {
    /// The result a WriteTxnMarkers request's `TransactionResult` boolean names.
    pub fn from_committed(committed: bool) -> TransactionResult {
        if committed {
            TransactionResult::Commit
        } else {
            TransactionResult::Abort
        }
    }

    fn control_type(self) -> ControlType {
        match self {
            TransactionResult::Commit => ControlType::Commit,
            TransactionResult::Abort => ControlType::Abort,
        }
    }
}

/// A transaction marker as stored in a control batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndTxnMarker {
    /// Commit or abort.
    pub result: TransactionResult,
    /// The epoch of the coordinator that decided; a lower one than the partition has seen for
    /// the producer is refused (TRANSACTION_COORDINATOR_FENCED).
    pub coordinator_epoch: i32,
}

/// What a control batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecord {
    /// A COMMIT or ABORT marker.
    EndTxn(EndTxnMarker),
    /// A control record that is not a transaction marker, by type.
    Other(i16),
}

const CONTROL_KEY_VERSION: i16 = 0;
const END_TXN_MARKER_VALUE_VERSION: i16 = 0;
/// Bytes of a marker's value: version and coordinator epoch.
const END_TXN_MARKER_VALUE_SIZE: usize = 6;

/// The key of a control record of `control_type`.
fn control_key(control_type: ControlType) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend(CONTROL_KEY_VERSION.to_be_bytes());
    key.extend(control_type.code().to_be_bytes());
    key
}

/// Builds the control batch of a transaction marker, at offset 0 (the log assigns the real one).
pub fn build_marker(
    producer_id: i64,
    producer_epoch: i16,
    marker: EndTxnMarker,
    timestamp_ms: i64,
) -> Vec<u8> {
    let mut value = Vec::with_capacity(END_TXN_MARKER_VALUE_SIZE);
    value.extend(END_TXN_MARKER_VALUE_VERSION.to_be_bytes());
    value.extend(marker.coordinator_epoch.to_be_bytes());
    let record = NewRecord {
        timestamp_ms,
        key: Some(control_key(marker.result.control_type())),
        value: Some(value),
        headers: Vec::new(),
    };
    let options = BatchOptions {
        producer_id,
        producer_epoch,
        is_transactional: true,
        is_control: true,
        ..BatchOptions::default()
    };
    build_batch(0, &[record], &options).expect("one small uncompressed record always builds")
}

/// Reads the control record of the control batch `batch` (exactly one batch, as stored).
///
/// A key version above 0 is read as version 0, as Kafka does, so that a newer writer's markers
/// still end their transactions; so is a marker value of a higher version, whose coordinator
/// epoch stays at byte 2.
pub fn parse_control(batch: &[u8]) -> Result<(BatchHeader, ControlRecord), BatchError> {
    // A control batch holds one small uncompressed record; a bound of one batch's size is ample.
    let (header, mut records) = records::records(batch, batch.len())?;
    if !header.is_control() {
        return Err(BatchError::invalid(format!(
            "expected a control batch at offset {}, found a data batch",
            header.base_offset
        )));
    }
    let record = records.next().ok_or_else(|| {
        BatchError::invalid(format!(
            "expected one control record in the batch at offset {}, found none",
            header.base_offset
        ))
    })??;
    let key = record.key.as_deref().unwrap_or_default();
    if key.len() < 4 {
        return Err(BatchError::invalid(format!(
            "expected a control record key of at least 4 bytes at offset {}, found {}",
            header.base_offset,
            key.len()
        )));
    }
    let version = i16::from_be_bytes([key[0], key[1]]);
    if version < 0 {
        return Err(BatchError::invalid(format!(
            "expected a non-negative control record key version at offset {}, found {version}",
            header.base_offset
        )));
    }
    let result = match ControlType::from_code(i16::from_be_bytes([key[2], key[3]])) {
        ControlType::Commit => TransactionResult::Commit,
        ControlType::Abort => TransactionResult::Abort,
        ControlType::Other(code) => return Ok((header, ControlRecord::Other(code))),
    };
    let value = record.value.as_deref().unwrap_or_default();
    if value.len() < END_TXN_MARKER_VALUE_SIZE {
        return Err(BatchError::invalid(format!(
            "expected a transaction marker value of at least {END_TXN_MARKER_VALUE_SIZE} bytes \
             at offset {}, found {}",
            header.base_offset,
            value.len()
        )));
    }
    let coordinator_epoch = i32::from_be_bytes(value[2..6].try_into().expect("four bytes"));
    Ok((
        header,
        ControlRecord::EndTxn(EndTxnMarker {
            result,
            coordinator_epoch,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{parse_header, validate_batches, NO_SEQUENCE};

    #[test]
    fn a_marker_is_one_transactional_control_record_with_kafkas_key_and_value() {
        let marker = EndTxnMarker {
            result: TransactionResult::Commit,
            coordinator_epoch: 7,
        };
        let built = build_marker(1000, 3, marker, 1_700_000_000_000);
        let header = parse_header(&built).unwrap();
        assert!(header.is_control() && header.is_transactional());
        assert_eq!(
            header.attributes, 0x30,
            "transactional, control, uncompressed"
        );
        assert_eq!((header.producer_id, header.producer_epoch), (1000, 3));
        assert_eq!(header.base_sequence, NO_SEQUENCE);
        assert_eq!((header.records_count, header.last_offset_delta), (1, 0));
        let (_, records) = records::decode_batch(&built, built.len()).unwrap();
        assert_eq!(records[0].key.as_deref(), Some(&[0, 0, 0, 1][..]));
        assert_eq!(records[0].value.as_deref(), Some(&[0, 0, 0, 0, 0, 7][..]));
        assert_eq!(
            parse_control(&built).unwrap().1,
            ControlRecord::EndTxn(marker)
        );
        // A replica or a recovering log validates it like any stored batch.
        validate_batches(&built, usize::MAX).unwrap();
    }

    #[test]
    fn an_abort_marker_reads_back_as_abort() {
        let marker = EndTxnMarker {
            result: TransactionResult::Abort,
            coordinator_epoch: 0,
        };
        let built = build_marker(5, 0, marker, 0);
        assert_eq!(
            parse_control(&built).unwrap().1,
            ControlRecord::EndTxn(marker)
        );
    }

    fn control_batch(key: &[u8], value: &[u8]) -> Vec<u8> {
        let record = NewRecord {
            timestamp_ms: 0,
            key: Some(key.to_vec()),
            value: Some(value.to_vec()),
            headers: Vec::new(),
        };
        let options = BatchOptions {
            producer_id: 1,
            producer_epoch: 0,
            is_transactional: true,
            is_control: true,
            ..BatchOptions::default()
        };
        build_batch(0, &[record], &options).unwrap()
    }

    #[test]
    fn newer_key_and_value_versions_are_read_as_version_zero() {
        let batch = control_batch(&[0, 1, 0, 0], &[0, 2, 0, 0, 0, 9, 0xaa, 0xbb]);
        assert_eq!(
            parse_control(&batch).unwrap().1,
            ControlRecord::EndTxn(EndTxnMarker {
                result: TransactionResult::Abort,
                coordinator_epoch: 9
            })
        );
    }

    #[test]
    fn other_control_types_are_named_by_number() {
        let batch = control_batch(&[0, 0, 0, 2], &[]);
        assert_eq!(parse_control(&batch).unwrap().1, ControlRecord::Other(2));
    }

    #[test]
    fn short_keys_short_values_negative_versions_and_data_batches_are_invalid_records() {
        for (key, value) in [
            (&[0, 0, 0][..], &[0, 0, 0, 0, 0, 1][..]),
            (&[0, 0, 0, 1][..], &[0, 0, 0, 0, 1][..]),
            (&[0xff, 0xff, 0, 1][..], &[0, 0, 0, 0, 0, 1][..]),
        ] {
            let error = parse_control(&control_batch(key, value)).unwrap_err();
            assert!(matches!(error, BatchError::InvalidRecord { .. }), "{error}");
        }
        let data = build_batch(
            0,
            &[NewRecord::value_only(0, b"v".to_vec())],
            &BatchOptions::default(),
        )
        .unwrap();
        assert!(matches!(
            parse_control(&data),
            Err(BatchError::InvalidRecord { .. })
        ));
    }
}
