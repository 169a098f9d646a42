//! Transactions in a partition's log under seeded random schedules: transactional and plain
//! batches, COMMIT and ABORT markers (some from a stale coordinator), high-watermark moves,
//! rolls, follower truncations, clean reopens, crashes and torn tails. After every step the
//! log's last stable offset, its aborted transactions for fetch ranges and each producer's open
//! transaction must equal what a naive model computes by rescanning the whole log.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use cauce_log::{AbortedTxn, Log, LogConfig, LogError};
use cauce_protocol::batch::BatchIter;
use cauce_protocol::control::{EndTxnMarker, TransactionResult};
use cauce_protocol::records::{build_batch, BatchOptions, NewRecord};
use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};

/// Transactional producers; producer 9 is idempotent only, and some batches have no producer.
const TXN_PRODUCERS: [i64; 3] = [1, 2, 3];
const IDEMPOTENT_PRODUCER: i64 = 9;

/// One batch in the log, as the model keeps it.
#[derive(Debug, Clone, Copy)]
enum Entry {
    /// Records from a producer (`None`: without one), transactional or not.
    Data {
        producer: Option<i64>,
        transactional: bool,
        records: i64,
        last_sequence: i32,
    },
    /// A marker of a producer's transaction.
    Marker {
        producer: i64,
        abort: bool,
        coordinator_epoch: i32,
    },
}

/// What the model derives by scanning the whole log.
#[derive(Debug, Default)]
struct Scan {
    /// Producer → first offset of its open transaction.
    open: BTreeMap<i64, i64>,
    /// Ended transactions: (producer, first offset, marker offset, aborted).
    ended: Vec<(i64, i64, i64, bool)>,
    /// Producer → the coordinator epoch of its last marker.
    coordinator_epochs: BTreeMap<i64, i32>,
    /// Producer → last sequence written.
    last_sequences: BTreeMap<i64, i32>,
}

struct Model {
    /// Batches by base offset, with their size in bytes.
    entries: BTreeMap<i64, (Entry, usize)>,
    high_watermark: i64,
}

impl Model {
    fn log_end(&self) -> i64 {
        self.entries
            .iter()
            .next_back()
            .map_or(0, |(offset, (entry, _))| offset + records_of(entry))
    }

    fn scan(&self) -> Scan {
        let mut scan = Scan::default();
        for (&offset, (entry, _)) in &self.entries {
            match *entry {
                Entry::Data {
                    producer: Some(producer),
                    transactional,
                    last_sequence,
                    ..
                } => {
                    if transactional {
                        scan.open.entry(producer).or_insert(offset);
                    }
                    scan.last_sequences.insert(producer, last_sequence);
                }
                Entry::Data { producer: None, .. } => {}
                Entry::Marker {
                    producer,
                    abort,
                    coordinator_epoch,
                } => {
                    if let Some(first) = scan.open.remove(&producer) {
                        scan.ended.push((producer, first, offset, abort));
                    }
                    scan.coordinator_epochs.insert(producer, coordinator_epoch);
                }
            }
        }
        scan
    }

    fn last_stable_offset(&self) -> i64 {
        let scan = self.scan();
        let open = scan.open.values().copied();
        let unreplicated = scan
            .ended
            .iter()
            .filter(|(_, _, marker, _)| *marker >= self.high_watermark)
            .map(|(_, first, _, _)| *first);
        open.chain(unreplicated)
            .min()
            .map_or(self.high_watermark, |first| first.min(self.high_watermark))
    }

    fn aborted(&self, fetch_offset: i64, upper_bound: i64) -> Vec<(i64, i64)> {
        let mut aborted: Vec<(i64, i64, i64)> = self
            .scan()
            .ended
            .into_iter()
            .filter(|(_, first, marker, abort)| {
                *abort && *marker >= fetch_offset && *first < upper_bound
            })
            .map(|(producer, first, marker, _)| (marker, producer, first))
            .collect();
        aborted.sort_unstable();
        aborted
            .into_iter()
            .map(|(_, producer, first)| (producer, first))
            .collect()
    }
}

fn records_of(entry: &Entry) -> i64 {
    match entry {
        Entry::Data { records, .. } => *records,
        Entry::Marker { .. } => 1,
    }
}

fn below(rng: &mut TestRng, bound: u64) -> u64 {
    rng.next_u64() % bound
}

fn config() -> LogConfig {
    LogConfig {
        // Small segments: rolls happen by themselves too.
        segment_bytes: 2048,
        ..LogConfig::default()
    }
}

