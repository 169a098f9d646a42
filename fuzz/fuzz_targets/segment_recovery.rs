//! A partition directory after a crash: arbitrary bytes as the active segment's log file and its
//! offset index (the first four bytes, little endian, say how many of the rest are the log),
//! opened and recovered, then read. The
//! log must open, keep only whole batches, and read back without a panic.
#![no_main]

use cauce_log::{Log, LogConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let [a, b, c, d, rest @ ..] = data else {
        return;
    };
    let log_length = u32::from_le_bytes([*a, *b, *c, *d]) as usize % (rest.len() + 1);
    let (log_bytes, index_bytes) = rest.split_at(log_length);
    std::fs::write(dir.path().join("00000000000000000000.log"), log_bytes).unwrap();
    if !index_bytes.is_empty() {
        std::fs::write(dir.path().join("00000000000000000000.index"), index_bytes).unwrap();
    }
    let Ok(log) = Log::open(dir.path(), LogConfig::default()) else {
        return;
    };
    let end = log.log_end_offset();
    assert!(end >= 0);
    if let Ok(slice) = log.read(0, 1 << 20, end) {
        let _ = slice.read_bytes();
    }
});
