//! The transaction state machine: Kafka's rules case by case, then seeded random schedules of
//! requests and clock ticks that check, after every step, the transition table and the
//! invariants the coordinator relies on.

use std::collections::BTreeSet;

use crate::group::prng::Prng;

use super::*;

fn partitions(list: &[(&str, i32)]) -> BTreeSet<(String, i32)> {
    list.iter()
        .map(|(topic, partition)| (topic.to_string(), *partition))
        .collect()
}

/// A new id after its first InitProducerId: producer 7 at epoch 0.
fn initialised() -> TxnMetadata {
    let created = TxnMetadata::new(7, 60_000, 0);
    init_producer_id(&created, 60_000, None, 1, || unreachable!()).unwrap()
}

fn written(decision: Result<Decision, TxnError>) -> TxnMetadata {
    match decision {
        Ok(Decision::Write(next)) => next,
        other => panic!("expected a write, got {other:?}"),
    }
}

#[test]
fn the_first_init_gives_epoch_zero_and_each_later_one_bumps_it() {
    let first = initialised();
    assert_eq!(
        (first.producer_id, first.producer_epoch, first.state),
        (7, 0, TxnState::Empty)
    );
    let second = init_producer_id(&first, 30_000, None, 2, || unreachable!()).unwrap();
    assert_eq!(second.producer_epoch, 1);
    assert_eq!(second.timeout_ms, 30_000);
}

#[test]
fn an_exhausted_epoch_rotates_the_producer_id() {
    let mut current = initialised();
    current.producer_epoch = i16::MAX - 1;
    let next = init_producer_id(&current, 60_000, None, 2, || 8).unwrap();
    assert_eq!(
        (next.producer_id, next.producer_epoch, next.prev_producer_id),
        (8, 0, 7)
    );
}

#[test]
fn kip_360_retries_get_the_same_answer_and_strangers_are_fenced() {
    let current = initialised();
    let expected = ProducerIdAndEpoch {
        producer_id: 7,
        epoch: 0,
    };
    let bumped = init_producer_id(&current, 60_000, Some(expected), 2, || unreachable!()).unwrap();
    assert_eq!((bumped.producer_epoch, bumped.last_producer_epoch), (1, 0));
    // The answer was lost; the producer asks again with its old epoch.
    let retried = init_producer_id(&bumped, 60_000, Some(expected), 3, || unreachable!()).unwrap();
    assert_eq!(retried.producer_epoch, 1);
    let stranger = ProducerIdAndEpoch {
        producer_id: 99,
        epoch: 0,
    };
    assert_eq!(
        init_producer_id(&bumped, 60_000, Some(stranger), 3, || unreachable!()),
        Err(ResponseError::ProducerFenced)
    );
}

#[test]
fn init_fences_an_open_transaction_and_waits_for_prepared_ones() {
    let ongoing = written(add_partitions(
        &initialised(),
        7,
        0,
        &partitions(&[("t", 0)]),
        5,
    ));
    let fenced = init_producer_id(&ongoing, 60_000, None, 6, || unreachable!()).unwrap();
    assert_eq!(
        (fenced.state, fenced.producer_epoch),
        (TxnState::PrepareEpochFence, 1)
    );
    // The coordinator aborts it at the new epoch; the old producer can no longer end it.
    let aborting = written(end_transaction(&fenced, 7, 1, false, false, 7));
    assert_eq!(
        (aborting.state, aborting.producer_epoch),
        (TxnState::PrepareAbort, 1)
    );
    assert_eq!(
        end_transaction(&aborting, 7, 0, true, true, 8),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        init_producer_id(&aborting, 60_000, None, 8, || unreachable!()),
        Err(ResponseError::ConcurrentTransactions)
    );
    let aborted = complete(&aborting, 9).unwrap();
    assert!(aborted.partitions.is_empty());
    let next = init_producer_id(&aborted, 60_000, None, 10, || unreachable!()).unwrap();
    assert_eq!(next.producer_epoch, 2);
}

