//! A transactional id's state and the decisions of the transaction coordinator, as pure
//! functions of the current state, the request and the clock, following Kafka's
//! `TransactionCoordinator` and `TransactionMetadata` for clients of transaction version 1
//! (docs/TRANSACTIONS.md §2.3).
//!
//! A decision either answers at once (an error, or success with nothing to write) or gives the
//! new state to write to `__transaction_state`; the shell writes it, waits for the in-sync
//! replicas, then adopts it. While a write is in flight the id has a pending state and every
//! other request for it gets CONCURRENT_TRANSACTIONS, which the shell enforces.

use std::collections::BTreeSet;

use cauce_protocol::ResponseError;

/// Kafka's `RecordBatch.NO_PRODUCER_ID`.
pub const NO_PRODUCER_ID: i64 = -1;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// The states of a transaction, with Kafka's ids (its `TransactionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    /// No transaction open.
    Empty,
    /// Partitions have been added; records may be written.
    Ongoing,
    /// Commit decided; markers being written.
    PrepareCommit,
    /// Abort decided; markers being written.
    PrepareAbort,
    /// Every marker of a commit is written.
    CompleteCommit,
    /// Every marker of an abort is written.
    CompleteAbort,
    /// Expired; never written (expiry writes a tombstone).
    Dead,
    /// The coordinator bumps the epoch to fence a producer before aborting its transaction;
    /// never written.
    PrepareEpochFence,
}

impl TxnState {
    /// Kafka's id of the state, as written in `TransactionStatus`.
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// The state of a Kafka id.
    pub fn from_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The state Kafka names `name` (ListTransactions' state filters).
    pub fn from_name(name: &str) -> Option<TxnState> {
        (0..=7)
            .filter_map(TxnState::from_id)
            .find(|state| state.name() == name)
    }

    /// Kafka's name of the state, as DescribeTransactions and ListTransactions report it.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Whether a transaction in this state may be expired (its id idle long enough).
    pub fn expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }

    /// The states Kafka allows a transition into `self` from.
    fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[
                Ongoing,
                PrepareEpochFence,
                Empty,
                CompleteCommit,
                CompleteAbort,
            ],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }
}

/// What the coordinator keeps for one transactional id (Kafka's `TransactionMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    /// The producer id in use.
    pub producer_id: i64,
    /// The producer id before the last rotation (epoch exhausted), -1 if none.
    pub prev_producer_id: i64,
    /// Transaction version 2's next producer id, -1 if none.
    pub next_producer_id: i64,
    /// The current epoch; older ones are fenced.
    pub producer_epoch: i16,
    /// The epoch before the last bump a client asked for, so that its retry gets the same
    /// answer (KIP-360); -1 if none. Not persisted, as in Kafka.
    pub last_producer_epoch: i16,
    /// The transaction timeout the producer asked for.
    pub timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// The partitions of the open (or ending) transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// When the transaction started; -1 when none is open.
    pub start_ms: i64,
    /// When the state last changed.
    pub last_update_ms: i64,
    /// The client's transaction version (0 or 2).
    pub client_transaction_version: i16,
}

/// Epochs at or above this are exhausted: the next bump takes a new producer id.
const EXHAUSTED_EPOCH: i16 = i16::MAX - 1;

/// Whether an epoch cannot be bumped again (Kafka's `isEpochExhausted`).
pub fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= EXHAUSTED_EPOCH
}

/// A refusal, with Kafka's error.
pub type TxnError = ResponseError;

/// What a request decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer success at once; nothing changes.
    Done,
    /// Write this state, then answer.
    Write(TxnMetadata),
}

impl TxnMetadata {
    /// A new id's metadata, before its first epoch: InitProducerId then bumps it to 0.
    pub fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            producer_id,
            prev_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            client_transaction_version: 0,
        }
    }

    /// The metadata in `state`, checked against Kafka's table of transitions.
    fn transition(&self, state: TxnState, now_ms: i64) -> TxnMetadata {
        debug_assert!(
            state.valid_previous().contains(&self.state),
            "{:?} → {state:?}",
            self.state
        );
        TxnMetadata {
            state,
            last_update_ms: now_ms.max(self.last_update_ms),
            ..self.clone()
        }
    }
}

