//! Producer state: per producer id, its epoch, its last five batches (enough to drop retried
//! batches and to refuse gaps), its open transaction and its coordinator's epoch, following
//! Kafka's `ProducerStateManager`; and the partition's transactions that hold back the last
//! stable offset (LSO): those still open, and those ended by a marker that is not yet below the
//! high watermark.
//!
//! The state is rebuilt from batch headers (and the control record of each marker), so it is
//! cheap to snapshot (on roll and close) and to bring up to date from the snapshot by replaying
//! the batches written after it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use cauce_protocol::batch::BatchHeader;
use cauce_protocol::control::{EndTxnMarker, TransactionResult};

use crate::LogError;

/// Batches remembered per producer; Kafka clients keep at most five in flight.
pub const MAX_REMEMBERED_BATCHES: usize = 5;

/// Magic number opening a snapshot file ("CPSN").
const SNAPSHOT_MAGIC: u32 = 0x4350_534e;
/// Snapshot format version, bumped on layout changes. A snapshot of another version is ignored
/// and the state rebuilt from the log.
const SNAPSHOT_VERSION: u16 = 2;

/// Where one appended batch of a producer landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatchMetadata {
    /// Sequence of the batch's first record; with `last_sequence` identifies a retry.
    pub first_sequence: i32,
    /// Sequence of the batch's last record; the next batch must follow it.
    pub last_sequence: i32,
    /// Offset assigned to the first record, returned again for a duplicate.
    pub base_offset: i64,
    /// Offset assigned to the last record, returned again for a duplicate.
    pub last_offset: i64,
}

/// What the log knows about one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Current epoch; older epochs are fenced.
    pub producer_epoch: i16,
    /// The most recent batches, oldest first, at most [`MAX_REMEMBERED_BATCHES`].
    pub recent_batches: VecDeque<ProducerBatchMetadata>,
    /// `maxTimestamp` of the last batch; for producer expiry later.
    pub last_timestamp: i64,
    /// Offset of the first batch of the producer's open transaction in this partition.
    pub current_txn_first_offset: Option<i64>,
    /// Epoch of the coordinator that wrote the producer's last marker, -1 before any: a marker
    /// from an older coordinator is fenced.
    pub coordinator_epoch: i32,
}

impl ProducerEntry {
    fn new(producer_epoch: i16) -> ProducerEntry {
        ProducerEntry {
            producer_epoch,
            recent_batches: VecDeque::with_capacity(MAX_REMEMBERED_BATCHES),
            last_timestamp: -1,
            current_txn_first_offset: None,
            coordinator_epoch: -1,
        }
    }

    /// Sequence of the newest record, if any batch is remembered.
    pub fn last_sequence(&self) -> Option<i32> {
        self.recent_batches.back().map(|batch| batch.last_sequence)
    }

    /// Records a batch (with its assigned offsets) as the newest.
    fn remember(&mut self, header: &BatchHeader) {
        if header.producer_epoch != self.producer_epoch {
            // A new epoch restarts sequences; old batches can no longer be retried.
            self.producer_epoch = header.producer_epoch;
            self.recent_batches.clear();
        }
        self.last_timestamp = header.max_timestamp;
        if header.is_control() {
            // Transaction markers carry no sequence numbers.
            return;
        }
        if header.is_transactional() && self.current_txn_first_offset.is_none() {
            self.current_txn_first_offset = Some(header.base_offset);
        }
        while self.recent_batches.len() >= MAX_REMEMBERED_BATCHES {
            self.recent_batches.pop_front();
        }
        self.recent_batches.push_back(ProducerBatchMetadata {
            first_sequence: header.base_sequence,
            last_sequence: header.last_sequence(),
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
        });
    }
}

/// Result of checking a batch against a producer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceVerdict {
    /// New data, in order: append it.
    Append,
    /// A retry of a batch already in the log: answer with where it went, write nothing.
    Duplicate(ProducerBatchMetadata),
}

