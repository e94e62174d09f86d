//! Property tests for the request parser (`shardis::protocol::parse_request`).
//!
//! The one idea to hold: the parser is resumable by re-parsing, so bytes arriving in
//! any number of pieces must give exactly the requests the whole buffer gives, and no
//! input at all may panic it or make it loop without consuming. `fuzz/` runs the same
//! no-panic property under libFuzzer for much longer; this file runs in `cargo test`.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use shardis::protocol::{parse_request, Limits, ParseOutcome};

/// Everything one buffer yields: the requests, then how it ended.
#[derive(Debug, PartialEq)]
enum End {
    Incomplete(Vec<u8>),
    Error(String),
}

fn drain(buf: &mut BytesMut, limits: Limits, out: &mut Vec<Vec<Bytes>>) -> End {
    loop {
        let before = buf.len();
        match parse_request(buf, limits) {
            ParseOutcome::Request(argv) => {
                assert!(
                    buf.len() < before,
                    "a request was returned but nothing consumed"
                );
                out.push(argv);
            }
            ParseOutcome::Incomplete => {
                assert_eq!(buf.len(), before, "Incomplete must not consume");
                return End::Incomplete(buf.to_vec());
            }
            ParseOutcome::Error(e) => return End::Error(e.to_string()),
        }
    }
}

/// Feed `data` in pieces cut at `cuts`, as socket reads would deliver it.
fn feed_in_pieces(data: &[u8], cuts: &[usize], limits: Limits) -> (Vec<Vec<Bytes>>, End) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort_unstable();
    points.push(data.len());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut from = 0;
    let mut end = End::Incomplete(Vec::new());
    for p in points {
        buf.extend_from_slice(&data[from..p]);
        from = p;
        end = drain(&mut buf, limits, &mut out);
        if matches!(end, End::Error(_)) {
            break;
        }
    }
    (out, end)
}

fn multibulk(argv: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", argv.len()).into_bytes();
    for a in argv {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Inline form for arguments of plain characters (no quotes, spaces or controls).
fn inline(argv: &[Vec<u8>]) -> Vec<u8> {
    let mut out = argv
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
        .into_bytes();
    out.extend_from_slice(b"\r\n");
    out
}

fn any_arg() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

fn plain_arg() -> impl Strategy<Value = Vec<u8>> {
    "[a-zA-Z0-9:_.{}-]{1,12}".prop_map(|s| s.into_bytes())
}

#[derive(Debug, Clone)]
enum Req {
    Multi(Vec<Vec<u8>>),
    Inline(Vec<Vec<u8>>),
}

fn request() -> impl Strategy<Value = Req> {
    prop_oneof![
        3 => prop::collection::vec(any_arg(), 1..6).prop_map(Req::Multi),
        1 => prop::collection::vec(plain_arg(), 1..5).prop_map(Req::Inline),
    ]
}

fn to_vecs(reqs: &[Vec<Bytes>]) -> Vec<Vec<Vec<u8>>> {
    reqs.iter()
        .map(|r| r.iter().map(|a| a.to_vec()).collect())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary bytes: no panic, progress on every request, Incomplete keeps the rest.
    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600),
                                unauthenticated in any::<bool>()) {
        let limits = Limits { unauthenticated, ..Limits::default() };
        let mut buf = BytesMut::from(&data[..]);
        let mut out = Vec::new();
        let _ = drain(&mut buf, limits, &mut out);
    }

    /// Bytes that look like RESP (markers, digits, CRLF) reach the deeper branches.
    #[test]
    fn resp_like_bytes_never_panic(parts in prop::collection::vec(
        prop_oneof![
            Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"\r\n".to_vec()),
            Just(b"-1".to_vec()), Just(b"0".to_vec()), Just(b"3".to_vec()),
            Just(b"99999999999999999999".to_vec()), Just(b"\"".to_vec()),
            Just(b"'".to_vec()), Just(b"\\x4".to_vec()), Just(b" ".to_vec()),
            Just(b"\n".to_vec()), Just(b"PING".to_vec()),
        ], 0..40),
        cuts in prop::collection::vec(any::<usize>(), 0..4)) {
        let data: Vec<u8> = parts.concat();
        let whole = feed_in_pieces(&data, &[], Limits::default());
        let split = feed_in_pieces(&data, &cuts, Limits::default());
        prop_assert_eq!(to_vecs(&whole.0), to_vecs(&split.0));
        prop_assert_eq!(whole.1, split.1);
    }

    /// Valid requests split at random points parse to the same argv as unsplit.
    #[test]
    fn split_requests_parse_the_same(reqs in prop::collection::vec(request(), 1..8),
                                     cuts in prop::collection::vec(any::<usize>(), 0..10)) {
        let mut data = Vec::new();
        let mut want: Vec<Vec<Vec<u8>>> = Vec::new();
        for r in &reqs {
            match r {
                Req::Multi(argv) => {
                    data.extend(multibulk(argv));
                    want.push(argv.clone());
                }
                Req::Inline(argv) => {
                    data.extend(inline(argv));
                    want.push(argv.clone());
                }
            }
        }
        let (whole, end) = feed_in_pieces(&data, &[], Limits::default());
        prop_assert_eq!(&to_vecs(&whole), &want);
        prop_assert_eq!(end, End::Incomplete(Vec::new()));
        let (split, end) = feed_in_pieces(&data, &cuts, Limits::default());
        prop_assert_eq!(&to_vecs(&split), &want);
        prop_assert_eq!(end, End::Incomplete(Vec::new()));
    }
}

#[test]
fn empty_and_partial_buffers_are_incomplete() {
    for partial in [&b""[..], b"*", b"*1", b"*1\r", b"*1\r\n$3\r\nGE", b"PING"] {
        let mut buf = BytesMut::from(partial);
        assert_eq!(
            parse_request(&mut buf, Limits::default()),
            ParseOutcome::Incomplete,
            "{:?}",
            String::from_utf8_lossy(partial)
        );
        assert_eq!(&buf[..], partial, "nothing consumed");
    }
}
