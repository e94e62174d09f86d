//! Geo commands (Redis's `geo.c`): GEOADD, GEOPOS, GEODIST, GEOHASH, GEOSEARCH,
//! GEOSEARCHSTORE, GEORADIUS, GEORADIUSBYMEMBER and their `_RO` variants.
//!
//! A geo index is a plain sorted set whose scores are 52-bit geohashes
//! ([`crate::storage::geohash`]); GEOADD is ZADD with scores computed from the
//! coordinates (it runs the ZADD handler itself, as Redis rewrites the command), and
//! every reader decodes scores back to the center of their cell. A search scans the
//! score ranges of at most nine cells around the center, keeps the members inside the
//! circle or box, then sorts by distance. The one idea to hold: the printed numbers are
//! the contract: coordinates as `%.17Lf` with trailing zeros cut, distances rounded to
//! four decimals with `llrint`, so every value goes through the same arithmetic Redis
//! uses, and results come out in Redis's scan order (cell by cell, by score) before any
//! sort, which COUNT ANY and unsorted replies expose.

use super::zset::parse_score;
use super::{args, errors, Command, Ctx, Exec, Touch};
use crate::notify;
use crate::protocol::Reply;
use crate::storage::geohash::{self, Shape, ShapeKind};
use crate::storage::long_double::LongDouble;
use crate::storage::zset::{Limits, ScoreRange, ZSet};
use crate::storage::Value;
use bytes::Bytes;
use std::cmp::Ordering::Equal;

pub static COMMANDS: &[Command] = &[
    Command::new(
        "geoadd",
        -5,
        "write denyoom",
        "write geo slow",
        Exec::Shard(geoadd),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "geopos",
        -2,
        "readonly",
        "read geo slow",
        Exec::Shard(geopos),
    )
    .keys(1, 1, 1),
    Command::new(
        "geodist",
        -4,
        "readonly",
        "read geo slow",
        Exec::Shard(geodist),
    )
    .keys(1, 1, 1),
    Command::new(
        "geohash",
        -2,
        "readonly",
        "read geo slow",
        Exec::Shard(geohash),
    )
    .keys(1, 1, 1),
    Command::new(
        "geosearch",
        -7,
        "readonly",
        "read geo slow",
        Exec::Shard(geosearch),
    )
    .keys(1, 1, 1),
    Command::new(
        "geosearchstore",
        -8,
        "write denyoom",
        "write geo slow",
        Exec::Shard(geosearchstore),
    )
    .keys(1, 2, 1)
    .verbatim()
    .touch(Touch::Only(1)),
    Command::new(
        "georadius",
        -6,
        "write denyoom movablekeys",
        "write geo slow",
        Exec::Shard(georadius),
    )
    .keys(1, 1, 1)
    .find_keys(radius_store_keys)
    .verbatim()
    .touch(Touch::AllBut(1)),
    Command::new(
        "georadiusbymember",
        -5,
        "write denyoom movablekeys",
        "write geo slow",
        Exec::Shard(georadiusbymember),
    )
    .keys(1, 1, 1)
    .find_keys(radius_store_keys)
    .verbatim()
    .touch(Touch::AllBut(1)),
    Command::new(
        "georadius_ro",
        -6,
        "readonly",
        "read geo slow",
        Exec::Shard(georadius_ro),
    )
    .keys(1, 1, 1),
    Command::new(
        "georadiusbymember_ro",
        -5,
        "readonly",
        "read geo slow",
        Exec::Shard(georadiusbymember_ro),
    )
    .keys(1, 1, 1),
];

