//! Idempotent producers: duplicates, gaps, fencing and restarts.

mod common;

use cauce_log::{Log, LogConfig, LogError};
use common::{idempotent_batch, small_config};

#[test]
fn duplicate_idempotent_batch_returns_original_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut first = idempotent_batch(42, 0, 0, 3);
    let mut retry = first.clone();
    let original = log.append(&mut first, 0, 0).unwrap();
    let mut other = common::batch(2, 1, "other");
    log.append(&mut other, 0, 0).unwrap();
    let size = log.size_bytes();
    let duplicate = log.append(&mut retry, 0, 0).unwrap();
    assert!(duplicate.duplicate);
    assert_eq!(
        (duplicate.base_offset, duplicate.last_offset),
        (original.base_offset, original.last_offset)
    );
    assert_eq!(log.size_bytes(), size, "a duplicate writes nothing");
    assert_eq!(log.log_end_offset(), 5);
}

#[test]
fn duplicates_of_any_of_the_last_five_batches_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for sequence in 0..6 {
        let mut bytes = idempotent_batch(1, 0, sequence * 2, 2);
        log.append(&mut bytes, 0, 0).unwrap();
    }
    let mut second = idempotent_batch(1, 0, 2, 2);
    let outcome = log.append(&mut second, 0, 0).unwrap();
    assert!(outcome.duplicate);
    assert_eq!(outcome.base_offset, 2);
    // The first batch is no longer remembered: it is a sequence error now.
    let mut first = idempotent_batch(1, 0, 0, 2);
    assert!(matches!(
        log.append(&mut first, 0, 0),
        Err(LogError::OutOfOrderSequence { .. })
    ));
}

#[test]
fn sequence_gap_is_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut first = idempotent_batch(7, 0, 0, 3);
    log.append(&mut first, 0, 0).unwrap();
    let mut gap = idempotent_batch(7, 0, 4, 1);
    match log.append(&mut gap, 0, 0) {
        Err(LogError::OutOfOrderSequence {
            expected_sequence,
            found_sequence,
            ..
        }) => assert_eq!((expected_sequence, found_sequence), (3, 4)),
        other => panic!("expected OutOfOrderSequence, found {other:?}"),
    }
    assert_eq!(log.log_end_offset(), 3);
    let mut next = idempotent_batch(7, 0, 3, 1);
    assert_eq!(log.append(&mut next, 0, 0).unwrap().base_offset, 3);
}

#[test]
fn unknown_producer_may_start_at_any_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut bytes = idempotent_batch(9, 3, 500, 1);
    assert!(!log.append(&mut bytes, 0, 0).unwrap().duplicate);
}

#[test]
fn older_epoch_is_fenced_and_newer_epoch_restarts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut bytes = idempotent_batch(5, 2, 0, 1);
    log.append(&mut bytes, 0, 0).unwrap();
    let mut zombie = idempotent_batch(5, 1, 1, 1);
    assert!(matches!(
        log.append(&mut zombie, 0, 0),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    let mut bumped_bad = idempotent_batch(5, 3, 1, 1);
    assert!(matches!(
        log.append(&mut bumped_bad, 0, 0),
        Err(LogError::OutOfOrderSequence { .. })
    ));
    let mut bumped = idempotent_batch(5, 3, 0, 1);
    log.append(&mut bumped, 0, 0).unwrap();
    assert_eq!(log.producer_state(5).unwrap().producer_epoch, 3);
}

#[test]
fn sequence_checks_apply_within_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut request = idempotent_batch(3, 0, 0, 2);
    request.extend_from_slice(&idempotent_batch(3, 0, 2, 2));
    assert_eq!(log.append(&mut request, 0, 0).unwrap().last_offset, 3);
    let mut bad_request = idempotent_batch(3, 0, 4, 1);
    bad_request.extend_from_slice(&idempotent_batch(3, 0, 9, 1));
    assert!(log.append(&mut bad_request, 0, 0).is_err());
    assert_eq!(
        log.log_end_offset(),
        4,
        "nothing from a failing request is written"
    );
}

#[test]
fn producer_state_survives_restart() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), small_config()).unwrap();
        let mut sequence = 0;
        // Enough batches to roll (snapshots on roll) and more after the last roll.
        for _ in 0..80 {
            let mut bytes = idempotent_batch(11, 0, sequence, 3);
            log.append(&mut bytes, 0, 0).unwrap();
            sequence += 3;
        }
        assert!(log.segment_count() > 1);
        let mut retry = idempotent_batch(11, 0, sequence - 3, 3);
        let state_before = log.producer_state(11).cloned();
        if clean {
            log.close().unwrap();
        } else {
            drop(log);
        }
        let mut log = Log::open(dir.path(), small_config()).unwrap();
        assert_eq!(
            log.producer_state(11).cloned(),
            state_before,
            "clean={clean}"
        );
        let outcome = log.append(&mut retry, 0, 0).unwrap();
        assert!(outcome.duplicate, "clean={clean}");
        assert_eq!(outcome.base_offset, 237);
        let mut gap = idempotent_batch(11, 0, sequence + 1, 1);
        assert!(matches!(
            log.append(&mut gap, 0, 0),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        let mut next = idempotent_batch(11, 0, sequence, 1);
        assert_eq!(log.append(&mut next, 0, 0).unwrap().base_offset, 240);
    }
}

#[test]
fn truncation_forgets_removed_producer_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for sequence in [0, 1, 2] {
        let mut bytes = idempotent_batch(4, 0, sequence, 1);
        log.append(&mut bytes, 0, 0).unwrap();
    }
    log.truncate_to(2).unwrap();
    assert_eq!(log.producer_state(4).unwrap().last_sequence(), Some(1));
    let mut again = idempotent_batch(4, 0, 2, 1);
    let outcome = log.append(&mut again, 0, 0).unwrap();
    assert!(!outcome.duplicate);
    assert_eq!(outcome.base_offset, 2);
}
