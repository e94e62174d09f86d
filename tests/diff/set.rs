//! Set commands for the differential test: every set command with well-formed and
//! malformed arguments. Members come mostly from a small pool mixing canonical integers
//! (kept in intsets) with strings and non-canonical integers (which turn a set into a
//! hashtable), so OBJECT ENCODING and the algebra's result encodings are exercised;
//! now and then a run of 600 integers takes a set past `set-max-intset-entries`.
//!
//! Random outcomes: SRANDMEMBER is compared by length only; SPOP is sent only with a
//! count of at least 1000 (which empties these small sets, deterministically) or with
//! an argument error; SSCAN only by shape (a hashtable's bucket order differs), with
//! its errors compared exactly.

use super::{Argv, Cmp, Gen};
use rand::Rng;

fn a(parts: &[&[u8]]) -> Argv {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// A member: mostly from a pool, sometimes any value.
fn member(g: &mut Gen) -> Vec<u8> {
    if g.chance(0.75) {
        g.pick(&[
            "1",
            "2",
            "3",
            "-5",
            "10",
            "70000",
            "5000000000",
            "a",
            "b",
            "c",
            "x",
            "007",
            "+1",
            "",
        ])
        .as_bytes()
        .to_vec()
    } else {
        g.value()
    }
}

fn members(g: &mut Gen, max: usize) -> Vec<Vec<u8>> {
    let n = g.rng.gen_range(1..=max);
    (0..n).map(|_| member(g)).collect()
}

/// A count for SRANDMEMBER: small either way, 0, or malformed / out of range.
fn rand_count(g: &mut Gen) -> String {
    match g.rng.gen_range(0..10) {
        0..=3 => g.rng.gen_range(1..30).to_string(),
        4..=6 => g.rng.gen_range(-30..0).to_string(),
        7 => "0".into(),
        8 => g
            .pick(&["-9223372036854775808", "abc", "1.5", "", "+3"])
            .to_string(),
        _ => g.int_arg(),
    }
}

/// SINTERCARD's numkeys: right, too many, zero, negative or malformed.
fn numkeys(g: &mut Gen, n: usize) -> String {
    match g.rng.gen_range(0..12) {
        0 => (n + 1).to_string(),
        1 => "0".into(),
        2 => "-1".into(),
        3 => "x".into(),
        _ => n.to_string(),
    }
}

pub fn command(g: &mut Gen) -> Option<(Argv, Cmp)> {
    use Cmp::*;
    let key = g.key();
    Some(match g.rng.gen_range(0..24) {
        0..=3 => {
            let mut v = a(&[b"SADD", &key]);
            if g.chance(0.02) {
                // Past set-max-intset-entries (512).
                v.extend((0..600).map(|i| i.to_string().into_bytes()));
            } else {
                v.extend(members(g, 5));
            }
            (v, Exact)
        }
        4 | 5 => {
            let mut v = a(&[b"SREM", &key]);
            v.extend(members(g, 4));
            (v, Exact)
        }
        6 => (a(&[b"SMEMBERS", &key]), Unordered),
        7 => (a(&[b"SISMEMBER", &key, &member(g)]), Exact),
        8 => {
            let mut v = a(&[b"SMISMEMBER", &key]);
            v.extend(members(g, 4));
            (v, Exact)
        }
        9 => (a(&[b"SCARD", &key]), Exact),
        10 => match g.rng.gen_range(0..4) {
            0 => (a(&[b"SPOP", &key, b"1000"]), Unordered),
            1 => (a(&[b"SPOP", &key, b"0"]), Exact),
            2 => {
                let bad = g
                    .pick(&["-1", "abc", "1.5", "-9223372036854775808"])
                    .to_string();
                (a(&[b"SPOP", &key, bad.as_bytes()]), Exact)
            }
            _ => (a(&[b"SPOP", &key, b"1", b"2"]), Exact),
        },
        11 | 12 => {
            let mut v = a(&[b"SRANDMEMBER", &key]);
            match g.rng.gen_range(0..8) {
                0 => {}
                1 => v.extend([b"1".to_vec(), b"2".to_vec()]),
                _ => v.push(rand_count(g).into_bytes()),
            }
            (v, SameLen)
        }
        13 => {
            let dst = g.key();
            (a(&[b"SMOVE", &key, &dst, &member(g)]), Exact)
        }
        14 | 15 => {
            let cmd = g.pick(&["SINTER", "SUNION", "SDIFF"]).to_string();
            let mut v = a(&[cmd.as_bytes(), &key]);
            v.extend(g.keys(3));
            (v, Unordered)
        }
        16 | 17 => {
            let cmd = g
                .pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"])
                .to_string();
            let mut v = a(&[cmd.as_bytes(), &key]);
            v.extend(g.keys(3));
            (v, Exact)
        }
        18 => (a(&[b"OBJECT", b"ENCODING", &key]), Exact),
        19 | 20 => {
            let keys = g.keys(3);
            let mut v = a(&[b"SINTERCARD", numkeys(g, keys.len()).as_bytes()]);
            v.extend(keys);
            match g.rng.gen_range(0..6) {
                0 | 1 => {}
                2 => {
                    let limit = g.rng.gen_range(0..5).to_string();
                    v.extend(a(&[b"LIMIT", limit.as_bytes()]));
                }
                3 => {
                    let limit = g.pick(&["-1", "x", "0"]).to_string();
                    v.extend(a(&[b"limit", limit.as_bytes()]));
                }
                4 => v.push(b"LIMIT".to_vec()),
                _ => v.extend(a(&[b"BOGUS", b"1"])),
            }
            (v, Exact)
        }
        _ => {
            let cursor = g
                .pick(&["0", "0", "0", "7", "-1", "x", " 1", ""])
                .to_string();
            let mut v = a(&[b"SSCAN", &key, cursor.as_bytes()]);
            if g.chance(0.5) {
                v.extend(a(&[
                    b"COUNT",
                    g.pick(&["1000", "1000", "0", "-1", "x"]).as_bytes(),
                ]));
            }
            if g.chance(0.3) {
                v.extend(a(&[
                    b"MATCH",
                    g.pick(&["*", "1*", "[ab]", "*0*"]).as_bytes(),
                ]));
            }
            if g.chance(0.05) {
                v.extend(a(&[b"TYPE", b"set"]));
            }
            (v, SameLen)
        }
    })
}