/// GEORADIUS / GEORADIUSBYMEMBER keys: the source, then what Redis 7.0's key specs
/// find (the key after the first STORE, then after the first STOREDIST, searching from
/// the first option), then the key the command really writes if those missed it (the
/// one after the last STORE or STOREDIST, Redis's `georadiusGetKeys`), so that a
/// repeated option still routes the destination.
fn radius_store_keys(argv: &[Bytes]) -> Vec<usize> {
    let first_option = if args::eq(&argv[0], "georadiusbymember") {
        5
    } else {
        6
    };
    let after = |word: &str| {
        (first_option..argv.len())
            .find(|&i| args::eq(&argv[i], word))
            .map(|i| i + 1)
    };
    let mut keys = vec![1];
    keys.extend(after("store"));
    keys.extend(after("storedist"));
    let mut written = None;
    let mut i = 5;
    while i < argv.len() {
        if (args::eq(&argv[i], "store") || args::eq(&argv[i], "storedist")) && i + 1 < argv.len() {
            written = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    if let Some(w) = written {
        if !keys.contains(&w) {
            keys.push(w);
        }
    }
    keys
}

// ---- argument helpers ----------------------------------------------------------------

/// A double argument as `getDoubleFromObjectOrReply`, with `msg` (or the standard
/// text) as its error.
fn double_arg(b: &[u8], msg: Option<&'static str>) -> Result<f64, Reply> {
    parse_score(b).ok_or_else(|| match msg {
        Some(m) => Reply::err(m),
        None => errors::not_float(),
    })
}

/// `extractLongLatOrReply`: a longitude and a latitude within the geo limits.
fn lon_lat_args(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), Reply> {
    let lon = double_arg(lon, None)?;
    let lat = double_arg(lat, None)?;
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&lon)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat)
    {
        return Err(errors::invalid_lon_lat(lon, lat));
    }
    Ok((lon, lat))
}

/// `extractUnitOrReply`: meters per unit.
fn unit_arg(b: &[u8]) -> Result<f64, Reply> {
    if args::eq(b, "m") {
        Ok(1.0)
    } else if args::eq(b, "km") {
        Ok(1000.0)
    } else if args::eq(b, "ft") {
        Ok(0.3048)
    } else if args::eq(b, "mi") {
        Ok(1609.34)
    } else {
        Err(Reply::err(errors::GEO_UNSUPPORTED_UNIT))
    }
}

/// `extractDistanceOrReply`: a radius and its unit, as (radius, meters per unit).
fn radius_args(radius: &[u8], unit: &[u8]) -> Result<(f64, f64), Reply> {
    let r = double_arg(radius, Some(errors::GEO_NEED_RADIUS))?;
    if r < 0.0 {
        return Err(Reply::err(errors::GEO_RADIUS_NEGATIVE));
    }
    Ok((r, unit_arg(unit)?))
}

/// `extractBoxOrReply`: width, height and meters per unit.
fn box_args(width: &[u8], height: &[u8], unit: &[u8]) -> Result<(f64, f64, f64), Reply> {
    let w = double_arg(width, Some(errors::GEO_NEED_WIDTH))?;
    let h = double_arg(height, Some(errors::GEO_NEED_HEIGHT))?;
    if h < 0.0 || w < 0.0 {
        return Err(Reply::err(errors::GEO_BOX_NEGATIVE));
    }
    Ok((w, h, unit_arg(unit)?))
}

// ---- reply helpers -------------------------------------------------------------------

/// `addReplyHumanLongDouble`: `%.17Lf` with trailing zeros removed, as the bulk string
/// RESP2 clients get. (Redis sends RESP3 clients the same text as a `,` double; that
/// needs a reply variant carrying a double's text, which `Reply` does not have yet.)
fn human_double(d: f64) -> Reply {
    Reply::DoubleText(human_string(d))
}

fn human_string(d: f64) -> String {
    if !d.is_finite() {
        return LongDouble::Inf { neg: d < 0.0 }.to_human_string();
    }
    let bits = d.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1u64 << 52) - 1);
    let (mant, exp) = if biased == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), biased - 1075)
    };
    LongDouble::Finite {
        neg: d.is_sign_negative(),
        mant,
        exp,
    }
    .to_human_string()
}

/// `addReplyDoubleDistance`: four decimals, rounded as `llrint(d * 10000)`.
fn distance_reply(d: f64) -> Reply {
    Reply::Bulk(Bytes::from(fixed4(d)))
}

/// Redis's `fixedpoint_d2string(d, 4)`.
fn fixed4(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".into();
    }
    let scaled = d * 10000.0;
    let v = if scaled.is_finite() && scaled.abs() < 9.2e18 {
        scaled.round_ties_even() as i64
    } else {
        i64::MIN
    };
    let sign = if v < 0 { "-" } else { "" };
    let u = v.unsigned_abs();
    format!("{sign}{}.{:04}", u / 10000, u % 10000)
}

/// C's `(long long)d` on x86-64: out of range (or NaN) gives LLONG_MIN.
fn c_double_to_i64(d: f64) -> i64 {
    if d.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&d) {
        i64::MIN
    } else {
        d as i64
    }
}