/// Decides whether a batch from an idempotent producer may be appended.
pub(crate) fn check_sequence(
    entry: Option<&ProducerEntry>,
    header: &BatchHeader,
) -> Result<SequenceVerdict, LogError> {
    debug_assert!(header.has_producer_id());
    let Some(entry) = entry else {
        // Unknown producers (new, or expired) may start at any sequence.
        return Ok(SequenceVerdict::Append);
    };
    if header.producer_epoch < entry.producer_epoch {
        return Err(LogError::InvalidProducerEpoch {
            producer_id: header.producer_id,
            current_epoch: entry.producer_epoch,
            request_epoch: header.producer_epoch,
        });
    }
    if header.is_control() {
        return Ok(SequenceVerdict::Append);
    }
    if !header.is_transactional() && entry.current_txn_first_offset.is_some() {
        return Err(LogError::InvalidTxnState {
            producer_id: header.producer_id,
            reason: "a non-transactional batch while the producer has a transaction open",
        });
    }
    if header.producer_epoch > entry.producer_epoch {
        if header.base_sequence != 0 {
            return Err(LogError::OutOfOrderSequence {
                producer_id: header.producer_id,
                producer_epoch: header.producer_epoch,
                expected_sequence: 0,
                found_sequence: header.base_sequence,
            });
        }
        return Ok(SequenceVerdict::Append);
    }
    let last_sequence = header.last_sequence();
    if let Some(original) = entry.recent_batches.iter().find(|batch| {
        batch.first_sequence == header.base_sequence && batch.last_sequence == last_sequence
    }) {
        return Ok(SequenceVerdict::Duplicate(*original));
    }
    let Some(previous_last_sequence) = entry.last_sequence() else {
        return Ok(SequenceVerdict::Append);
    };
    let expected_sequence = cauce_protocol::batch::increment_sequence(previous_last_sequence, 1);
    if header.base_sequence != expected_sequence {
        return Err(LogError::OutOfOrderSequence {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            expected_sequence,
            found_sequence: header.base_sequence,
        });
    }
    Ok(SequenceVerdict::Append)
}

/// Checks a transaction marker the coordinator asks the leader to append, as Kafka's
/// `ProducerAppendInfo.appendEndTxnMarker`: a marker from an older producer epoch is refused
/// (INVALID_PRODUCER_EPOCH), and so is one from an older coordinator than the last that wrote
/// for the producer (TRANSACTION_COORDINATOR_FENCED). A producer without state may be ended.
pub(crate) fn check_marker(
    entry: Option<&ProducerEntry>,
    producer_id: i64,
    producer_epoch: i16,
    marker: &EndTxnMarker,
) -> Result<(), LogError> {
    let Some(entry) = entry else {
        return Ok(());
    };
    if producer_epoch < entry.producer_epoch {
        return Err(LogError::InvalidProducerEpoch {
            producer_id,
            current_epoch: entry.producer_epoch,
            request_epoch: producer_epoch,
        });
    }
    if marker.coordinator_epoch < entry.coordinator_epoch {
        return Err(LogError::TransactionCoordinatorFenced {
            producer_id,
            current_epoch: entry.coordinator_epoch,
            request_epoch: marker.coordinator_epoch,
        });
    }
    Ok(())
}

/// A transaction a marker ended in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompletedTxn {
    /// Its producer.
    pub(crate) producer_id: i64,
    /// Offset of its first batch here.
    pub(crate) first_offset: i64,
    /// Offset of the marker.
    pub(crate) last_offset: i64,
    /// Whether the marker was an abort.
    pub(crate) aborted: bool,
}

/// All producers' state for one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProducerStateManager {
    /// Keyed by producer id.
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset → producer id.
    ongoing: BTreeMap<i64, i64>,
    /// Transactions whose marker is written but not yet below the high watermark, so that
    /// readers cannot take them as decided: first offset → (producer id, marker offset).
    unreplicated: BTreeMap<i64, (i64, i64)>,
}

impl ProducerStateManager {
    pub(crate) fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer with its state, by producer id.
    pub(crate) fn all(&self) -> Vec<(i64, ProducerEntry)> {
        let mut all: Vec<(i64, ProducerEntry)> = self
            .producers
            .iter()
            .map(|(id, entry)| (*id, entry.clone()))
            .collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }

    /// Applies a batch now in the log, without checks (they were made before it was written,
    /// or by the leader for a replica, or before a crash for a replayed batch). `marker` is the
    /// control record of a transaction marker. Returns the transaction a marker ended.
    pub(crate) fn apply(
        &mut self,
        header: &BatchHeader,
        marker: Option<&EndTxnMarker>,
    ) -> Option<CompletedTxn> {
        if !header.has_producer_id() {
            return None;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry::new(header.producer_epoch));
        let open_before = entry.current_txn_first_offset;
        entry.remember(header);
        if !header.is_control() {
            if let (None, Some(first_offset)) = (open_before, entry.current_txn_first_offset) {
                self.ongoing.insert(first_offset, header.producer_id);
            }
            return None;
        }
        let marker = marker?;
        entry.coordinator_epoch = marker.coordinator_epoch;
        let first_offset = entry.current_txn_first_offset.take()?;
        self.ongoing.remove(&first_offset);
        let last_offset = header.base_offset;
        self.unreplicated
            .insert(first_offset, (header.producer_id, last_offset));
        Some(CompletedTxn {
            producer_id: header.producer_id,
            first_offset,
            last_offset,
            aborted: marker.result == TransactionResult::Abort,
        })
    }

