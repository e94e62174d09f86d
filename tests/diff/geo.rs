//! Geo commands for the differential test: GEOADD (NX, XX, CH), GEOPOS, GEODIST,
//! GEOHASH, GEOSEARCH / GEOSEARCHSTORE (FROMMEMBER / FROMLONLAT, BYRADIUS / BYBOX),
//! GEORADIUS, GEORADIUSBYMEMBER and their `_RO` variants, with every option (ASC /
//! DESC, COUNT [ANY], WITHCOORD, WITHDIST, WITHHASH, STORE / STOREDIST) and malformed
//! arguments (bad coordinates, units, radii, counts, option clashes). Most commands use
//! the family's own keys (`geo:1`, `geo:2`, `{t}geo`), the rest the shared ones.
//!
//! Positions are random points (7 decimals) around a few centers, one of them at the
//! antimeridian, so searches find several members and their cells wrap. Members have
//! names of their own (`geo:0`...) so the sorted-set family does not move them.
//! Results tied in distance are the one place Redis's order is its partial quicksort's
//! (COUNT smaller than the number of matches), so centers stay between latitudes -30
//! and 60 and search sizes under 2000 km: the sorted-set family's members, whose small
//! scores decode to the (-180, -85) corner where many share one cell, are never
//! reached by a search from a position. A search from a member could still start
//! there (a ZUNIONSTORE with weight 0 moves members to that corner), so one from a
//! member with COUNT but not ANY is compared by length only, or made ANY when it
//! stores its result. Stored results are read back with ZRANGE ... WITHSCORES.

use super::{Argv, Cmp, Gen};
use rand::Rng;

