//! A produce request's records: batch validation, then every record of every batch, as the
//! broker reads them for compacted topics, timestamp lookups and the cleaner, and the control
//! record of every control batch, as recovery and the transaction index read markers.
#![no_main]

use cauce_protocol::batch::{validate_batches, BatchIter};
use cauce_protocol::control::parse_control;
use cauce_protocol::records::records;
use libfuzzer_sys::fuzz_target;

const MAX_BATCH_BYTES: usize = 1024 * 1024;
const MAX_DECOMPRESSED: usize = 4 * 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let _ = validate_batches(data, MAX_BATCH_BYTES);
    for batch in BatchIter::new(data) {
        if batch.header.is_control() {
            let _ = parse_control(batch.bytes);
        }
        let Ok((_, iterator)) = records(batch.bytes, MAX_DECOMPRESSED) else {
            continue;
        };
        for record in iterator {
            let Ok(record) = record else { break };
            let size = record.key.as_ref().map_or(0, |key| key.len())
                + record.value.as_ref().map_or(0, |value| value.len());
            assert!(size <= MAX_DECOMPRESSED);
        }
    }
});
