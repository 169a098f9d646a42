//! Metadata records as the store and the raft log hold them, applied to an image: records
//! replayed from disk or replicated by the quorum must never make the image code panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cauce_metadata::fuzzing::metadata_records(data);
});