fn a(parts: &[&[u8]]) -> Argv {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// Keys of this family's own (most commands use them, so most commands find a geo
/// index); the shared keys bring the other types.
const KEYS: &[&str] = &["geo:1", "geo:2", "{t}geo"];

fn pick_key(g: &mut Gen) -> Vec<u8> {
    if g.chance(0.7) {
        g.pick(KEYS).as_bytes().to_vec()
    } else {
        g.key()
    }
}

const CENTERS: &[(f64, f64)] = &[
    (13.4, 38.1),
    (-122.4, 37.7),
    (0.0, 0.0),
    (179.9, 10.0),
    (2.35, 48.85),
    (139.7, 35.7),
];

fn member(g: &mut Gen) -> Vec<u8> {
    if g.chance(0.03) {
        return b"nomember".to_vec();
    }
    format!("geo:{}", g.rng.gen_range(0..12)).into_bytes()
}

/// A longitude and latitude: near a center, or (rarely) malformed / out of range.
fn position(g: &mut Gen) -> (String, String) {
    if g.chance(0.04) {
        let lon = g
            .pick(&["180.5", "-181", "abc", "inf", "", "0x10"])
            .to_string();
        let lat = g
            .pick(&["10", "85.06", "-90", "x", "85.05112878"])
            .to_string();
        return (lon, lat);
    }
    let (cx, cy) = *g.pick(CENTERS);
    let spread = *g.pick(&[0.01, 0.3, 2.0, 10.0]);
    let lon = (cx + g.rng.gen_range(-spread..spread)).clamp(-180.0, 180.0);
    let lat = cy + g.rng.gen_range(-spread..spread);
    (format!("{lon:.7}"), format!("{lat:.7}"))
}

fn unit(g: &mut Gen) -> String {
    if g.chance(0.04) {
        return g.pick(&["yd", "", "KM", "Mi"]).to_string();
    }
    g.pick(&["m", "km", "mi", "ft"]).to_string()
}

/// A radius (or box side) under 2000 km whatever the unit (1200 miles at most), or a
/// bad one.
fn size(g: &mut Gen) -> String {
    if g.chance(0.04) {
        return g.pick(&["-1", "abc", "0", ""]).to_string();
    }
    let top = *g.pick(&[0.5, 5.0, 50.0, 1200.0]);
    format!("{:.4}", g.rng.gen_range(0.0..top))
}

/// How to compare a search. One from a member that keeps the nearest COUNT may meet a
/// tie at the cut, which Redis's partial quicksort orders: such a search is compared
/// by length, or, when it stores its result (which the state check reads back), gets
/// ANY so that the scan order decides.
fn tie_safe(v: &mut Argv, from_member: bool) -> Cmp {
    let has = |v: &Argv, w: &str| v.iter().any(|x| x.eq_ignore_ascii_case(w.as_bytes()));
    if !from_member || !has(v, "count") || has(v, "any") {
        return Cmp::Exact;
    }
    if has(v, "geosearchstore") || has(v, "store") || has(v, "storedist") {
        v.push(b"ANY".to_vec());
        Cmp::Exact
    } else {
        Cmp::SameLen
    }
}

/// Search options; STORE / STOREDIST only where `store` allows them. A command that
/// stores (`stores`, or given STORE here) mostly leaves out the WITH... options it
/// refuses.
fn options(g: &mut Gen, store: bool, stores: bool, v: &mut Argv) {
    let mut stored = stores;
    for _ in 0..g.rng.gen_range(0..5) {
        match g.rng.gen_range(0..20) {
            0..=2 => v.push(g.pick(&["WITHDIST", "withdist"]).as_bytes().to_vec()),
            3 | 4 => v.push(b"WITHHASH".to_vec()),
            5 | 6 => v.push(b"WITHCOORD".to_vec()),
            7..=9 => v.push(g.pick(&["ASC", "DESC"]).as_bytes().to_vec()),
            10..=12 => {
                let n = g.pick(&["1", "2", "3", "5", "50"]).to_string();
                v.extend(a(&[b"COUNT", n.as_bytes()]));
            }
            13 => {
                let n = g.rng.gen_range(1..4).to_string();
                v.extend(a(&[b"COUNT", n.as_bytes(), b"ANY"]));
            }
            14 => v.push(b"ANY".to_vec()),
            15 => {
                let n = g.pick(&["0", "-1", "x"]).to_string();
                v.extend(a(&[b"COUNT", n.as_bytes()]));
            }
            16 | 17 if store => {
                let o = g.pick(&["STORE", "STOREDIST"]).to_string();
                let k = pick_key(g);
                v.extend(a(&[o.as_bytes(), &k]));
                stored = true;
            }
            18 => v.push(b"bogus".to_vec()),
            _ => {}
        }
    }
    if stored && g.chance(0.8) {
        v.retain(|x| {
            !x.eq_ignore_ascii_case(b"withdist")
                && !x.eq_ignore_ascii_case(b"withhash")
                && !x.eq_ignore_ascii_case(b"withcoord")
        });
    }
}

pub fn command(g: &mut Gen) -> Option<(Argv, Cmp)> {
    use Cmp::*;
    let key = pick_key(g);
    Some(match g.rng.gen_range(0..22) {
        0..=4 => {
            let mut v = a(&[b"GEOADD", &key]);
            while g.chance(0.15) {
                let o = *g.pick(&["NX", "XX", "CH", "ch", "CH", "xx", "GT"]);
                v.push(o.as_bytes().to_vec());
            }
            let n = if g.chance(0.05) {
                0
            } else {
                g.rng.gen_range(1..5)
            };
            for _ in 0..n {
                let (lon, lat) = position(g);
                v.extend(a(&[lon.as_bytes(), lat.as_bytes(), &member(g)]));
            }
            if g.chance(0.03) {
                v.push(b"extra".to_vec());
            }
            (v, Exact)
        }
        5 | 6 => {
            let mut v = a(&[b"GEOPOS", &key]);
            for _ in 0..g.rng.gen_range(0..4) {
                v.push(member(g));
            }
            (v, Exact)
        }
        7 | 8 => {
            let mut v = a(&[b"GEODIST", &key, &member(g), &member(g)]);
            if g.chance(0.6) {
                v.push(unit(g).into_bytes());
            }
            if g.chance(0.03) {
                v.push(b"extra".to_vec());
            }
            (v, Exact)
        }
        9 => {
            let mut v = a(&[b"GEOHASH", &key]);
            for _ in 0..g.rng.gen_range(0..4) {
                v.push(member(g));
            }
            (v, Exact)
        }
        10..=14 => {
            let store = g.chance(0.35);
            let mut v = if store {
                let dst = pick_key(g);
                a(&[b"GEOSEARCHSTORE", &dst, &key])
            } else {
                a(&[g.pick(&["GEOSEARCH", "geosearch"]).as_bytes(), &key])
            };
            let mut parts: Vec<Argv> = Vec::new();
            match g.rng.gen_range(0..20) {
                0..=8 => parts.push(a(&[b"FROMMEMBER", &member(g)])),
                9..=18 => {
                    let (lon, lat) = position(g);
                    parts.push(a(&[b"FROMLONLAT", lon.as_bytes(), lat.as_bytes()]));
                }
                _ => {}
            }
            match g.rng.gen_range(0..20) {
                0..=9 => parts.push(a(&[b"BYRADIUS", size(g).as_bytes(), unit(g).as_bytes()])),
                10..=18 => parts.push(a(&[
                    b"BYBOX",
                    size(g).as_bytes(),
                    size(g).as_bytes(),
                    unit(g).as_bytes(),
                ])),
                _ => {}
            }
            if g.chance(0.04) {
                parts.push(a(&[b"BYRADIUS", b"10", b"km"]));
            }
            if g.chance(0.5) {
                parts.reverse();
            }
            v.extend(parts.into_iter().flatten());
            options(g, false, store, &mut v);
            if store && g.chance(0.4) {
                v.push(b"STOREDIST".to_vec());
            }
            let from_member = v.iter().any(|x| x.eq_ignore_ascii_case(b"frommember"));
            let cmp = tie_safe(&mut v, from_member);
            (v, cmp)
        }
        15..=18 => {
            let name = *g.pick(&[
                "GEORADIUS",
                "GEORADIUS_RO",
                "GEORADIUSBYMEMBER",
                "GEORADIUSBYMEMBER_RO",
            ]);
            let mut v = a(&[name.as_bytes(), &key]);
            if name.contains("MEMBER") {
                v.push(member(g));
            } else {
                let (lon, lat) = position(g);
                v.extend(a(&[lon.as_bytes(), lat.as_bytes()]));
            }
            v.extend(a(&[size(g).as_bytes(), unit(g).as_bytes()]));
            options(g, !name.ends_with("_RO"), false, &mut v);
            let cmp = tie_safe(&mut v, name.contains("MEMBER"));
            (v, cmp)
        }
        19 => (a(&[b"ZRANGE", &key, b"0", b"-1", b"WITHSCORES"]), Exact),
        20 => (a(&[b"ZREM", &key, &member(g)]), Exact),
        _ => match g.rng.gen_range(0..4) {
            0 => (a(&[b"GEOADD", &key, b"1", b"2"]), Exact),
            1 => (a(&[b"GEOSEARCH", &key, b"FROMLONLAT", b"1", b"2"]), Exact),
            2 => (a(&[b"GEODIST", &key, b"a"]), Exact),
            _ => (a(&[b"GEORADIUS", &key, b"1", b"2", b"3"]), Exact),
        },
    })
}