    /// The first offset of the earliest open transaction.
    pub(crate) fn first_ongoing_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// The first offset that `read_committed` readers may not pass: the start of the earliest
    /// transaction that is open or whose marker is not yet replicated.
    pub(crate) fn first_unstable_offset(&self) -> Option<i64> {
        let ongoing = self.first_ongoing_offset();
        let unreplicated = self.unreplicated.keys().next().copied();
        match (ongoing, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The high watermark moved: transactions whose marker is below it are decided for good.
    pub(crate) fn on_high_watermark(&mut self, high_watermark: i64) {
        self.unreplicated
            .retain(|_, (_, marker_offset)| *marker_offset >= high_watermark);
    }

    /// The log start moved: transactions that ended before it no longer hold anything back.
    pub(crate) fn on_log_start(&mut self, log_start_offset: i64) {
        self.unreplicated
            .retain(|_, (_, marker_offset)| *marker_offset >= log_start_offset);
    }

    /// The entry a batch would produce, starting from `current` (for staged appends).
    pub(crate) fn staged_entry(
        current: Option<&ProducerEntry>,
        header: &BatchHeader,
    ) -> ProducerEntry {
        let mut entry = current
            .cloned()
            .unwrap_or_else(|| ProducerEntry::new(header.producer_epoch));
        entry.remember(header);
        entry
    }

    /// Binary snapshot: magic, version, producer count, producers, count of unreplicated
    /// transactions, those transactions, then a CRC-32C of all that.
    pub(crate) fn encode_snapshot(&self) -> Vec<u8> {
        let mut output = Vec::with_capacity(20 + self.producers.len() * 80);
        output.extend_from_slice(&SNAPSHOT_MAGIC.to_be_bytes());
        output.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        output.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut producer_ids: Vec<_> = self.producers.keys().copied().collect();
        producer_ids.sort_unstable();
        for producer_id in producer_ids {
            let entry = &self.producers[&producer_id];
            output.extend_from_slice(&producer_id.to_be_bytes());
            output.extend_from_slice(&entry.producer_epoch.to_be_bytes());
            output.extend_from_slice(&entry.last_timestamp.to_be_bytes());
            output.extend_from_slice(&entry.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
            output.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
            output.push(entry.recent_batches.len() as u8);
            for batch in &entry.recent_batches {
                output.extend_from_slice(&batch.first_sequence.to_be_bytes());
                output.extend_from_slice(&batch.last_sequence.to_be_bytes());
                output.extend_from_slice(&batch.base_offset.to_be_bytes());
                output.extend_from_slice(&batch.last_offset.to_be_bytes());
            }
        }
        output.extend_from_slice(&(self.unreplicated.len() as u32).to_be_bytes());
        for (first_offset, (producer_id, marker_offset)) in &self.unreplicated {
            output.extend_from_slice(&first_offset.to_be_bytes());
            output.extend_from_slice(&producer_id.to_be_bytes());
            output.extend_from_slice(&marker_offset.to_be_bytes());
        }
        let crc = crc32c::crc32c(&output);
        output.extend_from_slice(&crc.to_be_bytes());
        output
    }

    /// Parses [`Self::encode_snapshot`]'s output; `Err` says what is wrong with it.
    pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<ProducerStateManager, String> {
        if bytes.len() < 14 {
            return Err(format!("expected at least 14 bytes, found {}", bytes.len()));
        }
        let (body, crc_bytes) = bytes.split_at(bytes.len() - 4);
        let stored_crc = u32::from_be_bytes(crc_bytes.try_into().expect("four bytes"));
        if crc32c::crc32c(body) != stored_crc {
            return Err("crc mismatch".to_string());
        }
        let mut reader = SnapshotReader {
            bytes: body,
            position: 0,
        };
        if reader.u32()? != SNAPSHOT_MAGIC {
            return Err("bad magic".to_string());
        }
        let version = reader.u16()?;
        if version != SNAPSHOT_VERSION {
            return Err(format!(
                "expected version {SNAPSHOT_VERSION}, found {version}"
            ));
        }
        let mut state = ProducerStateManager::default();
        let count = reader.u32()?;
        state.producers.reserve(count.min(1 << 16) as usize);
        for _ in 0..count {
            let producer_id = reader.i64()?;
            let mut entry = ProducerEntry::new(reader.u16()? as i16);
            entry.last_timestamp = reader.i64()?;
            let txn_first_offset = reader.i64()?;
            entry.coordinator_epoch = reader.u32()? as i32;
            if txn_first_offset >= 0 {
                entry.current_txn_first_offset = Some(txn_first_offset);
                state.ongoing.insert(txn_first_offset, producer_id);
            }
            let batch_count = reader.u8()?;
            if usize::from(batch_count) > MAX_REMEMBERED_BATCHES {
                return Err(format!(
                    "producer {producer_id} remembers {batch_count} batches, expected at most {MAX_REMEMBERED_BATCHES}"
                ));
            }
            for _ in 0..batch_count {
                entry.recent_batches.push_back(ProducerBatchMetadata {
                    first_sequence: reader.u32()? as i32,
                    last_sequence: reader.u32()? as i32,
                    base_offset: reader.i64()?,
                    last_offset: reader.i64()?,
                });
            }
            state.producers.insert(producer_id, entry);
        }
        let unreplicated = reader.u32()?;
        for _ in 0..unreplicated {
            let first_offset = reader.i64()?;
            let producer_id = reader.i64()?;
            let marker_offset = reader.i64()?;
            state
                .unreplicated
                .insert(first_offset, (producer_id, marker_offset));
        }
        if reader.position != body.len() {
            return Err("trailing bytes".to_string());
        }
        Ok(state)
    }
}

/// Cursor over snapshot bytes with bounds checks.
struct SnapshotReader<'a> {
    /// The snapshot body (without its CRC).
    bytes: &'a [u8],
    /// Next byte to read.
    position: usize,
}

impl SnapshotReader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let end = self.position + N;
        let slice = self
            .bytes
            .get(self.position..end)
            .ok_or_else(|| "truncated snapshot".to_string())?;
        self.position = end;
        Ok(slice.try_into().expect("length checked"))
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cauce_protocol::records::{build_batch, BatchOptions, NewRecord};

    fn header(
        producer_epoch: i16,
        base_sequence: i32,
        record_count: usize,
        base_offset: i64,
    ) -> BatchHeader {
        let records: Vec<_> = (0..record_count)
            .map(|_| NewRecord::value_only(1, b"v".to_vec()))
            .collect();
        let options = BatchOptions {
            producer_id: 9,
            producer_epoch,
            base_sequence,
            ..BatchOptions::default()
        };
        let batch = build_batch(base_offset, &records, &options).unwrap();
        cauce_protocol::batch::parse_header(&batch).unwrap()
    }

    #[test]
    fn remembers_only_the_last_five_batches() {
        let mut state = ProducerStateManager::default();
        for index in 0..7 {
            state.apply(&header(0, index, 1, i64::from(index)), None);
        }
        let entry = state.get(9).unwrap();
        assert_eq!(entry.recent_batches.len(), MAX_REMEMBERED_BATCHES);
        assert_eq!(entry.recent_batches[0].first_sequence, 2);
    }

    #[test]
    fn older_epoch_is_fenced_and_new_epoch_must_start_at_zero() {
        let mut state = ProducerStateManager::default();
        state.apply(&header(3, 0, 2, 0), None);
        let entry = state.get(9);
        assert!(matches!(
            check_sequence(entry, &header(2, 2, 1, 0)),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            check_sequence(entry, &header(4, 5, 1, 0)),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        assert_eq!(
            check_sequence(entry, &header(4, 0, 1, 0)).unwrap(),
            SequenceVerdict::Append
        );
    }

    #[test]
    fn sequence_wraps_from_max_to_zero() {
        let mut state = ProducerStateManager::default();
        state.apply(&header(0, i32::MAX, 1, 0), None);
        assert_eq!(
            check_sequence(state.get(9), &header(0, 0, 1, 1)).unwrap(),
            SequenceVerdict::Append
        );
    }

    #[test]
    fn snapshot_round_trips_and_rejects_damage() {
        let mut state = ProducerStateManager::default();
        state.apply(&header(1, 0, 3, 10), None);
        state.apply(&header(1, 3, 2, 13), None);
        let bytes = state.encode_snapshot();
        assert_eq!(
            ProducerStateManager::decode_snapshot(&bytes).unwrap(),
            state
        );
        let mut damaged = bytes.clone();
        damaged[6] ^= 1;
        assert!(ProducerStateManager::decode_snapshot(&damaged).is_err());
        assert!(ProducerStateManager::decode_snapshot(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn a_snapshot_remembering_more_batches_than_kept_is_refused() {
        let mut state = ProducerStateManager::default();
        state.apply(&header(1, 0, 3, 10), None);
        let mut bytes = state.encode_snapshot();
        bytes.truncate(bytes.len() - 4);
        // magic (4), version (2), count (4), producer id (8), epoch (2), timestamp (8),
        // transaction start (8), coordinator epoch (4): the batch count follows. Claim 200, with a valid checksum.
        bytes[40] = 200;
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        let refused = ProducerStateManager::decode_snapshot(&bytes).unwrap_err();
        assert!(refused.contains("remembers 200 batches"), "{refused}");
    }
}