fn data_batch(producer: Option<i64>, transactional: bool, sequence: i32, records: i64) -> Vec<u8> {
    let values: Vec<NewRecord> = (0..records)
        .map(|index| NewRecord::value_only(1_000, format!("v{index}").into_bytes()))
        .collect();
    let options = match producer {
        Some(producer_id) => BatchOptions {
            producer_id,
            producer_epoch: 0,
            base_sequence: sequence,
            is_transactional: transactional,
            ..BatchOptions::default()
        },
        None => BatchOptions::default(),
    };
    build_batch(0, &values, &options).unwrap()
}

/// The newest `.log` file of the partition directory.
fn active_segment_file(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

struct Run {
    rng: TestRng,
    dir: tempfile::TempDir,
    log: Option<Log>,
    model: Model,
}

impl Run {
    fn log(&mut self) -> &mut Log {
        self.log.as_mut().unwrap()
    }

    fn step(&mut self) -> String {
        let roll = below(&mut self.rng, 100);
        match roll {
            0..=39 => self.produce(),
            40..=59 => self.end_transaction(),
            60..=74 => {
                let end = self.model.log_end();
                let hw = self.model.high_watermark;
                let moved = hw + below(&mut self.rng, (end - hw + 1) as u64) as i64;
                self.model.high_watermark = moved;
                self.log().on_high_watermark(moved);
                format!("high watermark {moved}")
            }
            75..=79 => {
                self.log().roll(0).unwrap();
                "roll".into()
            }
            80..=86 => self.truncate(),
            87..=92 => {
                self.log.take().unwrap().close().unwrap();
                self.reopen();
                "clean reopen".into()
            }
            _ => self.crash(),
        }
    }

    fn produce(&mut self) -> String {
        let scan = self.model.scan();
        let choice = below(&mut self.rng, 5) as usize;
        let (producer, transactional) = match choice {
            0..=2 => {
                let producer = TXN_PRODUCERS[choice];
                // Mostly transactional; sometimes a plain batch, which an open transaction refuses.
                (Some(producer), below(&mut self.rng, 6) != 0)
            }
            3 => (Some(IDEMPOTENT_PRODUCER), false),
            _ => (None, false),
        };
        let records = 1 + below(&mut self.rng, 3) as i64;
        let sequence = producer
            .and_then(|producer| scan.last_sequences.get(&producer))
            .map_or(0, |last| last + 1);
        let mut bytes = data_batch(producer, transactional, sequence, records);
        let size = bytes.len();
        let result = self.log().append(&mut bytes, 0, 1_000);
        let refused =
            producer.is_some_and(|producer| !transactional && scan.open.contains_key(&producer));
        match (result, refused) {
            (Ok(outcome), false) => {
                assert_eq!(outcome.base_offset, self.model.log_end());
                self.model.entries.insert(
                    outcome.base_offset,
                    (
                        Entry::Data {
                            producer,
                            transactional,
                            records,
                            last_sequence: sequence + records as i32 - 1,
                        },
                        size,
                    ),
                );
                format!(
                    "{producer:?} appends {records} (transactional {transactional}) at {}",
                    outcome.base_offset
                )
            }
            (Err(LogError::InvalidTxnState { .. }), true) => {
                format!("{producer:?} refused a plain batch inside its transaction")
            }
            (result, refused) => {
                panic!("append by {producer:?}: {result:?}, model refuses: {refused}")
            }
        }
    }

    fn end_transaction(&mut self) -> String {
        let producer = TXN_PRODUCERS[below(&mut self.rng, 3) as usize];
        let abort = below(&mut self.rng, 2) == 0;
        let coordinator_epoch = below(&mut self.rng, 3) as i32;
        let known = self.model.scan().coordinator_epochs.get(&producer).copied();
        let marker = EndTxnMarker {
            result: if abort {
                TransactionResult::Abort
            } else {
                TransactionResult::Commit
            },
            coordinator_epoch,
        };
        let result = self.log().append_marker(producer, 0, marker, 0, 1_000);
        let fenced = known.is_some_and(|known| coordinator_epoch < known);
        match (result, fenced) {
            (Ok(outcome), false) => {
                assert_eq!(outcome.base_offset, self.model.log_end());
                let size = cauce_protocol::control::build_marker(producer, 0, marker, 1_000).len();
                self.model.entries.insert(
                    outcome.base_offset,
                    (
                        Entry::Marker {
                            producer,
                            abort,
                            coordinator_epoch,
                        },
                        size,
                    ),
                );
                format!(
                    "marker of {producer} (abort {abort}, coordinator {coordinator_epoch}) at {}",
                    outcome.base_offset
                )
            }
            (Err(LogError::TransactionCoordinatorFenced { .. }), true) => {
                format!("marker of {producer} from stale coordinator {coordinator_epoch} refused")
            }
            (result, fenced) => panic!("marker of {producer}: {result:?}, model fences: {fenced}"),
        }
    }

    /// A follower truncation, never below the high watermark.
    fn truncate(&mut self) -> String {
        let end = self.model.log_end();
        let hw = self.model.high_watermark;
        // Truncation points are batch boundaries.
        let points: Vec<i64> = self
            .model
            .entries
            .keys()
            .copied()
            .filter(|offset| *offset >= hw)
            .collect();
        if points.is_empty() {
            return "nothing to truncate".into();
        }
        let point = points[below(&mut self.rng, points.len() as u64) as usize];
        self.log().truncate_to(point).unwrap();
        self.model.entries.retain(|offset, _| *offset < point);
        format!("truncate to {point} (end was {end})")
    }

    /// The process dies: no close; sometimes the last batch is torn.
    fn crash(&mut self) -> String {
        drop(self.log.take());
        let file = active_segment_file(self.dir.path());
        let length = std::fs::metadata(&file).unwrap().len();
        let torn = below(&mut self.rng, 2) == 0;
        let mut said = "crash".to_string();
        if torn {
            if let Some((&offset, &(_, size))) = self.model.entries.iter().next_back() {
                // Only a batch at the end of the active segment can be torn.
                if let Some((last_offset, last_size, end)) = last_batch(&file) {
                    if (last_offset, last_size) == (offset, size) {
                        let cut = 1 + below(&mut self.rng, size as u64 - 1);
                        let handle = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
                        handle.set_len(end - cut).unwrap();
                        self.model.entries.remove(&offset);
                        said = format!(
                            "crash tearing the batch at {offset} ({cut} of {size} bytes cut, file was {length})"
                        );
                    }
                }
            }
        }
        self.reopen();
        said
    }

    fn reopen(&mut self) {
        let mut log = Log::open(self.dir.path(), config()).unwrap();
        self.model.high_watermark = self.model.high_watermark.min(self.model.log_end());
        log.on_high_watermark(self.model.high_watermark);
        self.log = Some(log);
    }

    fn check(&mut self) -> Result<(), String> {
        let log = self.log.as_ref().unwrap();
        let end = self.model.log_end();
        if log.log_end_offset() != end {
            return Err(format!("log end {} but model {end}", log.log_end_offset()));
        }
        let hw = self.model.high_watermark;
        let expected = self.model.last_stable_offset();
        if log.last_stable_offset(hw) != expected {
            return Err(format!(
                "LSO {} at high watermark {hw}, model {expected}",
                log.last_stable_offset(hw)
            ));
        }
        let scan = self.model.scan();
        for producer in TXN_PRODUCERS {
            let open = log
                .producer_state(producer)
                .and_then(|entry| entry.current_txn_first_offset);
            if open != scan.open.get(&producer).copied() {
                return Err(format!(
                    "producer {producer} open at {open:?}, model {:?}",
                    scan.open.get(&producer)
                ));
            }
        }
        let mut bounds: Vec<i64> = self.model.entries.keys().copied().collect();
        bounds.push(end);
        for _ in 0..4 {
            let from = bounds[below(&mut self.rng, bounds.len() as u64) as usize];
            let to = from + below(&mut self.rng, (end - from + 2) as u64) as i64;
            let found: Vec<(i64, i64)> = log
                .aborted_transactions(from, to)
                .iter()
                .map(
                    |AbortedTxn {
                         producer_id,
                         first_offset,
                         ..
                     }| (*producer_id, *first_offset),
                )
                .collect();
            let expected = self.model.aborted(from, to);
            if found != expected {
                return Err(format!(
                    "aborted in [{from}, {to}): {found:?}, model {expected:?}"
                ));
            }
        }
        Ok(())
    }
}

/// The base offset, size and end position of the last batch in a segment file (the file may
/// go on with zeros grown ahead of appends).
fn last_batch(file: &Path) -> Option<(i64, usize, u64)> {
    let bytes = std::fs::read(file).unwrap();
    let mut iter = BatchIter::new(&bytes);
    let last = iter.by_ref().last()?;
    Some((
        last.header.base_offset,
        last.bytes.len(),
        iter.stopped_at() as u64,
    ))
}

#[test]
fn the_last_stable_offset_and_aborted_transactions_match_a_rescan_under_random_schedules() {
    for seed in 0..60u64 {
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), config()).unwrap();
        let mut run = Run {
            rng: TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
            dir,
            log: Some(log),
            model: Model {
                entries: BTreeMap::new(),
                high_watermark: 0,
            },
        };
        let mut history = Vec::new();
        for step in 0..150 {
            history.push(run.step());
            if let Err(broken) = run.check() {
                let recent: Vec<_> = history.iter().rev().take(10).rev().collect();
                panic!("seed {seed} step {step}: {broken}\nlast steps: {recent:#?}");
            }
        }
    }
}
