//! Fuzz target: the compact encodings that an RDB file or RESTORE will hand us as raw
//! bytes (listpack, intset).
//!
//! The first byte picks the decoder. Properties: no panic; what decodes re-encodes to
//! exactly the same bytes; a decoded listpack can be walked both ways and edited (push
//! at both ends, delete the first entry) without breaking its own invariants (the edited
//! bytes decode again).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardis::storage::intset::Intset;
use shardis::storage::listpack::Listpack;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        let Some(mut lp) = Listpack::from_bytes(bytes.to_vec()) else {
            return;
        };
        assert_eq!(lp.as_bytes(), bytes);
        let forward: Vec<Vec<u8>> = lp.iter().map(|e| e.to_vec()).collect();
        let mut backward: Vec<Vec<u8>> = lp.iter().rev().map(|e| e.to_vec()).collect();
        backward.reverse();
        assert_eq!(forward, backward);
        assert_eq!(forward.len(), lp.len());
        lp.push_back(b"tail");
        lp.push_front(b"-12345");
        if let Some(p) = lp.first() {
            lp.delete(p);
        }
        assert!(Listpack::from_bytes(lp.as_bytes().to_vec()).is_some());
    } else if let Some(set) = Intset::from_bytes(bytes) {
        assert_eq!(set.as_bytes(), bytes);
    }
});
