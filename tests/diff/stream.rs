//! Stream commands for the differential test: XADD (explicit and `ms-*` IDs, NOMKSTREAM,
//! MAXLEN / MINID with `=` / `~` and LIMIT), XDEL, XTRIM, XSETID, XRANGE / XREVRANGE
//! (exclusive bounds, COUNT), XLEN, non-blocking XREAD, and the consumer groups (XGROUP,
//! XREADGROUP with `>` and history, XACK, XPENDING's summary, XCLAIM / XAUTOCLAIM with
//! JUSTID, XINFO GROUPS and STREAM). Node limits are sometimes lowered so that streams
//! span several nodes and `~` trims whole ones, as in Redis's layout.
//!
//! Everything here is deterministic: IDs are never `*` (which reads the clock), and
//! what carries a time (XPENDING's extended form, XINFO CONSUMERS, XINFO STREAM FULL,
//! XCLAIM without JUSTID which bumps counters only) is left out, so every reply is
//! compared exactly.

use super::{Argv, Cmp, Gen};
use rand::Rng;

fn a(parts: &[&[u8]]) -> Argv {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// Keys of this family's own; the shared keys bring the other types.
const KEYS: &[&str] = &["x:1", "x:2", "{t}x"];
const GROUPS: &[&str] = &["g1", "g2", "nogroup"];
const CONSUMERS: &[&str] = &["alice", "bob", "carol"];

fn pick_key(g: &mut Gen) -> Vec<u8> {
    if g.chance(0.85) {
        g.pick(KEYS).as_bytes().to_vec()
    } else {
        g.key()
    }
}

/// An ID argument: mostly small ones that exist or nearly, sometimes odd forms.
fn id(g: &mut Gen) -> String {
    match g.rng.gen_range(0..12) {
        0 => "0".into(),
        1 => g
            .pick(&[
                "-",
                "+",
                "abc",
                "1-x",
                "18446744073709551615-18446744073709551615",
                "0-0",
            ])
            .to_string(),
        2 => g.rng.gen_range(1..60).to_string(),
        _ => format!("{}-{}", g.rng.gen_range(1..60), g.rng.gen_range(0..3)),
    }
}

fn bound(g: &mut Gen) -> String {
    let i = id(g);
    if g.chance(0.2) {
        format!("({i}")
    } else {
        i
    }
}

fn fields(g: &mut Gen) -> Vec<Vec<u8>> {
    let n = if g.chance(0.05) {
        0
    } else {
        g.rng.gen_range(1..4)
    };
    let mut out = Vec::new();
    let same = g.chance(0.6);
    for i in 0..n {
        let f = if same {
            format!("f{i}")
        } else {
            g.pick(&["f0", "f1", "name", "n", "42"]).to_string()
        };
        out.push(f.into_bytes());
        out.push(g.value());
    }
    out
}

fn trim(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = Vec::new();
    if g.chance(0.5) {
        v.push(b"MAXLEN".to_vec());
    } else {
        v.push(b"MINID".to_vec());
    }
    let op = *g.pick(&["", "=", "~", "~"]);
    if !op.is_empty() {
        v.push(op.as_bytes().to_vec());
    }
    if v[0] == b"MAXLEN" {
        v.push(g.rng.gen_range(-1..30).to_string().into_bytes());
    } else {
        v.push(id(g).into_bytes());
    }
    if g.chance(0.2) {
        v.push(b"LIMIT".to_vec());
        v.push(g.rng.gen_range(-1..20).to_string().into_bytes());
    }
    v
}

pub fn command(g: &mut Gen) -> Option<(Argv, Cmp)> {
    use Cmp::*;
    let key = pick_key(g);
    let group = g.pick(GROUPS).as_bytes().to_vec();
    let consumer = g.pick(CONSUMERS).as_bytes().to_vec();
    Some(match g.rng.gen_range(0..30) {
        0..=7 => {
            let mut v = a(&[b"XADD", &key]);
            if g.chance(0.05) {
                v.push(b"NOMKSTREAM".to_vec());
            }
            if g.chance(0.25) {
                v.extend(trim(g));
            }
            let ms = g.rng.gen_range(1..60);
            v.push(if g.chance(0.3) {
                format!("{ms}-*").into_bytes()
            } else {
                id(g).into_bytes()
            });
            v.extend(fields(g));
            (v, Exact)
        }
        8 => {
            let mut v = a(&[b"XDEL", &key]);
            for _ in 0..g.rng.gen_range(1..4) {
                v.push(id(g).into_bytes());
            }
            (v, Exact)
        }
        9 => {
            let mut v = a(&[b"XTRIM", &key]);
            v.extend(trim(g));
            (v, Exact)
        }
        10 | 11 => {
            let rev = g.chance(0.4);
            let (lo, hi) = (bound(g), bound(g));
            let mut v = if rev {
                a(&[b"XREVRANGE", &key, hi.as_bytes(), lo.as_bytes()])
            } else {
                a(&[b"XRANGE", &key, lo.as_bytes(), hi.as_bytes()])
            };
            if g.chance(0.5) {
                v.push(b"COUNT".to_vec());
                v.push(g.rng.gen_range(-1..6).to_string().into_bytes());
            }
            (v, Exact)
        }
        12 => (a(&[b"XLEN", &key]), Exact),
        13 => {
            let mut v = a(&[b"XREAD"]);
            if g.chance(0.5) {
                v.push(b"COUNT".to_vec());
                v.push(g.rng.gen_range(0..4).to_string().into_bytes());
            }
            v.push(b"STREAMS".to_vec());
            let keys: Vec<Vec<u8>> = (0..g.rng.gen_range(1..3)).map(|_| pick_key(g)).collect();
            let ids: Vec<Vec<u8>> = keys
                .iter()
                .map(|_| {
                    if g.chance(0.2) {
                        b"$".to_vec()
                    } else {
                        id(g).into_bytes()
                    }
                })
                .collect();
            v.extend(keys);
            v.extend(ids);
            (v, Exact)
        }
        14 => {
            let mut v = a(&[b"XSETID", &key, id(g).as_bytes()]);
            if g.chance(0.3) {
                v.push(b"ENTRIESADDED".to_vec());
                v.push(g.rng.gen_range(-1..80).to_string().into_bytes());
            }
            if g.chance(0.2) {
                v.push(b"MAXDELETEDID".to_vec());
                v.push(id(g).into_bytes());
            }
            (v, Exact)
        }
        15 | 16 => {
            let sub = *g.pick(&[
                "CREATE",
                "CREATE",
                "SETID",
                "DESTROY",
                "CREATECONSUMER",
                "DELCONSUMER",
            ]);
            let mut v = a(&[b"XGROUP", sub.as_bytes(), &key, &group]);
            match sub {
                "CREATE" | "SETID" => {
                    v.push(if g.chance(0.3) {
                        b"$".to_vec()
                    } else {
                        id(g).into_bytes()
                    });
                    if sub == "CREATE" && g.chance(0.3) {
                        v.push(b"MKSTREAM".to_vec());
                    }
                    if g.chance(0.2) {
                        v.push(b"ENTRIESREAD".to_vec());
                        v.push(g.rng.gen_range(-2..20).to_string().into_bytes());
                    }
                }
                "CREATECONSUMER" | "DELCONSUMER" => v.push(consumer),
                _ => {}
            }
            (v, Exact)
        }
        17..=19 => {
            let mut v = a(&[b"XREADGROUP", b"GROUP", &group, &consumer]);
            if g.chance(0.6) {
                v.push(b"COUNT".to_vec());
                v.push(g.rng.gen_range(0..4).to_string().into_bytes());
            }
            if g.chance(0.15) {
                v.push(b"NOACK".to_vec());
            }
            v.push(b"STREAMS".to_vec());
            v.push(key);
            v.push(if g.chance(0.7) {
                b">".to_vec()
            } else {
                id(g).into_bytes()
            });
            (v, Exact)
        }
        20 | 21 => {
            let mut v = a(&[b"XACK", &key, &group]);
            for _ in 0..g.rng.gen_range(1..4) {
                v.push(id(g).into_bytes());
            }
            (v, Exact)
        }
        22 => (a(&[b"XPENDING", &key, &group]), Exact),
        23 => {
            let mut v = a(&[b"XCLAIM", &key, &group, &consumer, b"0"]);
            for _ in 0..g.rng.gen_range(1..3) {
                v.push(id(g).into_bytes());
            }
            if g.chance(0.2) {
                v.push(b"FORCE".to_vec());
            }
            if g.chance(0.2) {
                v.push(b"LASTID".to_vec());
                v.push(id(g).into_bytes());
            }
            v.push(b"JUSTID".to_vec());
            (v, Exact)
        }
        24 => {
            let mut v = a(&[
                b"XAUTOCLAIM",
                &key,
                &group,
                &consumer,
                b"0",
                bound(g).as_bytes(),
            ]);
            if g.chance(0.5) {
                v.push(b"COUNT".to_vec());
                v.push(g.rng.gen_range(0..4).to_string().into_bytes());
            }
            v.push(b"JUSTID".to_vec());
            (v, Exact)
        }
        25 => (a(&[b"XINFO", b"GROUPS", &key]), Exact),
        26 => (a(&[b"XINFO", b"STREAM", &key]), Exact),
        27 => {
            // Smaller nodes so that streams span several, then back to the default.
            let v = *g.pick(&["3", "5", "100"]);
            (
                a(&[b"CONFIG", b"SET", b"stream-node-max-entries", v.as_bytes()]),
                Exact,
            )
        }
        _ => (a(&[b"TYPE", &key]), Exact),
    })
}
