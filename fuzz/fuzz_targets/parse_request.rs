//! Fuzz target: the request parser on arbitrary bytes.
//!
//! The first byte picks the limits (authenticated or not) and how the rest is cut into
//! socket-read-sized pieces; the parser runs until it needs more bytes or reports a
//! protocol error. Properties: no panic, every returned request consumes bytes, and
//! `Incomplete` consumes nothing.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shardis::protocol::{parse_request, Limits, ParseOutcome};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, data)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        unauthenticated: ctl & 1 == 1,
        ..Limits::default()
    };
    let piece = 1 + (ctl >> 1) as usize * 4;
    let mut buf = BytesMut::new();
    for chunk in data.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match parse_request(&mut buf, limits) {
                ParseOutcome::Request(_) => assert!(buf.len() < before, "no progress"),
                ParseOutcome::Incomplete => {
                    assert_eq!(buf.len(), before, "Incomplete consumed bytes");
                    break;
                }
                ParseOutcome::Error(_) => return,
            }
        }
    }
});
