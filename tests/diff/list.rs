//! List commands for the differential test: every list command with well-formed and
//! malformed arguments. Elements come mostly from a small pool so that LREM, LINSERT
//! and LPOS find matches. The blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH,
//! BLMPOP) are sent only with an argument error that Redis reports before it would
//! block (a negative or malformed timeout, a bad direction or numkeys), since a
//! well-formed one may wait and its timing is not what this test compares.

use super::{Argv, Cmp, Gen};
use rand::Rng;

fn a(parts: &[&[u8]]) -> Argv {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// A list element: mostly from a small pool (integers included, stored as such in
/// listpacks), sometimes any value.
fn elem(g: &mut Gen) -> Vec<u8> {
    if g.chance(0.7) {
        g.pick(&["a", "b", "c", "1", "2", "-3", "x", "10"])
            .as_bytes()
            .to_vec()
    } else {
        g.value()
    }
}

fn end(g: &mut Gen) -> Vec<u8> {
    g.pick(&["LEFT", "RIGHT", "left", "Right", "UP"])
        .as_bytes()
        .to_vec()
}

/// A count for LPOP / RPOP / LMPOP: small, 0, negative, huge or malformed.
fn count(g: &mut Gen) -> String {
    match g.rng.gen_range(0..8) {
        0..=3 => g.rng.gen_range(1..6).to_string(),
        4 => "0".into(),
        5 => "-1".into(),
        _ => g.int_arg(),
    }
}

/// A timeout Redis rejects before it would block.
fn bad_timeout(g: &mut Gen) -> String {
    g.pick(&["-1", "-0.5", "abc", "", "1x"]).to_string()
}

pub fn command(g: &mut Gen) -> Option<(Argv, Cmp)> {
    let exact = |v: Argv| Some((v, Cmp::Exact));
    match g.rng.gen_range(0..30) {
        0..=5 => {
            let name = g.pick(&["LPUSH", "RPUSH", "LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]);
            let mut v = a(&[name.as_bytes(), &g.key()]);
            for _ in 0..g.rng.gen_range(1..5) {
                v.push(elem(g));
            }
            exact(v)
        }
        6..=8 => {
            let name = g.pick(&["LPOP", "RPOP"]);
            let mut v = a(&[name.as_bytes(), &g.key()]);
            if g.chance(0.5) {
                v.push(count(g).into_bytes());
                if g.chance(0.05) {
                    v.push(b"1".to_vec());
                }
            }
            exact(v)
        }
        9 => exact(a(&[b"LLEN", &g.key()])),
        10 => {
            let i = g.range_idx();
            exact(a(&[b"LINDEX", &g.key(), i.as_bytes()]))
        }
        11 => {
            let i = g.range_idx();
            let e = elem(g);
            exact(a(&[b"LSET", &g.key(), i.as_bytes(), &e]))
        }
        12..=14 => {
            let (s, e) = (g.range_idx(), g.range_idx());
            exact(a(&[b"LRANGE", &g.key(), s.as_bytes(), e.as_bytes()]))
        }
        15 => {
            let (s, e) = (g.range_idx(), g.range_idx());
            exact(a(&[b"LTRIM", &g.key(), s.as_bytes(), e.as_bytes()]))
        }
        16 => {
            let c = match g.rng.gen_range(0..4) {
                0 => g.int_arg(),
                _ => g.rng.gen_range(-3..4).to_string(),
            };
            let e = elem(g);
            exact(a(&[b"LREM", &g.key(), c.as_bytes(), &e]))
        }
        17 => {
            let place = g.pick(&["BEFORE", "AFTER", "after", "MIDDLE"]);
            let (p, e) = (elem(g), elem(g));
            exact(a(&[b"LINSERT", &g.key(), place.as_bytes(), &p, &e]))
        }
        18 | 19 => {
            let e = elem(g);
            let mut v = a(&[b"LPOS", &g.key(), &e]);
            for _ in 0..g.rng.gen_range(0..4) {
                let opt = g.pick(&["RANK", "COUNT", "MAXLEN", "rank", "BOGUS"]);
                let val = match g.rng.gen_range(0..6) {
                    0 => g.int_arg(),
                    1 => "0".into(),
                    2 => g.rng.gen_range(-3..0).to_string(),
                    _ => g.rng.gen_range(1..5).to_string(),
                };
                v.push(opt.as_bytes().to_vec());
                if g.chance(0.95) {
                    v.push(val.into_bytes());
                }
            }
            exact(v)
        }
        20 | 21 => {
            let (from, to) = (end(g), end(g));
            exact(a(&[b"LMOVE", &g.key(), &g.key(), &from, &to]))
        }
        22 => exact(a(&[b"RPOPLPUSH", &g.key(), &g.key()])),
        23 | 24 => {
            let keys = g.keys(3);
            let numkeys = match g.rng.gen_range(0..8) {
                0 => g.pick(&["0", "-1", "x", "9"]).to_string(),
                _ => keys.len().to_string(),
            };
            let mut v = a(&[b"LMPOP", numkeys.as_bytes()]);
            v.extend(keys);
            v.push(end(g));
            if g.chance(0.5) {
                v.push(g.pick(&["COUNT", "count", "LIMIT"]).as_bytes().to_vec());
                if g.chance(0.95) {
                    v.push(count(g).into_bytes());
                }
            }
            exact(v)
        }
        // Blocking commands, only with an error found before blocking.
        25 => {
            let name = g.pick(&["BLPOP", "BRPOP"]);
            let mut v = a(&[name.as_bytes()]);
            v.extend(g.keys(3));
            v.push(bad_timeout(g).into_bytes());
            exact(v)
        }
        26 => {
            let (from, to) = (end(g), end(g));
            let bad_dir = from == b"UP" || to == b"UP";
            let t = if bad_dir {
                "0".to_string()
            } else {
                bad_timeout(g)
            };
            exact(a(&[
                b"BLMOVE",
                &g.key(),
                &g.key(),
                &from,
                &to,
                t.as_bytes(),
            ]))
        }
        27 => {
            let t = bad_timeout(g);
            exact(a(&[b"BRPOPLPUSH", &g.key(), &g.key(), t.as_bytes()]))
        }
        28 => {
            // Either the numkeys or the timeout is bad (the count, direction or
            // extra arguments may be too).
            let keys = g.keys(2);
            let (t, numkeys) = if g.chance(0.5) {
                ("0".to_string(), g.pick(&["0", "-1", "x"]).to_string())
            } else {
                (bad_timeout(g), keys.len().to_string())
            };
            let mut v = a(&[b"BLMPOP", t.as_bytes(), numkeys.as_bytes()]);
            v.extend(keys);
            v.push(end(g));
            if g.chance(0.3) {
                v.extend(a(&[b"COUNT", count(g).as_bytes()]));
            }
            exact(v)
        }
        _ => exact(a(&[b"OBJECT", b"ENCODING", &g.key()])),
    }
}
