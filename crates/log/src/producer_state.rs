//! Idempotent-producer state: per producer id, its epoch and its last five batches, enough to
//! drop retried batches and to refuse gaps, following Kafka's rules.
//!
//! The state is rebuilt from batch headers alone, so it is cheap to snapshot (on roll and close)
//! and to bring up to date from the snapshot by replaying the headers written after it.

use std::collections::{HashMap, VecDeque};

use cauce_protocol::batch::BatchHeader;

use crate::LogError;

/// Batches remembered per producer; Kafka clients keep at most five in flight.
pub const MAX_REMEMBERED_BATCHES: usize = 5;

/// Magic number opening a snapshot file ("CPSN").
const SNAPSHOT_MAGIC: u32 = 0x4350_534e;
/// Snapshot format version, bumped on layout changes.
const SNAPSHOT_VERSION: u16 = 1;

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
}

impl ProducerEntry {
    fn new(producer_epoch: i16) -> ProducerEntry {
        ProducerEntry {
            producer_epoch,
            recent_batches: VecDeque::with_capacity(MAX_REMEMBERED_BATCHES),
            last_timestamp: -1,
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

/// All producers' state for one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProducerStateManager {
    /// Keyed by producer id.
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    pub(crate) fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub(crate) fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
        self.producers.insert(producer_id, entry);
    }

    /// Applies a batch header already in the log (replay after a snapshot), without checks.
    pub(crate) fn replay(&mut self, header: &BatchHeader) {
        if !header.has_producer_id() {
            return;
        }
        self.producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry::new(header.producer_epoch))
            .remember(header);
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

    /// Binary snapshot: magic, version, count, entries, then a CRC-32C of all that.
    pub(crate) fn encode_snapshot(&self) -> Vec<u8> {
        let mut output = Vec::with_capacity(16 + self.producers.len() * 64);
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
            output.push(entry.recent_batches.len() as u8);
            for batch in &entry.recent_batches {
                output.extend_from_slice(&batch.first_sequence.to_be_bytes());
                output.extend_from_slice(&batch.last_sequence.to_be_bytes());
                output.extend_from_slice(&batch.base_offset.to_be_bytes());
                output.extend_from_slice(&batch.last_offset.to_be_bytes());
            }
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
        let count = reader.u32()?;
        let mut producers = HashMap::with_capacity(count.min(1 << 16) as usize);
        for _ in 0..count {
            let producer_id = reader.i64()?;
            let mut entry = ProducerEntry::new(reader.u16()? as i16);
            entry.last_timestamp = reader.i64()?;
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
            producers.insert(producer_id, entry);
        }
        if reader.position != body.len() {
            return Err("trailing bytes".to_string());
        }
        Ok(ProducerStateManager { producers })
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
            state.replay(&header(0, index, 1, i64::from(index)));
        }
        let entry = state.get(9).unwrap();
        assert_eq!(entry.recent_batches.len(), MAX_REMEMBERED_BATCHES);
        assert_eq!(entry.recent_batches[0].first_sequence, 2);
    }

    #[test]
    fn older_epoch_is_fenced_and_new_epoch_must_start_at_zero() {
        let mut state = ProducerStateManager::default();
        state.replay(&header(3, 0, 2, 0));
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
        state.replay(&header(0, i32::MAX, 1, 0));
        assert_eq!(
            check_sequence(state.get(9), &header(0, 0, 1, 1)).unwrap(),
            SequenceVerdict::Append
        );
    }

    #[test]
    fn snapshot_round_trips_and_rejects_damage() {
        let mut state = ProducerStateManager::default();
        state.replay(&header(1, 0, 3, 10));
        state.replay(&header(1, 3, 2, 13));
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
        state.replay(&header(1, 0, 3, 10));
        let mut bytes = state.encode_snapshot();
        bytes.truncate(bytes.len() - 4);
        // magic (4), version (2), count (4), producer id (8), epoch (2), timestamp (8): the
        // batch count follows. Claim 200, with a valid checksum.
        bytes[28] = 200;
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        let refused = ProducerStateManager::decode_snapshot(&bytes).unwrap_err();
        assert!(refused.contains("remembers 200 batches"), "{refused}");
    }
}