/// A producer's id and epoch, when an InitProducerId carries them (KIP-360).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    /// The id the producer had.
    pub producer_id: i64,
    /// The epoch it had.
    pub epoch: i16,
}

/// InitProducerId for an existing id (Kafka's `prepareInitProducerIdTransit`). `new_id` gives
/// a fresh producer id when the epoch is exhausted. An open transaction is fenced: the result
/// is then a PrepareEpochFence state that the shell aborts (and answers
/// CONCURRENT_TRANSACTIONS), never writes as such.
pub fn init_producer_id(
    current: &TxnMetadata,
    timeout_ms: i32,
    expected: Option<ProducerIdAndEpoch>,
    now_ms: i64,
    new_id: impl FnOnce() -> i64,
) -> Result<TxnMetadata, TxnError> {
    let valid = |expected: &ProducerIdAndEpoch| {
        current.producer_epoch == NO_PRODUCER_EPOCH
            || expected.producer_id == current.producer_id
            || (expected.producer_id == current.prev_producer_id
                && is_epoch_exhausted(expected.epoch))
    };
    if !expected.as_ref().is_none_or(valid) {
        return Err(ResponseError::ProducerFenced);
    }
    match current.state {
        TxnState::PrepareAbort | TxnState::PrepareCommit => {
            Err(ResponseError::ConcurrentTransactions)
        }
        TxnState::CompleteAbort | TxnState::CompleteCommit | TxnState::Empty => {
            let mut next = current.transition(TxnState::Empty, now_ms);
            next.timeout_ms = timeout_ms;
            next.partitions.clear();
            next.start_ms = -1;
            if is_epoch_exhausted(current.producer_epoch)
                && expected.is_none_or(|expected| expected.epoch == current.producer_epoch)
            {
                next.prev_producer_id = current.producer_id;
                next.producer_id = new_id();
                next.producer_epoch = 0;
                next.last_producer_epoch = match expected {
                    Some(_) => current.producer_epoch,
                    None => NO_PRODUCER_EPOCH,
                };
                return Ok(next);
            }
            // Not exhausted here, unless the caller's stale epoch kept the id from rotating:
            // then only a retry of the last bump has an answer (Kafka fails such a request).
            let bumped =
                (!is_epoch_exhausted(current.producer_epoch)).then(|| current.producer_epoch + 1);
            let (epoch, last_epoch) = match (expected, bumped) {
                (None, Some(bumped)) => (bumped, NO_PRODUCER_EPOCH),
                (Some(expected), Some(bumped))
                    if current.producer_epoch == NO_PRODUCER_EPOCH
                        || expected.epoch == current.producer_epoch =>
                {
                    (bumped, current.producer_epoch)
                }
                // A retry of a bump whose answer was lost: the same answer again.
                (Some(expected), _) if expected.epoch == current.last_producer_epoch => {
                    (current.producer_epoch, current.last_producer_epoch)
                }
                _ => return Err(ResponseError::ProducerFenced),
            };
            next.producer_epoch = epoch;
            next.last_producer_epoch = last_epoch;
            Ok(next)
        }
        TxnState::Ongoing => Ok(fence_producer_epoch(current, now_ms)),
        TxnState::Dead | TxnState::PrepareEpochFence => {
            // Never stored: a shard holding one has a bug, and the client may retry.
            Err(ResponseError::ConcurrentTransactions)
        }
    }
}

/// The in-memory step before the coordinator aborts an open transaction on its own (a new
/// producer instance, or the transaction timed out): the epoch is bumped so that the old
/// producer's writes and the markers' epoch fence it (Kafka's `prepareFenceProducerEpoch`).
///
/// At `i16::MAX` the epoch cannot grow (Kafka fails there); it cannot be reached by a client,
/// whose InitProducerId rotates the producer id from `i16::MAX - 1` on.
pub fn fence_producer_epoch(current: &TxnMetadata, now_ms: i64) -> TxnMetadata {
    let mut fenced = current.transition(TxnState::PrepareEpochFence, now_ms);
    fenced.producer_epoch = current.producer_epoch.saturating_add(1);
    fenced.last_producer_epoch = NO_PRODUCER_EPOCH;
    fenced
}

