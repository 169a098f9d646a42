//! Keys and values read back from `__consumer_offsets` when a broker becomes a group
//! coordinator: whatever a record holds, decoding it must not panic or allocate for counts
//! the bytes do not hold.
#![no_main]

use cauce_broker::group::records::{decode_group_value, decode_key, decode_offset_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_key(data);
    let _ = decode_offset_value(data);
    let _ = decode_group_value(data);
});
