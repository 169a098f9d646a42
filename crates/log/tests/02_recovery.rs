//! Opening a log after clean and unclean shutdowns, and rebuilding damaged files.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use cauce_log::Log;
use common::{append_batches, batch, read_all, small_config};

fn segment_path(dir: &Path, base_offset: i64, extension: &str) -> std::path::PathBuf {
    dir.join(format!("{base_offset:020}.{extension}"))
}

fn append_to_file(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[test]
fn clean_close_and_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    append_batches(&mut log, 100, 3);
    let before = read_all(&log, 0);
    let segments = log.segment_count();
    log.close().unwrap();
    assert!(dir.path().join("clean-shutdown").exists());
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    assert!(
        !dir.path().join("clean-shutdown").exists(),
        "the marker is removed at open"
    );
    assert_eq!(log.segment_count(), segments);
    assert_eq!(log.log_end_offset(), 300);
    assert_eq!(read_all(&log, 0), before);
    let mut more = batch(1, 5, "after");
    assert_eq!(log.append(&mut more, 0, 0).unwrap().base_offset, 300);
}

#[test]
fn torn_tail_is_truncated_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    append_batches(&mut log, 50, 2);
    let before = read_all(&log, 0);
    let active_base = *log.segment_base_offsets().last().unwrap();
    drop(log); // no close: like kill -9
    let half = batch(4, 1, "torn");
    append_to_file(
        &segment_path(dir.path(), active_base, "log"),
        &half[..half.len() / 2],
    );
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 100);
    assert_eq!(read_all(&log, 0), before);
    let mut next = batch(1, 1, "next");
    assert_eq!(log.append(&mut next, 0, 0).unwrap().base_offset, 100);
    assert_eq!(read_all(&log, 99).len(), 2);
}

#[test]
fn space_grown_ahead_of_appends_is_cut_at_close_and_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment_path(dir.path(), 0, "log");
    let mut log = Log::open(dir.path(), cauce_log::LogConfig::default()).unwrap();
    append_batches(&mut log, 10, 2);
    let logical = log.size_bytes();
    assert!(
        fs::metadata(&path).unwrap().len() > logical,
        "the active segment's file is grown ahead of the log"
    );
    assert_eq!(
        read_all(&log, 0).len(),
        20,
        "nothing past the log's end is read"
    );
    log.close().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), logical);

    let mut log = Log::open(dir.path(), cauce_log::LogConfig::default()).unwrap();
    append_batches(&mut log, 10, 2);
    let logical = log.size_bytes();
    drop(log); // no close: like kill -9, the zeros stay
    assert!(fs::metadata(&path).unwrap().len() > logical);
    let mut log = Log::open(dir.path(), cauce_log::LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(fs::metadata(&path).unwrap().len(), logical);
    let mut next = batch(1, 1, "next");
    assert_eq!(log.append(&mut next, 0, 0).unwrap().base_offset, 40);
    assert_eq!(read_all(&log, 0).len(), 41);
}

#[test]
fn logs_larger_than_the_writeback_step_read_back_whole_after_a_crash() {
    // 12 MiB of 1 KiB records: the writeback thread is handed several ranges meanwhile.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), cauce_log::LogConfig::default()).unwrap();
    let value = vec![b'v'; 1024];
    for index in 0..12 * 1024 {
        let mut bytes = cauce_protocol::records::build_batch(
            0,
            &[cauce_protocol::records::NewRecord::value_only(
                index,
                value.clone(),
            )],
            &cauce_protocol::records::BatchOptions::default(),
        )
        .unwrap();
        log.append(&mut bytes, 0, 10_000).unwrap();
    }
    let size = log.size_bytes();
    assert!(size > 12 * 1024 * 1024);
    drop(log); // like kill -9
    let log = Log::open(dir.path(), cauce_log::LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 12 * 1024);
    assert_eq!(log.size_bytes(), size);
    assert_eq!(read_all(&log, 0).len(), 12 * 1024);
}

#[test]
fn garbage_tail_is_truncated_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    append_batches(&mut log, 10, 2);
    let active_base = *log.segment_base_offsets().last().unwrap();
    // A clean close cuts the space grown ahead of appends: the file is the log.
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    let size_before = fs::metadata(segment_path(dir.path(), active_base, "log"))
        .unwrap()
        .len();
    drop(log);
    append_to_file(&segment_path(dir.path(), active_base, "log"), &[0u8; 100]);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(
        fs::metadata(segment_path(dir.path(), active_base, "log"))
            .unwrap()
            .len(),
        size_before
    );
}

#[test]
fn corrupt_crc_in_tail_truncates_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), cauce_log::LogConfig::default()).unwrap();
    let one_batch = batch(2, 1_000, "b0").len();
    append_batches(&mut log, 10, 2);
    drop(log);
    // Flip a byte inside the 8th batch's records: batches 0..=6 survive.
    let path = segment_path(dir.path(), 0, "log");
    let mut contents = fs::read(&path).unwrap();
    contents[7 * one_batch + one_batch - 3] ^= 0xff;
    fs::write(&path, &contents).unwrap();
    let log = Log::open(dir.path(), cauce_log::LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 14);
    assert_eq!(fs::metadata(&path).unwrap().len() as usize, 7 * one_batch);
    assert_eq!(read_all(&log, 0).len(), 14);
}

