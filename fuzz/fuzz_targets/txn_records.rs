//! Keys and values read back from `__transaction_state` when a broker becomes a transaction
//! coordinator: whatever a record holds, decoding it must not panic or allocate for counts the
//! bytes do not hold, and what decodes must encode to a value that decodes the same.
#![no_main]

use cauce_broker::txn::records::{decode_txn_key, decode_txn_value, txn_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_txn_key(data);
    if let Some(metadata) = decode_txn_value(data) {
        let mut expected = metadata.clone();
        // Empty is written with no partitions, whatever a version-0 value held.
        if expected.state == cauce_broker::txn::state::TxnState::Empty {
            expected.partitions.clear();
        }
        assert_eq!(decode_txn_value(&txn_value(&metadata)), Some(expected));
    }
});