// ---- lookups -------------------------------------------------------------------------

/// The sorted set at `key` for reading: None if missing, WRONGTYPE if another type.
fn read_zset<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c ZSet>, Reply> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(errors::wrongtype()),
        },
    }
}

/// The position of `member` (`longLatFromMember`).
fn member_position(z: &ZSet, member: &[u8]) -> Option<(f64, f64)> {
    z.score(member).and_then(geohash::position_of_score)
}

// ---- GEOADD, GEOPOS, GEODIST, GEOHASH --------------------------------------------------

/// GEOADD key [NX|XX] [CH] longitude latitude member [...]: ZADD with the scores.
fn geoadd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let mut first = 2;
    let (mut nx, mut xx) = (false, false);
    while first < argv.len() {
        let o = &argv[first];
        if args::eq(o, "nx") {
            nx = true;
        } else if args::eq(o, "xx") {
            xx = true;
        } else if !args::eq(o, "ch") {
            break;
        }
        first += 1;
    }
    if !(argv.len() - first).is_multiple_of(3) || (nx && xx) {
        return errors::syntax();
    }
    let mut zadd_argv: Vec<Bytes> = Vec::with_capacity(first + (argv.len() - first) / 3 * 2);
    zadd_argv.push(Bytes::from_static(b"zadd"));
    zadd_argv.extend(argv[1..first].iter().cloned());
    for triple in argv[first..].chunks_exact(3) {
        let (lon, lat) = match lon_lat_args(&triple[0], &triple[1]) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let score = geohash::score_of(lon, lat).unwrap_or(0);
        zadd_argv.push(Bytes::from(itoa::Buffer::new().format(score).to_owned()));
        zadd_argv.push(triple[2].clone());
    }
    match super::lookup(b"zadd").map(|c| c.exec) {
        Some(Exec::Shard(zadd)) => zadd(ctx, &zadd_argv),
        _ => Reply::err(errors::GEO_NO_ZADD),
    }
}

/// GEOPOS key [member ...]: [longitude, latitude] per member, or a null array.
fn geopos(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let z = match read_zset(ctx, &argv[1]) {
        Ok(z) => z,
        Err(e) => return e,
    };
    Reply::Array(
        argv[2..]
            .iter()
            .map(|m| match z.and_then(|z| member_position(z, m)) {
                Some((lon, lat)) => Reply::Array(vec![human_double(lon), human_double(lat)]),
                None => Reply::NullArray,
            })
            .collect(),
    )
}

/// GEODIST key member1 member2 [M|KM|FT|MI]
fn geodist(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let to_meters = match argv.len() {
        5 => match unit_arg(&argv[4]) {
            Ok(u) => u,
            Err(e) => return e,
        },
        4 => 1.0,
        _ => return errors::syntax(),
    };
    let z = match read_zset(ctx, &argv[1]) {
        Ok(Some(z)) => z,
        Ok(None) => return Reply::Null,
        Err(e) => return e,
    };
    let (Some(s1), Some(s2)) = (z.score(&argv[2]), z.score(&argv[3])) else {
        return Reply::Null;
    };
    match (
        geohash::position_of_score(s1),
        geohash::position_of_score(s2),
    ) {
        (Some((lon1, lat1)), Some((lon2, lat2))) => {
            distance_reply(geohash::distance(lon1, lat1, lon2, lat2) / to_meters)
        }
        _ => Reply::Null,
    }
}

/// GEOHASH key [member ...]: 11-character standard geohashes, or nulls.
fn geohash(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let z = match read_zset(ctx, &argv[1]) {
        Ok(z) => z,
        Err(e) => return e,
    };
    Reply::Array(
        argv[2..]
            .iter()
            .map(|m| match z.and_then(|z| member_position(z, m)) {
                Some((lon, lat)) => Reply::bulk(&geohash::standard_string(lon, lat)),
                None => Reply::Null,
            })
            .collect(),
    )
}

// ---- searches ------------------------------------------------------------------------

/// Which search command is running (Redis's `georadiusGeneric` flags).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// GEORADIUS[_RO]: center from coordinates.
    RadiusCoords { store_allowed: bool },
    /// GEORADIUSBYMEMBER[_RO]: center from a member.
    RadiusMember { store_allowed: bool },
    /// GEOSEARCH / GEOSEARCHSTORE: FROM... and BY... options.
    Search { store: bool },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// One match: the member, its decoded position, its distance from the center (in
