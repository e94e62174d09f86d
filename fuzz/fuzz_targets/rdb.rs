//! Fuzz target: untrusted RDB bytes, as a file at start, DEBUG RELOAD or a RESTORE
//! payload brings them.
//!
//! The first byte picks the entry point: a whole file (`rdb::decode::Reader`, checksum
//! included, so most mutations stop at the CRC; the fuzzer also finds inputs with a zero
//! checksum, which is accepted as "not computed") or a DUMP payload with its trailer
//! (`rdb::dump::restore`). Properties: no panic, no hang; a value that decodes encodes
//! again into a payload that decodes to an equal value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardis::config::EncodingLimits;
use shardis::persistence::rdb::decode::Reader;
use shardis::persistence::rdb::dump;
use shardis::persistence::rdb::encode::Options;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let limits = EncodingLimits::default();
    if which & 1 == 0 {
        let Ok(mut r) = Reader::new(bytes, limits) else {
            return;
        };
        while let Ok(Some(_)) = r.next() {}
    } else if let Ok(v) = dump::restore(bytes, &limits) {
        let again = dump::payload(&v, Options { compress: true });
        let back = dump::restore(&again, &limits).expect("our own payload decodes");
        assert_eq!(back, v);
    }
});