/// Checks a client's producer id and epoch against the id's current ones, as AddPartitionsToTxn,
/// AddOffsetsToTxn and TxnOffsetCommit do.
pub fn check_producer(
    current: &TxnMetadata,
    producer_id: i64,
    producer_epoch: i16,
) -> Result<(), TxnError> {
    if current.producer_id != producer_id {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    if current.producer_epoch != producer_epoch {
        return Err(ResponseError::ProducerFenced);
    }
    Ok(())
}

/// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition): the
/// partitions join the transaction, which starts now unless it is already open.
pub fn add_partitions(
    current: &TxnMetadata,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &BTreeSet<(String, i32)>,
    now_ms: i64,
) -> Result<Decision, TxnError> {
    check_producer(current, producer_id, producer_epoch)?;
    match current.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => {
            Err(ResponseError::ConcurrentTransactions)
        }
        TxnState::Ongoing if partitions.is_subset(&current.partitions) => Ok(Decision::Done),
        TxnState::Empty
        | TxnState::Ongoing
        | TxnState::CompleteCommit
        | TxnState::CompleteAbort => {
            let mut next = current.transition(TxnState::Ongoing, now_ms);
            if current.state != TxnState::Ongoing {
                next.start_ms = now_ms;
                next.partitions.clear();
            }
            next.partitions.extend(partitions.iter().cloned());
            Ok(Decision::Write(next))
        }
        TxnState::Dead | TxnState::PrepareEpochFence => Err(ResponseError::ConcurrentTransactions),
    }
}

/// EndTxn from a client of transaction version 1 (Kafka's `endTransactionWithTV1`), or the
/// coordinator's own abort of a fenced transaction (`from_client` false, epoch of the fence).
pub fn end_transaction(
    current: &TxnMetadata,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    from_client: bool,
    now_ms: i64,
) -> Result<Decision, TxnError> {
    if current.producer_id != producer_id {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    if producer_epoch < current.producer_epoch
        || (from_client && producer_epoch != current.producer_epoch)
    {
        return Err(ResponseError::ProducerFenced);
    }
    let prepare = if commit {
        TxnState::PrepareCommit
    } else {
        TxnState::PrepareAbort
    };
    match (current.state, commit) {
        (TxnState::Ongoing, _) => Ok(Decision::Write(current.transition(prepare, now_ms))),
        (TxnState::PrepareEpochFence, false) if !from_client => {
            Ok(Decision::Write(current.transition(prepare, now_ms)))
        }
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(Decision::Done),
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Err(ResponseError::ConcurrentTransactions)
        }
        _ => Err(ResponseError::InvalidTxnState),
    }
}

/// Every marker of a Prepare* transaction is written: the transaction is complete and its
/// partitions are forgotten (Kafka's `prepareComplete`).
pub fn complete(current: &TxnMetadata, now_ms: i64) -> Option<TxnMetadata> {
    let state = match current.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        TxnState::PrepareAbort => TxnState::CompleteAbort,
        _ => return None,
    };
    let mut next = current.transition(state, now_ms);
    next.partitions.clear();
    Some(next)
}

/// Whether an open transaction has outlived its timeout, so the coordinator aborts it.
pub fn timed_out(current: &TxnMetadata, now_ms: i64) -> bool {
    current.state == TxnState::Ongoing
        && current.start_ms >= 0
        && current
            .start_ms
            .saturating_add(i64::from(current.timeout_ms))
            < now_ms
}

/// Whether an idle id may be forgotten (`transactional.id.expiration.ms`).
pub fn expired(current: &TxnMetadata, now_ms: i64, expiration_ms: i64) -> bool {
    current.state.expiration_allowed()
        && current.last_update_ms.saturating_add(expiration_ms) <= now_ms
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