/// meters until the reply converts it) and its score.
struct GeoPoint {
    member: Vec<u8>,
    longitude: f64,
    latitude: f64,
    dist: f64,
    score: f64,
}

fn geosearch(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    search_generic(ctx, argv, 1, Variant::Search { store: false })
}
fn geosearchstore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    search_generic(ctx, argv, 2, Variant::Search { store: true })
}
fn georadius(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    search_generic(
        ctx,
        argv,
        1,
        Variant::RadiusCoords {
            store_allowed: true,
        },
    )
}
fn georadius_ro(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    search_generic(
        ctx,
        argv,
        1,
        Variant::RadiusCoords {
            store_allowed: false,
        },
    )
}
fn georadiusbymember(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    search_generic(
        ctx,
        argv,
        1,
        Variant::RadiusMember {
            store_allowed: true,
        },
    )
}
fn georadiusbymember_ro(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    search_generic(
        ctx,
        argv,
        1,
        Variant::RadiusMember {
            store_allowed: false,
        },
    )
}

/// The members of `z` inside `shape`, in scan order: cell by cell (skipping cleared
/// cells and a cell equal to the one scanned just before), by score within a cell. A
/// `limit` above 0 stops the scan once that many matched (COUNT ... ANY).
fn members_in_shape(z: &ZSet, shape: &Shape, limit: usize) -> Vec<GeoPoint> {
    let cells = geohash::search_cells(shape);
    let mut found: Vec<GeoPoint> = Vec::new();
    let full = |found: &Vec<GeoPoint>| limit > 0 && found.len() >= limit;
    let mut last_scanned = 0;
    for (i, cell) in cells.iter().enumerate() {
        if cell.is_zero() || (last_scanned != 0 && *cell == cells[last_scanned]) {
            continue;
        }
        if full(&found) {
            break;
        }
        let (min, max) = cell.score_range();
        let range = ScoreRange {
            min: min as f64,
            max: max as f64,
            minex: false,
            maxex: true,
        };
        for (member, score) in z.range_by_score(&range, false) {
            if let Some((longitude, latitude)) = geohash::position_of_score(score) {
                if let Some(dist) = geohash::distance_if_within(shape, longitude, latitude) {
                    found.push(GeoPoint {
                        member: member.to_vec(),
                        longitude,
                        latitude,
                        dist,
                        score,
                    });
                }
            }
            if full(&found) {
                break;
            }
        }
        last_scanned = i;
    }
    found
}

