//! Every codec on arbitrary input, with a limit: never more than the limit comes out, and
//! nothing larger is allocated on the input's word.
#![no_main]

use cauce_protocol::compression::{decompress, Compression};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let [codec, compressed @ ..] = data else {
        return;
    };
    let Ok(codec) = Compression::from_id(codec % 5) else {
        return;
    };
    if let Ok(output) = decompress(codec, compressed, LIMIT) {
        assert!(output.len() <= LIMIT);
    }
});
