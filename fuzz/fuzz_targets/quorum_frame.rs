//! Frames on the controller quorum's listener, as a peer (or anyone who reaches the port)
//! sends them: lengths, kinds and bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cauce_metadata::fuzzing::quorum_frames(data);
});