/// Redis's `georadiusGeneric`: GEORADIUS, GEORADIUSBYMEMBER, GEOSEARCH,
/// GEOSEARCHSTORE and the read-only variants, with the source key at `src`.
fn search_generic(ctx: &mut Ctx, argv: &[Bytes], src: usize, variant: Variant) -> Reply {
    let zset = match read_zset(ctx, &argv[src]) {
        Ok(z) => z,
        Err(e) => return e,
    };
    let mut storekey: Option<&Bytes> = None;
    let mut storedist = false;
    let mut center: Option<(f64, f64)> = None;
    let mut kind: Option<(ShapeKind, f64)> = None;

    let base_args = match variant {
        Variant::RadiusCoords { .. } => {
            match lon_lat_args(&argv[2], &argv[3]) {
                Ok(p) => center = Some(p),
                Err(e) => return e,
            }
            match radius_args(&argv[4], &argv[5]) {
                Ok((radius, conv)) => kind = Some((ShapeKind::Radius { radius }, conv)),
                Err(e) => return e,
            }
            6
        }
        // Without a source the member cannot be looked up; the options are still
        // parsed so that STORE decides the reply.
        Variant::RadiusMember { .. } if zset.is_none() => 5,
        Variant::RadiusMember { .. } => {
            match zset.and_then(|z| member_position(z, &argv[2])) {
                Some(p) => center = Some(p),
                None => return Reply::err(errors::GEO_DECODE_MEMBER),
            }
            match radius_args(&argv[3], &argv[4]) {
                Ok((radius, conv)) => kind = Some((ShapeKind::Radius { radius }, conv)),
                Err(e) => return e,
            }
            5
        }
        Variant::Search { store: false } => 2,
        Variant::Search { store: true } => {
            storekey = Some(&argv[1]);
            3
        }
    };
    let (store_allowed, is_search, is_searchstore) = match variant {
        Variant::RadiusCoords { store_allowed } | Variant::RadiusMember { store_allowed } => {
            (store_allowed, false, false)
        }
        Variant::Search { store } => (false, true, store),
    };

    let (mut withdist, mut withhash, mut withcoord) = (false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut any = false;
    let mut count: i64 = 0;
    let rest = &argv[base_args.min(argv.len())..];
    let mut i = 0;
    while i < rest.len() {
        let arg = &rest[i];
        let left = rest.len() - i - 1; // arguments after this one
        if args::eq(arg, "withdist") {
            withdist = true;
        } else if args::eq(arg, "withhash") {
            withhash = true;
        } else if args::eq(arg, "withcoord") {
            withcoord = true;
        } else if args::eq(arg, "any") {
            any = true;
        } else if args::eq(arg, "asc") {
            sort = Sort::Asc;
        } else if args::eq(arg, "desc") {
            sort = Sort::Desc;
        } else if args::eq(arg, "count") && left >= 1 {
            count = match args::int(&rest[i + 1]) {
                Ok(c) => c,
                Err(e) => return e,
            };
            if count <= 0 {
                return Reply::err(errors::GEO_COUNT_NOT_POSITIVE);
            }
            i += 1;
        } else if (args::eq(arg, "store") || args::eq(arg, "storedist"))
            && left >= 1
            && store_allowed
        {
            storekey = Some(&rest[i + 1]);
            storedist = args::eq(arg, "storedist");
            i += 1;
        } else if args::eq(arg, "storedist") && is_searchstore {
            storedist = true;
        } else if args::eq(arg, "frommember") && left >= 1 && is_search && !fromloc {
            if let Some(z) = zset {
                match member_position(z, &rest[i + 1]) {
                    Some(p) => center = Some(p),
                    None => return Reply::err(errors::GEO_DECODE_MEMBER),
                }
            }
            frommember = true;
            i += 1;
        } else if args::eq(arg, "fromlonlat") && left >= 2 && is_search && !frommember {
            match lon_lat_args(&rest[i + 1], &rest[i + 2]) {
                Ok(p) => center = Some(p),
                Err(e) => return e,
            }
            fromloc = true;
            i += 2;
        } else if args::eq(arg, "byradius") && left >= 2 && is_search && !bybox {
            match radius_args(&rest[i + 1], &rest[i + 2]) {
                Ok((radius, conv)) => kind = Some((ShapeKind::Radius { radius }, conv)),
                Err(e) => return e,
            }
            byradius = true;
            i += 2;
        } else if args::eq(arg, "bybox") && left >= 3 && is_search && !byradius {
            match box_args(&rest[i + 1], &rest[i + 2], &rest[i + 3]) {
                Ok((width, height, conv)) => kind = Some((ShapeKind::Box { width, height }, conv)),
                Err(e) => return e,
            }
            bybox = true;
            i += 3;
        } else {
            return errors::syntax();
        }
        i += 1;
    }

    if storekey.is_some() && (withdist || withhash || withcoord) {
        return Reply::err(if is_searchstore {
            errors::GEOSEARCHSTORE_WITH
        } else {
            errors::GEORADIUS_STORE_WITH
        });
    }
    let name = || String::from_utf8_lossy(&argv[0]).into_owned();
    if is_search && !(frommember || fromloc) {
        return errors::geo_one_origin(&name());
    }
    if is_search && !(byradius || bybox) {
        return errors::geo_one_shape(&name());
    }
    if any && count == 0 {
        return Reply::err(errors::GEO_ANY_WITHOUT_COUNT);
    }

    let Some(z) = zset else {
        return match storekey {
            Some(dest) => {
                if ctx.db().delete(dest) {
                    ctx.notify(notify::GENERIC, "del", dest);
                }
                Reply::Int(0)
            }
            None => Reply::Array(vec![]),
        };
    };
    // Both are set on every path that reaches here with a source.
    let (Some((longitude, latitude)), Some((kind, conversion))) = (center, kind) else {
        return errors::syntax();
    };
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let shape = Shape {
        longitude,
        latitude,
        conversion,
        kind,
    };
    let limit = if any { count as usize } else { 0 };
    let mut found = members_in_shape(z, &shape, limit);
    if found.is_empty() && storekey.is_none() {
        return Reply::Array(vec![]);
    }
    let returned = if count == 0 {
        found.len()
    } else {
        found.len().min(count as usize)
    };
    match sort {
        Sort::None => {}
        // Stable, as glibc's qsort (a merge sort) is: equal distances keep scan order.
        Sort::Asc => found.sort_by(|a, b| a.dist.partial_cmp(&b.dist).unwrap_or(Equal)),
        Sort::Desc => found.sort_by(|a, b| b.dist.partial_cmp(&a.dist).unwrap_or(Equal)),
    }
    found.truncate(returned);
    for p in found.iter_mut() {
        p.dist /= conversion;
    }

    let Some(dest) = storekey else {
        let options = withdist as usize + withhash as usize + withcoord as usize;
        return Reply::Array(
            found
                .into_iter()
                .map(|p| {
                    let member = Reply::Bulk(Bytes::from(p.member));
                    if options == 0 {
                        return member;
                    }
                    let mut item = Vec::with_capacity(options + 1);
                    item.push(member);
                    if withdist {
                        item.push(distance_reply(p.dist));
                    }
                    if withhash {
                        item.push(Reply::Int(c_double_to_i64(p.score)));
                    }
                    if withcoord {
                        item.push(Reply::Array(vec![
                            human_double(p.longitude),
                            human_double(p.latitude),
                        ]));
                    }
                    Reply::Array(item)
                })
                .collect(),
        );
    };
    let dest = dest.clone();
    if returned == 0 {
        if ctx.db().delete(&dest) {
            ctx.notify(notify::GENERIC, "del", &dest);
        }
        return Reply::Int(0);
    }
    let limits = Limits::of(&ctx.shard.config.encoding);
    let stored = ZSet::from_pairs(
        found.iter().map(|p| {
            (
                p.member.as_slice(),
                if storedist { p.dist } else { p.score },
            )
        }),
        limits,
    );
    ctx.db().set(&dest, Value::ZSet(Box::new(stored)), false);
    // Redis counts one change per stored member; Db::set counted one.
    ctx.db().dirty += returned as u64 - 1;
    let event = if is_search {
        "geosearchstore"
    } else {
        "georadiusstore"
    };
    ctx.notify(notify::ZSET, event, &dest);
    Reply::Int(returned as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::{argv, run_resp2 as run, shard};

    fn bulk(s: &str) -> Reply {
        Reply::bulk_str(s)
    }
    fn arr(v: Vec<Reply>) -> Reply {
        Reply::Array(v)
    }

    fn sicily() -> crate::shard::Shard {
        let mut s = shard();
        let r = run(
            &mut s,
            geoadd,
            &[
                "geoadd",
                "Sicily",
                "13.361389",
                "38.115556",
                "Palermo",
                "15.087269",
                "37.502669",
                "Catania",
            ],
        );
        assert_eq!(r, Reply::Int(2));
        s
    }

    #[test]
    fn geoadd_stores_redis_scores() {
        let mut s = sicily();
        let z = match &s.dbs[0].keys.get(&b"Sicily"[..]).unwrap().value {
            Value::ZSet(z) => z.clone(),
            _ => panic!("not a zset"),
        };
        assert_eq!(z.score(b"Palermo"), Some(3479099956230698.0));
        assert_eq!(z.score(b"Catania"), Some(3479447370796909.0));
        assert_eq!(
            run(
                &mut s,
                geoadd,
                &[
                    "geoadd",
                    "Sicily",
                    "xx",
                    "ch",
                    "13.361389",
                    "38.115556",
                    "Palermo"
                ]
            ),
            Reply::Int(0)
        );
        assert_eq!(
            run(
                &mut s,
                geoadd,
                &["geoadd", "Sicily", "ch", "13", "38", "Palermo"]
            ),
            Reply::Int(1)
        );
        assert_eq!(
            run(
                &mut s,
                geoadd,
                &["geoadd", "Sicily", "nx", "xx", "13", "38", "Palermo"]
            ),
            errors::syntax()
        );
        assert_eq!(
            run(&mut s, geoadd, &["geoadd", "Sicily", "13", "38"]),
            errors::syntax()
        );
        assert_eq!(
            run(&mut s, geoadd, &["geoadd", "Sicily", "200", "10", "x"]),
            errors::invalid_lon_lat(200.0, 10.0)
        );
        assert_eq!(
            run(&mut s, geoadd, &["geoadd", "Sicily", "abc", "10", "x"]),
            errors::not_float()
        );
    }

    #[test]
    fn geopos_geohash_geodist_match_redis() {
        let mut s = sicily();
        assert_eq!(
            run(&mut s, geopos, &["geopos", "Sicily", "Palermo", "nope"]),
            arr(vec![
                arr(vec![
                    bulk("13.36138933897018433"),
                    bulk("38.11555639549629859")
                ]),
                Reply::NullArray,
            ])
        );
        assert_eq!(
            run(
                &mut s,
                geohash,
                &["geohash", "Sicily", "Palermo", "Catania", "x"]
            ),
            arr(vec![bulk("sqc8b49rny0"), bulk("sqdtr74hyu0"), Reply::Null])
        );
        assert_eq!(
            run(
                &mut s,
                geodist,
                &["geodist", "Sicily", "Palermo", "Catania"]
            ),
            bulk("166274.1516")
        );
        assert_eq!(
            run(
                &mut s,
                geodist,
                &["geodist", "Sicily", "Palermo", "Catania", "KM"]
            ),
            bulk("166.2742")
        );
        assert_eq!(
            run(
                &mut s,
                geodist,
                &["geodist", "Sicily", "Palermo", "Catania", "yd"]
            ),
            Reply::err(errors::GEO_UNSUPPORTED_UNIT)
        );
        assert_eq!(
            run(
                &mut s,
                geodist,
                &["geodist", "Sicily", "Palermo", "Palermo"]
            ),
            bulk("0.0000")
        );
        assert_eq!(
            run(&mut s, geodist, &["geodist", "nokey", "a", "b"]),
            Reply::Null
        );
        assert_eq!(
            run(&mut s, geopos, &["geopos", "nokey", "a"]),
            arr(vec![Reply::NullArray])
        );
    }

    #[test]
    fn geosearch_matches_redis() {
        let mut s = sicily();
        // GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km WITHDIST WITHCOORD WITHHASH ASC
        let r = run(
            &mut s,
            geosearch,
            &[
                "geosearch",
                "Sicily",
                "fromlonlat",
                "15",
                "37",
                "byradius",
                "200",
                "km",
                "withdist",
                "withcoord",
                "withhash",
                "asc",
            ],
        );
        let want = arr(vec![
            arr(vec![
                bulk("Catania"),
                bulk("56.4413"),
                Reply::Int(3479447370796909),
                arr(vec![
                    bulk("15.08726745843887329"),
                    bulk("37.50266842333162032"),
                ]),
            ]),
            arr(vec![
                bulk("Palermo"),
                bulk("190.4424"),
                Reply::Int(3479099956230698),
                arr(vec![
                    bulk("13.36138933897018433"),
                    bulk("38.11555639549629859"),
                ]),
            ]),
        ]);
        assert_eq!(r, want);
        let r = run(
            &mut s,
            geosearch,
            &[
                "geosearch",
                "Sicily",
                "frommember",
                "Palermo",
                "bybox",
                "400",
                "400",
                "km",
                "desc",
            ],
        );
        assert_eq!(r, arr(vec![bulk("Catania"), bulk("Palermo")]));
        let r = run(
            &mut s,
            georadiusbymember,
            &["georadiusbymember", "Sicily", "Palermo", "100", "km"],
        );
        assert_eq!(r, arr(vec![bulk("Palermo")]));
    }

    #[test]
    fn search_store_and_errors() {
        let mut s = sicily();
        let r = run(
            &mut s,
            geosearchstore,
            &[
                "geosearchstore",
                "dst",
                "Sicily",
                "fromlonlat",
                "15",
                "37",
                "byradius",
                "200",
                "km",
                "storedist",
            ],
        );
        assert_eq!(r, Reply::Int(2));
        let z = match &s.dbs[0].keys.get(&b"dst"[..]).unwrap().value {
            Value::ZSet(z) => z.clone(),
            _ => panic!("not a zset"),
        };
        assert_eq!(z.encoding(), "listpack");
        assert!((z.score(b"Catania").unwrap() - 56.4413).abs() < 1e-4);
        // An empty result deletes the destination.
        let r = run(
            &mut s,
            georadius,
            &["georadius", "Sicily", "0", "0", "1", "m", "store", "dst"],
        );
        assert_eq!(r, Reply::Int(0));
        assert!(!s.dbs[0].keys.contains_key(&b"dst"[..]));
        let err = |s: &mut crate::shard::Shard, f: fn(&mut Ctx, &[Bytes]) -> Reply, a: &[&str]| {
            match run(s, f, a) {
                Reply::Error(e) => e.into_owned(),
                other => panic!("not an error: {other:?}"),
            }
        };
        assert_eq!(
            err(
                &mut s,
                geosearch,
                &["geosearch", "Sicily", "byradius", "1", "m", "asc"]
            ),
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for geosearch"
        );
        assert_eq!(
            err(
                &mut s,
                geosearch,
                &["geosearch", "Sicily", "frommember", "Palermo", "asc"]
            ),
            "ERR exactly one of BYRADIUS and BYBOX can be specified for geosearch"
        );
        assert_eq!(
            err(
                &mut s,
                geosearch,
                &[
                    "geosearch",
                    "Sicily",
                    "frommember",
                    "x",
                    "byradius",
                    "1",
                    "m"
                ]
            ),
            "ERR could not decode requested zset member"
        );
        assert_eq!(
            err(
                &mut s,
                georadius,
                &["georadius", "Sicily", "15", "37", "-1", "km"]
            ),
            "ERR radius cannot be negative"
        );
        assert_eq!(
            err(
                &mut s,
                georadius,
                &["georadius", "Sicily", "15", "37", "1", "km", "any"]
            ),
            "ERR the ANY argument requires COUNT argument"
        );
        assert_eq!(
            err(
                &mut s,
                georadius,
                &["georadius", "Sicily", "15", "37", "1", "km", "count", "0"]
            ),
            "ERR COUNT must be > 0"
        );
        assert_eq!(
            err(
                &mut s,
                georadius_ro,
                &[
                    "georadius_ro",
                    "Sicily",
                    "15",
                    "37",
                    "1",
                    "km",
                    "store",
                    "x"
                ]
            ),
            "ERR syntax error"
        );
        assert_eq!(
            err(&mut s, georadius, &["georadius", "Sicily", "15", "37", "1", "km", "withdist", "store", "x"]),
            "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        );
        // A missing source: an empty array, or 0 with STORE (and no member lookup).
        assert_eq!(
            run(
                &mut s,
                georadiusbymember,
                &["georadiusbymember", "nokey", "x", "1", "km"]
            ),
            arr(vec![])
        );
        assert_eq!(
            run(
                &mut s,
                georadiusbymember,
                &[
                    "georadiusbymember",
                    "nokey",
                    "x",
                    "1",
                    "km",
                    "store",
                    "Sicily"
                ]
            ),
            Reply::Int(0)
        );
        assert!(!s.dbs[0].keys.contains_key(&b"Sicily"[..]));
    }

    #[test]
    fn store_key_finder_covers_redis_specs_and_the_written_key() {
        let a = argv(&[
            "georadiusbymember",
            "k",
            "m",
            "3",
            "m",
            "storedist",
            "d",
            "store",
            "e",
        ]);
        assert_eq!(radius_store_keys(&a), vec![1, 8, 6]);
        let a = argv(&[
            "georadius",
            "k",
            "1",
            "2",
            "3",
            "m",
            "store",
            "a",
            "store",
            "b",
        ]);
        assert_eq!(radius_store_keys(&a), vec![1, 7, 9]);
        let a = argv(&["georadius", "k", "1", "2", "3", "m", "store"]);
        assert_eq!(radius_store_keys(&a), vec![1, 7]);
    }

    #[test]
    fn number_formats() {
        assert_eq!(fixed4(0.0), "0.0000");
        // Values checked against C's llrint(d * 10000.0).
        assert_eq!(fixed4(1.00005), "1.0001");
        assert_eq!(fixed4(2.00005), "2.0000");
        assert_eq!(fixed4(0.00005), "0.0000"); // llrint(0.5) is 0: ties to even
        assert_eq!(fixed4(0.00015), "0.0001");
        assert_eq!(fixed4(123456.78901), "123456.7890");
        assert_eq!(human_string(13.361389338970184), "13.36138933897018433");
        assert_eq!(human_string(-0.0), "0");
        assert_eq!(human_string(180.0), "180");
        assert_eq!(human_string(-85.05112878), "-85.0511287799999991");
    }
}
