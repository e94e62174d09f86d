//! HyperLogLog commands for the differential test: PFADD, PFCOUNT (one key, which
//! caches the estimate in the value, and several, which merge), PFMERGE and PFDEBUG,
//! with GET of the sketches so Redis's exact bytes are compared (sparse opcodes,
//! dense registers, the cached cardinality and its stale bit). Elements come from a
//! small pool (so most adds change nothing) and sometimes as a run of 300 to 3000
//! fresh ones, which takes a sketch past `hll-sparse-max-bytes` into the dense
//! encoding; that limit itself is sometimes lowered and restored. Strings that are not
//! sketches (the other families' values, a truncated header, a sparse body that covers
//! too few registers, a dense one of the wrong size) exercise both error replies.
//!
//! Most commands use the family's own keys (`hll:1`, `hll:2`, `{t}hll`), the rest the
//! shared ones. Everything here is deterministic, so every reply is compared exactly.

use super::{Argv, Cmp, Gen};
use rand::Rng;

fn a(parts: &[&[u8]]) -> Argv {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// Keys of this family's own (most commands use them, so most commands find a
/// sketch); the shared keys bring the other types and strings.
const KEYS: &[&str] = &["hll:1", "hll:2", "{t}hll"];

fn pick_key(g: &mut Gen) -> Vec<u8> {
    if g.chance(0.7) {
        g.pick(KEYS).as_bytes().to_vec()
    } else {
        g.key()
    }
}

fn keys(g: &mut Gen, max: usize) -> Vec<Vec<u8>> {
    let n = g.rng.gen_range(1..=max);
    (0..n).map(|_| pick_key(g)).collect()
}

const POOL: &[&str] = &[
    "a", "b", "c", "foo", "bar", "1", "2", "3", "hello", "world", "",
];

/// Bytes that look like sketches to a varying degree.
fn crafted(g: &mut Gen) -> Vec<u8> {
    let header = |enc: u8, stale: bool| -> Vec<u8> {
        let mut h = b"HYLL".to_vec();
        h.push(enc);
        h.extend_from_slice(&[0; 10]);
        h.push(if stale { 0x80 } else { 0 });
        h
    };
    match g.rng.gen_range(0..7) {
        // The empty sparse sketch, cache valid or stale.
        0 => [header(1, false), vec![0x7f, 0xff]].concat(),
        1 => [header(1, true), vec![0x7f, 0xff]].concat(),
        // Covers 16369 registers only.
        2 => [header(1, true), vec![0x7f, 0xf0]].concat(),
        // Covers too many.
        3 => [header(1, true), vec![0x7f, 0xff, 0x80]].concat(),
        // A dense sketch of the wrong size, and one of the right size.
        4 => [header(0, true), vec![0; 100]].concat(),
        5 => {
            let mut v = header(0, true);
            v.extend((0..12288).map(|i| (i % 7) as u8));
            v
        }
        // A bad encoding byte / a short header.
        _ => g
            .pick(&[&b"HYLL\x02"[..], b"HYLL", b"HYLL\x01\0\0\0"])
            .to_vec(),
    }
}

fn elements(g: &mut Gen) -> Vec<Vec<u8>> {
    if g.chance(0.04) {
        let tag = g.rng.gen_range(0..1_000_000u32);
        let n = g.rng.gen_range(300..3000);
        (0..n).map(|i| format!("{tag}:{i}").into_bytes()).collect()
    } else {
        let n = g.rng.gen_range(0..6);
        (0..n)
            .map(|_| {
                if g.chance(0.8) {
                    g.pick(POOL).as_bytes().to_vec()
                } else {
                    g.value()
                }
            })
            .collect()
    }
}

pub fn command(g: &mut Gen) -> Option<(Argv, Cmp)> {
    use Cmp::*;
    let key = pick_key(g);
    Some(match g.rng.gen_range(0..20) {
        0..=6 => {
            let mut v = a(&[b"PFADD", &key]);
            v.extend(elements(g));
            (v, Exact)
        }
        7..=9 => (a(&[b"PFCOUNT", &key]), Exact),
        10 | 11 => {
            let mut v = a(&[b"PFCOUNT", &key]);
            v.extend(keys(g, 3));
            (v, Exact)
        }
        12 | 13 => {
            let mut v = a(&[b"PFMERGE", &key]);
            let n = g.rng.gen_range(0..3);
            v.extend(keys(g, 3).into_iter().take(n));
            (v, Exact)
        }
        14 | 15 => (a(&[b"GET", &key]), Exact),
        16 => (a(&[b"SET", &key, &crafted(g)]), Exact),
        17 => {
            let sub = g
                .pick(&["ENCODING", "DECODE", "TODENSE", "GETREG", "bogus"])
                .to_string();
            if sub == "GETREG" && g.chance(0.7) {
                // 16384 integers: now and then is enough.
                (a(&[b"PFDEBUG", b"ENCODING", &key]), Exact)
            } else {
                (a(&[b"PFDEBUG", sub.as_bytes(), &key]), Exact)
            }
        }
        18 => {
            let limit = g.pick(&["3000", "3000", "200", "40", "0"]).to_string();
            (
                a(&[b"CONFIG", b"SET", b"hll-sparse-max-bytes", limit.as_bytes()]),
                Exact,
            )
        }
        _ => match g.rng.gen_range(0..3) {
            0 => (a(&[b"PFADD"]), Exact),
            1 => (a(&[b"PFCOUNT"]), Exact),
            _ => (a(&[b"PFDEBUG", b"ENCODING"]), Exact),
        },
    })
}