#[test]
fn missing_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    append_batches(&mut log, 100, 3);
    let before = read_all(&log, 0);
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    let index_path = segment_path(dir.path(), bases[0], "index");
    let original_index = fs::read(&index_path).unwrap();
    assert!(!original_index.is_empty());
    fs::remove_file(&index_path).unwrap();
    fs::remove_file(segment_path(dir.path(), bases[1], "timeindex")).unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(fs::read(&index_path).unwrap(), original_index);
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(log.offset_for_timestamp(1_050).unwrap().unwrap().1, 1_050);
}

#[test]
fn damaged_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    append_batches(&mut log, 100, 3);
    let before = read_all(&log, 0);
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    // A torn entry (size not a multiple of 8).
    let first_index = segment_path(dir.path(), bases[0], "index");
    let original = fs::read(&first_index).unwrap();
    append_to_file(&first_index, &[1, 2, 3]);
    // Entries pointing past the log end.
    let second_index = segment_path(dir.path(), bases[1], "index");
    let mut damaged = fs::read(&second_index).unwrap();
    let last = damaged.len() - 4;
    damaged[last..].copy_from_slice(&u32::MAX.to_be_bytes());
    fs::write(&second_index, &damaged).unwrap();
    // Decreasing time index entries.
    let third_time_index = segment_path(dir.path(), bases[2], "timeindex");
    let mut time_index = fs::read(&third_time_index).unwrap();
    time_index.extend_from_slice(&0i64.to_be_bytes());
    time_index.extend_from_slice(&0u32.to_be_bytes());
    fs::write(&third_time_index, &time_index).unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(fs::read(&first_index).unwrap(), original);
    assert_eq!(read_all(&log, 0), before);
    for (offset, _) in before.iter().step_by(7) {
        let slice = log.read(*offset, 1, i64::MAX).unwrap();
        let header = cauce_protocol::batch::parse_header(&slice.read_bytes().unwrap()).unwrap();
        assert!(header.base_offset <= *offset && *offset <= header.last_offset());
    }
}

#[test]
fn unclean_shutdown_rebuilds_the_active_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    append_batches(&mut log, 30, 2);
    let active_base = *log.segment_base_offsets().last().unwrap();
    drop(log);
    // An index the process never finished writing: truncated to nothing.
    fs::write(segment_path(dir.path(), active_base, "index"), b"").unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert!(!fs::read(segment_path(dir.path(), active_base, "index"))
        .unwrap()
        .is_empty());
    assert_eq!(read_all(&log, 0).len(), 60);
}

#[test]
fn leftover_temporary_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    log.close().unwrap();
    fs::write(dir.path().join("log-start-offset.tmp"), b"partial").unwrap();
    let _log = Log::open(dir.path(), small_config()).unwrap();
    assert!(!dir.path().join("log-start-offset.tmp").exists());
}

mod cut_anywhere {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Wherever a crash cuts the active segment, every whole batch before the cut survives
        /// and nothing after it does.
        #[test]
        fn recovery_keeps_exactly_the_whole_batches_before_a_cut(
            record_counts in proptest::collection::vec(1usize..6, 1..30),
            cut_fraction in 0.0f64..1.0,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut log = Log::open(dir.path(), cauce_log::LogConfig { index_interval_bytes: 64, ..Default::default() }).unwrap();
            let mut batch_ends = Vec::new();
            let mut end = 0usize;
            for (index, count) in record_counts.iter().enumerate() {
                let mut bytes = batch(*count, index as i64, "p");
                end += bytes.len();
                let outcome = log.append(&mut bytes, 0, 0).unwrap();
                batch_ends.push((end, outcome.last_offset + 1));
            }
            drop(log);
            let path = segment_path(dir.path(), 0, "log");
            let cut = (end as f64 * cut_fraction) as usize;
            OpenOptions::new().write(true).open(&path).unwrap().set_len(cut as u64).unwrap();
            let expected_end = batch_ends
                .iter()
                .take_while(|(batch_end, _)| *batch_end <= cut)
                .last()
                .map_or(0, |(_, next_offset)| *next_offset);
            let log = Log::open(dir.path(), cauce_log::LogConfig::default()).unwrap();
            prop_assert_eq!(log.log_end_offset(), expected_end);
            prop_assert_eq!(read_all(&log, 0).len() as i64, expected_end);
        }
    }
}

#[test]
fn a_base_offset_corrupted_near_the_maximum_is_cut_not_a_panic() {
    // The base offset sits outside the CRC: a flipped bit there passes the checksum.
    for clean_close in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), cauce_log::LogConfig::default()).unwrap();
        let one_batch = batch(2, 1_000, "b0").len();
        append_batches(&mut log, 10, 2);
        if clean_close {
            log.close().unwrap();
        } else {
            drop(log);
        }
        let path = segment_path(dir.path(), 0, "log");
        let mut contents = fs::read(&path).unwrap();
        contents[9 * one_batch..9 * one_batch + 8].copy_from_slice(&(i64::MAX - 1).to_be_bytes());
        fs::write(&path, &contents).unwrap();
        let log = Log::open(dir.path(), cauce_log::LogConfig::default()).unwrap();
        assert_eq!(log.log_end_offset(), 18, "clean close: {clean_close}");
        assert_eq!(read_all(&log, 0).len(), 18);
    }
}