#[test]
fn add_partitions_checks_the_producer_and_writes_only_what_is_new() {
    let current = initialised();
    let wanted = partitions(&[("t", 0), ("t", 1)]);
    assert_eq!(
        add_partitions(&current, 8, 0, &wanted, 5),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    assert_eq!(
        add_partitions(&current, 7, 1, &wanted, 5),
        Err(ResponseError::ProducerFenced)
    );
    let ongoing = written(add_partitions(&current, 7, 0, &wanted, 5));
    assert_eq!((ongoing.state, ongoing.start_ms), (TxnState::Ongoing, 5));
    assert_eq!(
        add_partitions(&ongoing, 7, 0, &partitions(&[("t", 1)]), 6),
        Ok(Decision::Done)
    );
    let grown = written(add_partitions(&ongoing, 7, 0, &partitions(&[("u", 0)]), 7));
    assert_eq!(grown.partitions.len(), 3);
    assert_eq!(
        grown.start_ms, 5,
        "the transaction started with its first partition"
    );
    let committing = written(end_transaction(&grown, 7, 0, true, true, 8));
    assert_eq!(
        add_partitions(&committing, 7, 0, &wanted, 9),
        Err(ResponseError::ConcurrentTransactions)
    );
}

#[test]
fn end_txn_answers_as_kafkas_tv1_table() {
    let empty = initialised();
    assert_eq!(
        end_transaction(&empty, 7, 0, true, true, 1),
        Err(ResponseError::InvalidTxnState)
    );
    let ongoing = written(add_partitions(&empty, 7, 0, &partitions(&[("t", 0)]), 2));
    let committing = written(end_transaction(&ongoing, 7, 0, true, true, 3));
    assert_eq!(committing.state, TxnState::PrepareCommit);
    assert_eq!(
        end_transaction(&committing, 7, 0, true, true, 4),
        Err(ResponseError::ConcurrentTransactions)
    );
    assert_eq!(
        end_transaction(&committing, 7, 0, false, true, 4),
        Err(ResponseError::InvalidTxnState)
    );
    let committed = complete(&committing, 5).unwrap();
    assert_eq!(
        end_transaction(&committed, 7, 0, true, true, 6),
        Ok(Decision::Done)
    );
    assert_eq!(
        end_transaction(&committed, 7, 0, false, true, 6),
        Err(ResponseError::InvalidTxnState)
    );
    assert_eq!(
        end_transaction(&committed, 6, 0, true, true, 6),
        Err(ResponseError::InvalidProducerIdMapping)
    );
}

#[test]
fn timeouts_and_expiry_follow_the_clock() {
    let ongoing = written(add_partitions(
        &initialised(),
        7,
        0,
        &partitions(&[("t", 0)]),
        1_000,
    ));
    assert!(!timed_out(&ongoing, 61_000));
    assert!(timed_out(&ongoing, 61_001));
    assert!(!expired(&ongoing, i64::MAX / 2, 10));
    let done = complete(
        &written(end_transaction(&ongoing, 7, 0, true, true, 2_000)),
        2_000,
    )
    .unwrap();
    assert!(!expired(&done, 2_009, 10));
    assert!(expired(&done, 2_010, 10));
}

/// One id driven by random requests, as clients and the coordinator's scans would send them.
struct Schedule {
    rng: Prng,
    metadata: TxnMetadata,
    now: i64,
    next_id: i64,
}

impl Schedule {
    fn step(&mut self) -> String {
        self.now += (self.rng.next() % 5_000) as i64;
        let current = self.metadata.clone();
        // Clients mostly use the current id and epoch, sometimes stale or foreign ones.
        let epoch = match self.rng.next() % 8 {
            0 => current.producer_epoch.saturating_sub(1),
            1 => current.producer_epoch.saturating_add(1),
            _ => current.producer_epoch,
        };
        let producer_id = if self.rng.chance(10) {
            4242
        } else {
            current.producer_id
        };
        let choice = self.rng.next() % 7;
        let (said, result) = match choice {
            0 => {
                let expected = self
                    .rng
                    .chance(50)
                    .then_some(ProducerIdAndEpoch { producer_id, epoch });
                let next_id = &mut self.next_id;
                let result = init_producer_id(&current, 60_000, expected, self.now, || {
                    *next_id += 1;
                    *next_id
                });
                let result = result.and_then(|next| {
                    if next.state == TxnState::PrepareEpochFence {
                        // The shell aborts the fenced transaction at once.
                        end_transaction(
                            &next,
                            next.producer_id,
                            next.producer_epoch,
                            false,
                            false,
                            self.now,
                        )
                        .map(|decision| match decision {
                            Decision::Write(aborting) => aborting,
                            Decision::Done => next,
                        })
                    } else {
                        Ok(next)
                    }
                });
                ("init", result.map(Some))
            }
            1 | 2 => {
                let partition = (self.rng.next() % 4) as i32;
                let wanted = partitions(&[("t", partition)]);
                let result = add_partitions(&current, producer_id, epoch, &wanted, self.now);
                (
                    "add",
                    result.map(|decision| match decision {
                        Decision::Write(next) => Some(next),
                        Decision::Done => None,
                    }),
                )
            }
            3 | 4 => {
                let commit = self.rng.chance(50);
                let result = end_transaction(&current, producer_id, epoch, commit, true, self.now);
                (
                    "end",
                    result.map(|decision| match decision {
                        Decision::Write(next) => Some(next),
                        Decision::Done => None,
                    }),
                )
            }
            5 => ("markers written", Ok(complete(&current, self.now))),
            _ => {
                if timed_out(&current, self.now) {
                    let fenced = fence_producer_epoch(&current, self.now);
                    let result = end_transaction(
                        &fenced,
                        fenced.producer_id,
                        fenced.producer_epoch,
                        false,
                        false,
                        self.now,
                    )
                    .map(|decision| match decision {
                        Decision::Write(next) => Some(next),
                        Decision::Done => None,
                    });
                    ("timeout abort", result)
                } else {
                    ("no timeout", Ok(None))
                }
            }
        };
        let outcome = match &result {
            Ok(Some(next)) => format!(
                "→ {:?} epoch {} id {}",
                next.state, next.producer_epoch, next.producer_id
            ),
            Ok(None) => "→ unchanged".to_string(),
            Err(error) => format!("→ {error:?}"),
        };
        if let Ok(Some(next)) = result {
            self.metadata = next;
        }
        format!("{said} (id {producer_id}, epoch {epoch}) {outcome}")
    }

    fn check(&self, before: &TxnMetadata) -> Result<(), String> {
        let after = &self.metadata;
        if after == before {
            return Ok(());
        }
        if !after.state.valid_previous().contains(&before.state) {
            return Err(format!(
                "{:?} → {:?} is not in Kafka's table",
                before.state, after.state
            ));
        }
        if matches!(after.state, TxnState::Dead | TxnState::PrepareEpochFence) {
            return Err(format!("{:?} is never stored", after.state));
        }
        if after.producer_id == before.producer_id && after.producer_epoch < before.producer_epoch {
            return Err(format!(
                "epoch went back from {} to {}",
                before.producer_epoch, after.producer_epoch
            ));
        }
        if after.producer_id != before.producer_id
            && !(is_epoch_exhausted(before.producer_epoch) && after.producer_epoch == 0)
        {
            return Err("the producer id changed without an exhausted epoch".into());
        }
        let settled = matches!(
            after.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        );
        if settled && !after.partitions.is_empty() {
            return Err(format!("{:?} still names partitions", after.state));
        }
        if !settled && after.partitions.is_empty() {
            return Err(format!("{:?} without partitions", after.state));
        }
        if after.state == TxnState::Empty && after.start_ms != -1 {
            return Err("Empty with a start time".into());
        }
        if after.last_update_ms < before.last_update_ms {
            return Err("the update time went back".into());
        }
        Ok(())
    }
}

#[test]
fn random_schedules_keep_kafkas_transitions_and_the_invariants() {
    for seed in 0..200u64 {
        let mut schedule = Schedule {
            rng: Prng(seed),
            metadata: initialised(),
            now: 10,
            next_id: 100,
        };
        // Some schedules start near the end of the epochs, to rotate producer ids.
        if seed % 4 == 0 {
            schedule.metadata.producer_epoch = i16::MAX - 3;
        }
        let mut history = Vec::new();
        for step in 0..300 {
            let before = schedule.metadata.clone();
            history.push(schedule.step());
            if let Err(broken) = schedule.check(&before) {
                let recent: Vec<_> = history.iter().rev().take(8).rev().collect();
                panic!("seed {seed} step {step}: {broken}\n{recent:#?}");
            }
        }
    }
}
