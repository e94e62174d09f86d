//! SORT and SORT_RO (Redis's `sort.c`): sort a list, set or sorted set, by the elements
//! themselves or by keys named after them (`BY weight_*`, `BY h_*->field`), fetch other
//! keys per element (`GET #`, `GET data_*`), window the result (`LIMIT`), and reply or
//! store it as a list (`STORE`).
//!
//! The one idea to hold: the elements come from the sorted key, but BY and GET patterns
//! name arbitrary keys, which may live on other shards. So the work is split in three
//! steps that know nothing of each other's place: [`SortOptions::parse`] (argv only),
//! [`load`] (reads the sorted value, already windowed where Redis skips sorting), and
//! [`sort_elements`] (ordering, LIMIT and GET), which reaches other keys only through
//! the [`SortLookup`] trait. The shard handler passes its own [`Ctx`] as the lookup; a
//! cross-shard path can pass one backed by keys fetched elsewhere ([`resolve_pattern`]
//! says which key and field a pattern names for an element).
//!
//! Redis 7.0 details kept: numeric sorting parses with C's `strtod` (an empty string is
//! 0; trailing bytes, NaN or ERANGE, subnormals included, fail with "One or more scores
//! can't be converted into double"), equal scores fall back to comparing the elements'
//! bytes; `BY` without `*` skips sorting (lists and sorted sets keep their order, DESC
//! reversing it; a set keeps its iteration order and ignores DESC, except with STORE
//! or in a script, where it is sorted ALPHA so the stored list or the script's result
//! is deterministic); ALPHA compares with
//! `strcoll` in the C locale (bytes up to the first NUL) unless storing (all bytes);
//! a missing BY key sorts as 0, or first under ALPHA; a sorted set in listpack encoding
//! is converted to a skiplist, as Redis does before sorting it (OBJECT ENCODING shows it).

use super::{args, errors, Command, Ctx, Exec, Touch};
use crate::notify;
use crate::protocol::Reply;
use crate::storage::list::{End, List};
use crate::storage::zset::strtod;
use crate::storage::Value;
use bytes::Bytes;
use std::cmp::Ordering;

// Redis gives SORT three key specs (the sorted key; BY/GET keys, unknown; the STORE
// destination, unknown, OW update) and SORT_RO two; the table has one, the sorted key's.
pub static COMMANDS: &[Command] = &[
    Command::new(
        "sort",
        -2,
        "write denyoom movablekeys",
        "write set sortedset list slow dangerous",
        Exec::Shard(sort),
    )
    .keys(1, 1, 1)
    .find_keys(sort_keys)
    .verbatim()
    .touch(Touch::AllBut(1))
    .spread(crate::runtime::sort::SPREAD),
    Command::new(
        "sort_ro",
        -2,
        "readonly movablekeys",
        "read set sortedset list slow dangerous",
        Exec::Shard(sort_ro),
    )
    .keys(1, 1, 1)
    .find_keys(sort_ro_keys)
    .spread(crate::runtime::sort::SPREAD),
];

/// SORT's keys as Redis's `sortGetKeys`: the sorted key, and the argument after the
/// last `STORE`. Like Redis, it skips the arguments of LIMIT (2), GET and BY (1) but
/// not STORE's, so `STORE limit 1 2` reads the destination `limit` as LIMIT too.
fn sort_keys(argv: &[Bytes]) -> Vec<usize> {
    let mut store = None;
    let mut i = 2;
    while i < argv.len() {
        let a = &argv[i];
        if args::eq(a, "limit") {
            i += 2;
        } else if args::eq(a, "get") || args::eq(a, "by") {
            i += 1;
        } else if args::eq(a, "store") && i + 1 < argv.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    let mut keys = vec![1];
    keys.extend(store);
    keys
}

/// SORT_RO's only key is the sorted one (`sortROGetKeys`).
fn sort_ro_keys(_argv: &[Bytes]) -> Vec<usize> {
    vec![1]
}

/// How the sort reaches keys named by BY and GET patterns. Both answer `None` for a
/// missing key or one of another type, as Redis's `lookupKeyByPattern` does.
pub trait SortLookup {
    /// The value of the string at `key`.
    fn string(&mut self, key: &[u8]) -> Option<Vec<u8>>;
    /// The value of `field` in the hash at `key`.
    fn hash_field(&mut self, key: &[u8], field: &[u8]) -> Option<Vec<u8>>;
}

/// Lookups in the shard's own db, counted as reads (hits, misses, LRU) as Redis's
/// `lookupKeyRead` counts them.
impl SortLookup for Ctx<'_> {
    fn string(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        match &self.lookup_read(key)?.value {
            Value::Str(s) => Some(s.as_bytes().into_owned()),
            _ => None,
        }
    }
    fn hash_field(&mut self, key: &[u8], field: &[u8]) -> Option<Vec<u8>> {
        match &self.lookup_read(key)?.value {
            Value::Hash(h) => h.get(field).map(|v| v.to_vec()),
            _ => None,
        }
    }
}

/// SORT's options, parsed as Redis parses them (left to right, the first bad one wins).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SortOptions {
    pub desc: bool,
    pub alpha: bool,
    /// LIMIT offset count, as given.
    pub limit: Option<(i64, i64)>,
    /// The BY pattern (the last one given).
    pub by: Option<Bytes>,
    /// Some BY named no `*` (e.g. `BY nosort`): keep the native order.
    pub dontsort: bool,
    /// GET patterns, in order.
    pub gets: Vec<Bytes>,
    /// STORE destination (the last one given); never set for SORT_RO.
    pub store: Option<Bytes>,
}

impl SortOptions {
    /// Parse `argv[2..]`. SORT_RO (`readonly`) takes no STORE: a syntax error there.
    pub fn parse(argv: &[Bytes], readonly: bool) -> Result<SortOptions, Reply> {
        let mut o = SortOptions::default();
        let mut j = 2;
        while j < argv.len() {
            let a = &argv[j];
            let left = argv.len() - j - 1;
            if args::eq(a, "asc") {
                o.desc = false;
            } else if args::eq(a, "desc") {
                o.desc = true;
            } else if args::eq(a, "alpha") {
                o.alpha = true;
            } else if args::eq(a, "limit") && left >= 2 {
                let offset = args::int(&argv[j + 1])?;
                let count = args::int(&argv[j + 2])?;
                o.limit = Some((offset, count));
                j += 2;
            } else if !readonly && args::eq(a, "store") && left >= 1 {
                o.store = Some(argv[j + 1].clone());
                j += 1;
            } else if args::eq(a, "by") && left >= 1 {
                let p = argv[j + 1].clone();
                // Redis looks for '*' with strchr (only before a NUL byte), and a BY
                // without one turns sorting off for good: a later BY does not undo it.
                if !c_str(&p).contains(&b'*') {
                    o.dontsort = true;
                } else if crate::cluster::enabled() {
                    // Redis 7.0: a pattern may name keys of any slot.
                    return Err(Reply::err("ERR BY option of SORT denied in Cluster mode."));
                }
                o.by = Some(p);
                j += 1;
            } else if args::eq(a, "get") && left >= 1 {
                if crate::cluster::enabled() {
                    return Err(Reply::err("ERR GET option of SORT denied in Cluster mode."));
                }
                o.gets.push(argv[j + 1].clone());
                j += 1;
            } else {
                return Err(errors::syntax());
            }
            j += 1;
        }
        Ok(o)
    }
}

/// The bytes before the first NUL: what C's string functions see.
fn c_str(b: &[u8]) -> &[u8] {
    b.split(|&c| c == 0).next().unwrap_or(b)
}

/// The type of the sorted value (a missing key sorts as an empty list).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    List,
    Set,
    ZSet,
}

/// The elements to sort, as read from the sorted key.
#[derive(Clone, Debug, PartialEq)]
pub struct Elements {
    pub kind: SourceKind,
    /// Number of elements of the sorted value (LIMIT is applied against it).
    pub total: usize,
    /// The elements: every one in native order (list order, set iteration order,
    /// sorted-set score order), or, when `windowed`, exactly the output window.
    pub items: Vec<Vec<u8>>,
    /// True when `items` is already the LIMIT window in output order (a list or sorted
    /// set that is not sorted: Redis reads only that range).
    pub windowed: bool,
}

impl Elements {
    /// What a missing key sorts as: an empty list.
    pub fn empty() -> Elements {
        Elements {
            kind: SourceKind::List,
            total: 0,
            items: Vec::new(),
            windowed: false,
        }
    }
}

/// The LIMIT window over `len` elements as Redis computes it: inclusive `(start, end)`,
/// empty when `end < start`.
fn window(limit: Option<(i64, i64)>, len: usize) -> (i64, i64) {
    let len = len as i64;
    let (offset, count) = limit.unwrap_or((0, -1));
    let mut start = offset.max(0);
    let mut end = if count < 0 {
        len - 1
    } else {
        start.saturating_add(count - 1)
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    (start, end)
}

/// Read the elements of the sorted value; WRONGTYPE for a string or hash. A sorted set
/// must already be in skiplist encoding if Redis's conversion is to be mirrored (the
/// shard handler does that first).
pub fn load(opts: &SortOptions, value: Option<&Value>) -> Result<Elements, Reply> {
    let Some(value) = value else {
        return Ok(Elements::empty());
    };
    let (kind, total) = match value {
        Value::List(l) => (SourceKind::List, l.len()),
        Value::Set(s) => (SourceKind::Set, s.len()),
        Value::ZSet(z) => (SourceKind::ZSet, z.len()),
        _ => return Err(errors::wrongtype()),
    };
    // Unsorted lists and sorted sets: read just the window, in output order.
    if opts.dontsort && kind != SourceKind::Set {
        let (start, end) = window(opts.limit, total);
        let mut items = Vec::new();
        if end >= start {
            let n = (end - start + 1) as usize;
            match value {
                Value::List(l) => {
                    let len = total as i64;
                    if opts.desc {
                        items = l
                            .range(len - 1 - end, len - 1 - start)
                            .map(|e| e.to_vec())
                            .collect();
                        items.reverse();
                    } else {
                        items = l.range(start, end).map(|e| e.to_vec()).collect();
                    }
                }
                Value::ZSet(z) => {
                    items = z
                        .iter_from_rank(start as usize, opts.desc)
                        .take(n)
                        .map(|(m, _)| m.to_vec())
                        .collect();
                }
                _ => {}
            }
        }
        return Ok(Elements {
            kind,
            total,
            items,
            windowed: true,
        });
    }
    let items = match value {
        Value::List(l) => l.iter().map(|e| e.to_vec()).collect(),
        Value::Set(s) => s.iter().map(|m| m.to_vec()).collect(),
        Value::ZSet(z) => z.iter(false).map(|(m, _)| m.to_vec()).collect(),
        _ => Vec::new(),
    };
    Ok(Elements {
        kind,
        total,
        items,
        windowed: false,
    })
}

/// What a BY or GET pattern names for one element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternRef<'p> {
    /// `#`: the element itself.
    Element,
    /// The string at this key.
    Key(Vec<u8>),
    /// A field of the hash at this key (`pattern->field`).
    Field(Vec<u8>, &'p [u8]),
    /// Nothing (a pattern without `*`): always missing.
    Nothing,
}

/// The key (and hash field) `pattern` names for `element`, as Redis's
/// `lookupKeyByPattern`: the first `*` is replaced by the element; a `->` after it with
/// something behind splits off a hash field.
pub fn resolve_pattern<'p>(pattern: &'p [u8], element: &[u8]) -> PatternRef<'p> {
    if pattern.first() == Some(&b'#') && matches!(pattern.get(1), None | Some(0)) {
        return PatternRef::Element;
    }
    // '*' and "->" are found with strchr / strstr: before the first NUL only.
    let visible = c_str(pattern);
    let Some(star) = visible.iter().position(|&c| c == b'*') else {
        return PatternRef::Nothing;
    };
    let arrow = visible[star + 1..]
        .windows(2)
        .position(|w| w == b"->")
        .map(|i| star + 1 + i)
        .filter(|&f| matches!(pattern.get(f + 2), Some(&c) if c != 0));
    let (key_end, field) = match arrow {
        Some(f) => (f, Some(&pattern[f + 2..])),
        None => (pattern.len(), None),
    };
    let mut key = Vec::with_capacity(key_end - 1 + element.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(&pattern[star + 1..key_end]);
    match field {
        Some(f) => PatternRef::Field(key, f),
        None => PatternRef::Key(key),
    }
}

/// The value `pattern` names for `element`, or `None` when missing.
fn lookup_by_pattern(
    pattern: &[u8],
    element: &[u8],
    lookup: &mut dyn SortLookup,
) -> Option<Vec<u8>> {
    match resolve_pattern(pattern, element) {
        PatternRef::Element => Some(element.to_vec()),
        PatternRef::Key(k) => lookup.string(&k),
        PatternRef::Field(k, f) => lookup.hash_field(&k, f),
        PatternRef::Nothing => None,
    }
}

/// SORT's numeric reading of a value: C's `strtod` must use every byte (up to a NUL)
/// and must not set ERANGE, which glibc also sets for subnormal results; NaN fails.
fn score(b: &[u8]) -> Option<f64> {
    let (v, used, erange) = strtod(b);
    let whole = used == b.len() || b[used] == 0;
    let subnormal = v != 0.0 && v.is_finite() && v.abs() < f64::MIN_POSITIVE;
    (whole && !erange && !subnormal && !v.is_nan()).then_some(v)
}

/// `strcoll` in the C locale: `strcmp` of the bytes before the first NUL.
fn collate(a: &[u8], b: &[u8]) -> Ordering {
    c_str(a).cmp(c_str(b))
}

/// What an element is sorted by.
enum SortKey {
    Score(f64),
    /// ALPHA with BY: the looked-up value, `None` (first) when missing.
    Text(Option<Vec<u8>>),
    /// ALPHA without BY: the element itself.
    Element,
}

/// Sort `elements` as SORT does, apply LIMIT and the GET patterns, and return the output
/// rows: the elements, or for each one the GET results in order (`None` for a missing
/// key: a null reply, or an empty string when stored).
pub fn sort_elements(
    opts: &SortOptions,
    elements: Elements,
    lookup: &mut dyn SortLookup,
) -> Result<Vec<Option<Vec<u8>>>, Reply> {
    let Elements {
        kind,
        total,
        mut items,
        windowed,
    } = elements;
    let (mut dontsort, mut alpha, mut by) = (opts.dontsort, opts.alpha, opts.by.as_deref());
    // An unsorted set would store, or hand a script, its (arbitrary) iteration order:
    // sort it ALPHA, as Redis does.
    if dontsort
        && kind == SourceKind::Set
        && (opts.store.is_some() || crate::scripting::run::calling())
    {
        dontsort = false;
        alpha = true;
        by = None;
    }
    let storing = opts.store.is_some();
    let selected: Vec<Vec<u8>> = if windowed {
        items
    } else {
        if !dontsort {
            let mut keyed = Vec::with_capacity(items.len());
            let mut bad_score = false;
            for item in items.drain(..) {
                let key = match (by, alpha) {
                    (Some(p), true) => SortKey::Text(lookup_by_pattern(p, &item, lookup)),
                    (None, true) => SortKey::Element,
                    (Some(p), false) => match lookup_by_pattern(p, &item, lookup) {
                        Some(v) => SortKey::Score(score(&v).unwrap_or_else(|| {
                            bad_score = true;
                            0.0
                        })),
                        None => SortKey::Score(0.0),
                    },
                    (None, false) => SortKey::Score(score(&item).unwrap_or_else(|| {
                        bad_score = true;
                        0.0
                    })),
                };
                keyed.push((key, item));
            }
            if bad_score {
                return Err(Reply::err(errors::SORT_SCORE_NOT_DOUBLE));
            }
            let text_cmp = |a: &[u8], b: &[u8]| if storing { a.cmp(b) } else { collate(a, b) };
            keyed.sort_by(|(ka, ea), (kb, eb)| {
                let o = match (ka, kb) {
                    (SortKey::Score(a), SortKey::Score(b)) => {
                        if a > b {
                            Ordering::Greater
                        } else if a < b {
                            Ordering::Less
                        } else {
                            ea.cmp(eb)
                        }
                    }
                    (SortKey::Text(a), SortKey::Text(b)) => match (a, b) {
                        (Some(a), Some(b)) => text_cmp(a, b),
                        (a, b) => a.is_some().cmp(&b.is_some()),
                    },
                    _ => text_cmp(ea, eb),
                };
                if opts.desc {
                    o.reverse()
                } else {
                    o
                }
            });
            items = keyed.into_iter().map(|(_, e)| e).collect();
        }
        let (start, end) = window(opts.limit, total);
        if end >= start {
            items.truncate(end as usize + 1);
            items.drain(..start as usize);
            items
        } else {
            Vec::new()
        }
    };
    if opts.gets.is_empty() {
        return Ok(selected.into_iter().map(Some).collect());
    }
    let mut rows = Vec::with_capacity(selected.len().saturating_mul(opts.gets.len()));
    for item in &selected {
        for p in &opts.gets {
            rows.push(lookup_by_pattern(p, item, lookup));
        }
    }
    Ok(rows)
}

fn sort(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    sort_generic(ctx, argv, false)
}

fn sort_ro(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    sort_generic(ctx, argv, true)
}

fn sort_generic(ctx: &mut Ctx, argv: &[Bytes], readonly: bool) -> Reply {
    let opts = match SortOptions::parse(argv, readonly) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let elements = match load_key(ctx, &argv[1], &opts) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let rows = match sort_elements(&opts, elements, ctx) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match &opts.store {
        None => rows_reply(rows),
        Some(dest) => store(ctx, dest, rows),
    }
}

/// Read the elements of the sorted key (a read for stats), converting a listpack sorted
/// set to a skiplist first, as Redis does before sorting it.
pub fn load_key(ctx: &mut Ctx, key: &[u8], opts: &SortOptions) -> Result<Elements, Reply> {
    let Some(entry) = ctx.lookup_read(key) else {
        return Ok(Elements::empty());
    };
    if let Value::ZSet(z) = &mut entry.value {
        if z.encoding() == "listpack" {
            z.convert_to_skiplist();
        }
    }
    load(opts, Some(&entry.value))
}

/// The reply without STORE: each row a bulk string, a missing GET a null.
pub fn rows_reply(rows: Vec<Option<Vec<u8>>>) -> Reply {
    Reply::Array(
        rows.into_iter()
            .map(|r| r.map_or(Reply::Null, |v| Reply::Bulk(Bytes::from(v))))
            .collect(),
    )
}

/// STORE: the rows of [`sort_elements`] become a new list at `dest` (its TTL dropped; a
/// missing GET stored as an empty string); no rows delete it. Replies the row count.
pub fn store(ctx: &mut Ctx, dest: &[u8], rows: Vec<Option<Vec<u8>>>) -> Reply {
    let n = rows.len();
    if n == 0 {
        if ctx.db().delete(dest) {
            ctx.notify(notify::GENERIC, "del", dest);
        }
        return Reply::Int(0);
    }
    let mut list = List::new(ctx.shard.config.encoding.list_max_listpack_size);
    for r in &rows {
        list.push(r.as_deref().unwrap_or(b""), End::Tail);
    }
    let db = ctx.db();
    db.set(dest, Value::List(Box::new(list)), false);
    // Redis counts one change per stored element; `set` counted one.
    db.dirty += n as u64 - 1;
    ctx.notify(notify::LIST, "sortstore", dest);
    Reply::Int(n as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::{argv, run, shard};
    use crate::config::EncodingLimits;
    use crate::shard::Shard;
    use crate::storage::hash::Hash;
    use crate::storage::set::Set;
    use crate::storage::zset::{Limits, ZSet};
    use crate::storage::StrValue;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn put(s: &mut Shard, key: &str, v: Value) {
        Ctx::new(s, 0).db().set(key.as_bytes(), v, false);
    }
    fn put_list(s: &mut Shard, key: &str, items: &[&str]) {
        let mut l = List::new(-2);
        for i in items {
            l.push(i.as_bytes(), End::Tail);
        }
        put(s, key, Value::List(Box::new(l)));
    }
    fn put_set(s: &mut Shard, key: &str, items: &[&str]) {
        let mut set = Set::for_member(items[0].as_bytes());
        for i in items {
            set.add(i.as_bytes(), 512);
        }
        put(s, key, Value::Set(set));
    }
    fn put_zset(s: &mut Shard, key: &str, pairs: &[(f64, &str)]) {
        let limits = Limits::of(&EncodingLimits::default());
        let mut z = ZSet::new_listpack();
        for (score, m) in pairs {
            z.insert(*score, m.as_bytes(), limits);
        }
        put(s, key, Value::ZSet(Box::new(z)));
    }
    fn put_str(s: &mut Shard, key: &str, v: &str) {
        put(s, key, Value::Str(StrValue::from_set(v.as_bytes())));
    }
    fn put_hash(s: &mut Shard, key: &str, pairs: &[(&str, &str)]) {
        let mut h = Hash::new();
        for (f, v) in pairs {
            h.set(f.as_bytes(), v.as_bytes(), &EncodingLimits::default());
        }
        put(s, key, Value::Hash(h));
    }

    /// The reply as strings, `None` for nulls; panics on anything but an array.
    fn rows(r: Reply) -> Vec<Option<String>> {
        match r {
            Reply::Array(v) => v
                .into_iter()
                .map(|x| match x {
                    Reply::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    Reply::Null => None,
                    other => panic!("unexpected element {other:?}"),
                })
                .collect(),
            other => panic!("not an array: {other:?}"),
        }
    }
    fn strs(r: Reply) -> Vec<String> {
        rows(r).into_iter().map(|x| x.expect("no nulls")).collect()
    }
    fn sort_of(s: &mut Shard, args: &str) -> Vec<String> {
        let a: Vec<&str> = args.split(' ').collect();
        strs(run(s, sort, &a))
    }
    fn list_at(s: &mut Shard, key: &str) -> Option<Vec<String>> {
        match &Ctx::new(s, 0).lookup_read(key.as_bytes())?.value {
            Value::List(l) => Some(
                l.iter()
                    .map(|e| String::from_utf8_lossy(&e.to_vec()).into_owned())
                    .collect(),
            ),
            _ => panic!("not a list"),
        }
    }

    #[test]
    fn numeric_and_alpha_order_with_limit() {
        let mut s = shard();
        put_list(&mut s, "l", &["3", "1", "2", "10", "-5", "2.5", "1e2"]);
        assert_eq!(
            sort_of(&mut s, "sort l"),
            ["-5", "1", "2", "2.5", "3", "10", "1e2"]
        );
        assert_eq!(
            sort_of(&mut s, "sort l desc"),
            ["1e2", "10", "3", "2.5", "2", "1", "-5"]
        );
        assert_eq!(
            sort_of(&mut s, "sort l alpha"),
            ["-5", "1", "10", "1e2", "2", "2.5", "3"]
        );
        assert_eq!(sort_of(&mut s, "sort l limit 2 3"), ["2", "2.5", "3"]);
        assert_eq!(sort_of(&mut s, "sort l limit -1 2"), ["-5", "1"]);
        assert_eq!(sort_of(&mut s, "sort l limit 5 100"), ["10", "1e2"]);
        assert!(sort_of(&mut s, "sort l limit 100 5").is_empty());
        assert!(sort_of(&mut s, "sort l limit 1 0").is_empty());
        assert_eq!(sort_of(&mut s, "sort l limit 2 -5").len(), 5);
        assert_eq!(
            sort_of(&mut s, "sort l limit 2 9223372036854775807"),
            ["2", "2.5", "3", "10", "1e2"]
        );
        assert_eq!(sort_of(&mut s, "sort l desc limit 1 2"), ["10", "3"]);
        assert_eq!(sort_of(&mut s, "sort l ASC DESC asc LIMIT 0 1"), ["-5"]);
    }

    #[test]
    fn equal_scores_fall_back_to_bytes() {
        let mut s = shard();
        put_list(&mut s, "f", &["0.0", "-0", "0", "+0", "", "0x0"]);
        assert_eq!(
            sort_of(&mut s, "sort f"),
            ["", "+0", "-0", "0", "0.0", "0x0"]
        );
        assert_eq!(
            sort_of(&mut s, "sort f desc"),
            ["0x0", "0.0", "0", "-0", "+0", ""]
        );
    }

    #[test]
    fn scores_that_do_not_convert() {
        let mut s = shard();
        for bad in ["abc", "1x", "nan", "1e400", "1e-310", "4 "] {
            put_list(&mut s, "f", &["1", bad]);
            assert_eq!(
                run(&mut s, sort, &["sort", "f"]),
                Reply::err(errors::SORT_SCORE_NOT_DOUBLE),
                "{bad}"
            );
        }
        // C's strtod: leading space, hex and infinities are numbers.
        put_list(&mut s, "f", &["5", "0x10", " 3", "inf", "-inf"]);
        assert_eq!(
            sort_of(&mut s, "sort f"),
            ["-inf", " 3", "5", "0x10", "inf"]
        );
        // A STORE whose scores fail stores nothing.
        put_list(&mut s, "g", &["a"]);
        let r = run(&mut s, sort, &["sort", "g", "store", "dst"]);
        assert!(matches!(r, Reply::Error(_)));
        assert_eq!(list_at(&mut s, "dst"), None);
    }

    #[test]
    fn by_without_star_keeps_native_order() {
        let mut s = shard();
        put_list(&mut s, "l", &["3", "1", "2", "10", "-5"]);
        assert_eq!(
            sort_of(&mut s, "sort l by nosort"),
            ["3", "1", "2", "10", "-5"]
        );
        assert_eq!(
            sort_of(&mut s, "sort l by nosort desc"),
            ["-5", "10", "2", "1", "3"]
        );
        assert_eq!(sort_of(&mut s, "sort l by nosort limit 1 2"), ["1", "2"]);
        assert_eq!(
            sort_of(&mut s, "sort l by nosort desc limit 1 2"),
            ["10", "2"]
        );
        assert!(sort_of(&mut s, "sort l by nosort desc limit 0 0").is_empty());
        put_zset(
            &mut s,
            "z",
            &[(3.0, "a"), (1.0, "b"), (2.0, "c"), (5.0, "d"), (4.0, "e")],
        );
        assert_eq!(
            sort_of(&mut s, "sort z by nosort"),
            ["b", "c", "a", "e", "d"]
        );
        assert_eq!(
            sort_of(&mut s, "sort z by nosort desc limit 1 2"),
            ["e", "a"]
        );
        assert!(sort_of(&mut s, "sort z by nosort limit 10 2").is_empty());
        // A BY without '*' turns sorting off even if a later BY has one.
        put_str(&mut s, "w_3", "-1");
        assert_eq!(
            sort_of(&mut s, "sort l by nosort by w_*"),
            ["3", "1", "2", "10", "-5"]
        );
        assert_eq!(
            sort_of(&mut s, "sort l by w_* by nosort"),
            ["3", "1", "2", "10", "-5"]
        );
        // A set keeps its iteration order (an intset's is ascending) and ignores DESC...
        put_set(&mut s, "si", &["5", "3", "9", "1", "-2"]);
        assert_eq!(
            sort_of(&mut s, "sort si by nosort desc"),
            ["-2", "1", "3", "5", "9"]
        );
        // ...but is sorted ALPHA when stored.
        put_set(&mut s, "ss", &["b", "10", "a", "c"]);
        assert_eq!(
            run(&mut s, sort, &["sort", "ss", "by", "nosort", "store", "d"]),
            Reply::Int(4)
        );
        assert_eq!(list_at(&mut s, "d").unwrap(), ["10", "a", "b", "c"]);
    }

    #[test]
    fn by_patterns_on_strings_and_hash_fields() {
        let mut s = shard();
        put_list(&mut s, "l", &["3", "1", "2", "10"]);
        for (k, v) in [("w_3", "30"), ("w_1", "10"), ("w_2", "20"), ("w_10", "-1")] {
            put_str(&mut s, k, v);
        }
        assert_eq!(sort_of(&mut s, "sort l by w_*"), ["10", "1", "2", "3"]);
        assert_eq!(sort_of(&mut s, "sort l by w_* desc limit 0 2"), ["3", "2"]);
        // Missing keys weigh 0 (ties by the elements' bytes), or sort first under ALPHA.
        assert_eq!(sort_of(&mut s, "sort l by nokey_*"), ["1", "10", "2", "3"]);
        put_hash(&mut s, "h_3", &[("f", "3"), ("g", "c")]);
        put_hash(&mut s, "h_1", &[("f", "1"), ("g", "a")]);
        put_hash(&mut s, "h_10", &[("f", "-10")]);
        assert_eq!(sort_of(&mut s, "sort l by h_*->f"), ["10", "2", "1", "3"]);
        assert_eq!(
            sort_of(&mut s, "sort l by h_*->g alpha"),
            ["2", "10", "1", "3"]
        );
        assert_eq!(
            sort_of(&mut s, "sort l by h_*->g alpha desc"),
            ["3", "1", "2", "10"]
        );
        // A BY value that is not a number is an error, unless ALPHA.
        put_str(&mut s, "t_1", "x");
        assert!(matches!(
            run(&mut s, sort, &["sort", "l", "by", "t_*"]),
            Reply::Error(_)
        ));
        assert_eq!(
            sort_of(&mut s, "sort l by t_* alpha"),
            ["3", "2", "10", "1"]
        );
        // A key of the wrong type reads as missing.
        assert_eq!(sort_of(&mut s, "sort l by h_*"), ["1", "10", "2", "3"]);
    }

    #[test]
    fn get_patterns() {
        let mut s = shard();
        put_list(&mut s, "l", &["2", "1"]);
        put_str(&mut s, "d_1", "one");
        put_hash(&mut s, "h_2", &[("f", "two")]);
        let r = run(
            &mut s,
            sort,
            &[
                "sort", "l", "get", "#", "get", "d_*", "get", "h_*->f", "get", "nostar",
            ],
        );
        let one = |x: &str| Some(x.to_string());
        assert_eq!(
            rows(r),
            [
                one("1"),
                one("one"),
                None,
                None,
                one("2"),
                None,
                one("two"),
                None
            ]
        );
        // `->` with nothing after it is part of the key name.
        put_str(&mut s, "h_1->", "arrow");
        assert_eq!(
            rows(run(&mut s, sort, &["sort", "l", "get", "h_*->"])),
            [one("arrow"), None]
        );
        // Stored, a missing GET is an empty string.
        let r = run(
            &mut s,
            sort,
            &["sort", "l", "get", "d_*", "get", "#", "store", "dst"],
        );
        assert_eq!(r, Reply::Int(4));
        assert_eq!(list_at(&mut s, "dst").unwrap(), ["one", "1", "", "2"]);
    }

    #[test]
    fn store_replaces_deletes_and_counts() {
        let mut s = shard();
        put_list(&mut s, "l", &["b", "a"]);
        put_str(&mut s, "dst", "old");
        Ctx::new(&mut s, 0).db().set_expire(b"dst", u64::MAX / 2);
        let before = Ctx::new(&mut s, 0).db().dirty;
        assert_eq!(
            run(&mut s, sort, &["sort", "l", "alpha", "store", "dst"]),
            Reply::Int(2)
        );
        let mut ctx = Ctx::new(&mut s, 0);
        assert_eq!(ctx.db().dirty - before, 2);
        assert_eq!(ctx.db().expire_of(b"dst"), None);
        assert_eq!(
            ctx.lookup_read(b"dst").unwrap().value.encoding(),
            "quicklist"
        );
        assert_eq!(list_at(&mut s, "dst").unwrap(), ["a", "b"]);
        // An empty result deletes the destination; a missing source sorts as empty.
        assert_eq!(
            run(&mut s, sort, &["sort", "nokey", "store", "dst"]),
            Reply::Int(0)
        );
        assert_eq!(list_at(&mut s, "dst"), None);
        assert_eq!(
            run(
                &mut s,
                sort,
                &["sort", "l", "alpha", "limit", "0", "0", "store", "l"]
            ),
            Reply::Int(0)
        );
        assert_eq!(list_at(&mut s, "l"), None);
        assert_eq!(run(&mut s, sort, &["sort", "nokey"]), Reply::Array(vec![]));
    }

    #[test]
    fn alpha_collates_like_strcoll_unless_storing() {
        let mut s = shard();
        let items: Vec<Vec<u8>> = vec![
            b"b\0z".to_vec(),
            b"b\0a".to_vec(),
            b"b".to_vec(),
            b"a\0c".to_vec(),
            b"a".to_vec(),
        ];
        let mut l = List::new(-2);
        for i in &items {
            l.push(i, End::Tail);
        }
        put(&mut s, "n", Value::List(Box::new(l)));
        // strcoll stops at NUL: equal strings keep their order.
        let r = run(&mut s, sort, &["sort", "n", "alpha"]);
        let got: Vec<Reply> = ["a\0c", "a", "b\0z", "b\0a", "b"]
            .iter()
            .map(|x| Reply::Bulk(Bytes::copy_from_slice(x.as_bytes())))
            .collect();
        assert_eq!(r, Reply::Array(got));
        run(&mut s, sort, &["sort", "n", "alpha", "store", "d"]);
        assert_eq!(
            list_at(&mut s, "d").unwrap(),
            ["a", "a\0c", "b", "b\0a", "b\0z"]
        );
    }

    #[test]
    fn errors_in_argument_order() {
        let mut s = shard();
        put_list(&mut s, "l", &["1"]);
        put_str(&mut s, "str", "x");
        let e = |a: &[&str], s: &mut Shard| run(s, sort, a);
        assert_eq!(e(&["sort", "l", "foo"], &mut s), errors::syntax());
        assert_eq!(e(&["sort", "l", "limit", "1"], &mut s), errors::syntax());
        assert_eq!(e(&["sort", "l", "get"], &mut s), errors::syntax());
        assert_eq!(e(&["sort", "l", "by"], &mut s), errors::syntax());
        assert_eq!(e(&["sort", "l", "store"], &mut s), errors::syntax());
        assert_eq!(
            e(&["sort", "l", "limit", "a", "1"], &mut s),
            errors::not_integer()
        );
        assert_eq!(
            e(&["sort", "l", "limit", "1", "a", "foo"], &mut s),
            errors::not_integer()
        );
        assert_eq!(
            e(&["sort", "l", "foo", "limit", "a", "b"], &mut s),
            errors::syntax()
        );
        // Options are checked before the key's type.
        assert_eq!(e(&["sort", "str", "foo"], &mut s), errors::syntax());
        assert_eq!(e(&["sort", "str"], &mut s), errors::wrongtype());
        put_hash(&mut s, "h", &[("a", "1")]);
        assert_eq!(e(&["sort", "h"], &mut s), errors::wrongtype());
        assert_eq!(
            run(&mut s, sort_ro, &["sort_ro", "l", "store", "d"]),
            errors::syntax()
        );
        assert_eq!(
            strs(run(&mut s, sort_ro, &["sort_ro", "l", "alpha"])),
            ["1"]
        );
    }

    #[test]
    fn sorted_sets_turn_into_skiplists() {
        let mut s = shard();
        put_zset(&mut s, "z", &[(1.0, "x"), (2.0, "y")]);
        let enc = |s: &mut Shard| Ctx::new(s, 0).lookup_read(b"z").unwrap().value.encoding();
        assert_eq!(enc(&mut s), "listpack");
        assert_eq!(
            strs(run(&mut s, sort_ro, &["sort_ro", "z", "alpha", "desc"])),
            ["y", "x"]
        );
        assert_eq!(enc(&mut s), "skiplist");
        put_zset(&mut s, "z", &[(1.0, "x"), (2.0, "y")]);
        assert!(matches!(run(&mut s, sort, &["sort", "z"]), Reply::Error(_)));
        assert_eq!(enc(&mut s), "skiplist");
        // A syntax error comes first and converts nothing.
        put_zset(&mut s, "z", &[(1.0, "x")]);
        run(&mut s, sort, &["sort", "z", "foo"]);
        assert_eq!(enc(&mut s), "listpack");
    }

    #[test]
    fn key_finders() {
        let keys = |a: &str| sort_keys(&argv(&a.split(' ').collect::<Vec<_>>()));
        assert_eq!(keys("sort a"), [1]);
        assert_eq!(keys("sort a store b store c"), [1, 5]);
        assert_eq!(keys("sort a store limit 1 2 store x"), [1, 7]);
        assert_eq!(keys("sort a by store get store limit store 1"), [1]);
        assert_eq!(keys("sort a store"), [1]);
        assert_eq!(keys("sort a STORE b"), [1, 3]);
        assert_eq!(sort_ro_keys(&argv(&["sort_ro", "a", "store", "b"])), [1]);
    }

    #[test]
    fn patterns_resolve_as_lookup_key_by_pattern() {
        use PatternRef::*;
        assert_eq!(resolve_pattern(b"#", b"e"), Element);
        assert_eq!(resolve_pattern(b"#\0x", b"e"), Element);
        assert_eq!(resolve_pattern(b"#x", b"e"), Nothing);
        assert_eq!(resolve_pattern(b"nostar", b"e"), Nothing);
        assert_eq!(resolve_pattern(b"k_\0*", b"e"), Nothing);
        assert_eq!(resolve_pattern(b"w_*", b"e"), Key(b"w_e".to_vec()));
        assert_eq!(resolve_pattern(b"a*b*c", b"e"), Key(b"aeb*c".to_vec()));
        assert_eq!(
            resolve_pattern(b"h_*->f", b"e"),
            Field(b"h_e".to_vec(), b"f")
        );
        assert_eq!(
            resolve_pattern(b"*->f->g", b"e"),
            Field(b"e".to_vec(), b"f->g")
        );
        assert_eq!(resolve_pattern(b"h_*->", b"e"), Key(b"h_e->".to_vec()));
        assert_eq!(resolve_pattern(b"h_*->\0", b"e"), Key(b"h_e->\0".to_vec()));
        assert_eq!(
            resolve_pattern(b"h_*->f\0", b"e"),
            Field(b"h_e".to_vec(), b"f\0")
        );
        assert_eq!(resolve_pattern(b"a->b*", b"e"), Key(b"a->be".to_vec()));
        assert_eq!(resolve_pattern(b"h*-\0>f", b"1"), Key(b"h1-\0>f".to_vec()));
    }

    /// The core runs over any lookup: here keys "fetched from elsewhere".
    struct Fetched(HashMap<Vec<u8>, Vec<u8>>);
    impl SortLookup for Fetched {
        fn string(&mut self, key: &[u8]) -> Option<Vec<u8>> {
            self.0.get(key).cloned()
        }
        fn hash_field(&mut self, _key: &[u8], _field: &[u8]) -> Option<Vec<u8>> {
            None
        }
    }

    #[test]
    fn core_takes_any_lookup() {
        let opts = SortOptions::parse(
            &argv(&["sort", "k", "by", "w_*", "get", "d_*", "desc"]),
            false,
        )
        .unwrap();
        let els = Elements {
            kind: SourceKind::Set,
            total: 3,
            items: vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()],
            windowed: false,
        };
        let mut f = Fetched(HashMap::from([
            (b"w_a".to_vec(), b"2".to_vec()),
            (b"w_b".to_vec(), b"3".to_vec()),
            (b"d_b".to_vec(), b"B".to_vec()),
        ]));
        let out = sort_elements(&opts, els, &mut f).unwrap();
        assert_eq!(out, [Some(b"B".to_vec()), None, None]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Numeric SORT of integers with LIMIT: the model's stable sort by (value,
        /// decimal bytes), windowed as Redis windows.
        #[test]
        fn integers_sort_like_the_model(
            v in prop::collection::vec(-300i64..300, 0..40),
            desc in any::<bool>(),
            limit in prop::option::of((-3i64..45, -2i64..45)),
        ) {
            let mut s = shard();
            let items: Vec<String> = v.iter().map(|i| i.to_string()).collect();
            if !items.is_empty() {
                let refs: Vec<&str> = items.iter().map(|x| x.as_str()).collect();
                put_list(&mut s, "l", &refs);
            }
            let mut model = items.clone();
            model.sort_by(|a, b| {
                let (x, y) = (a.parse::<i64>().unwrap(), b.parse::<i64>().unwrap());
                x.cmp(&y).then(a.as_bytes().cmp(b.as_bytes()))
            });
            if desc {
                model.reverse();
            }
            let mut cmd = vec!["sort".to_string(), "l".to_string()];
            if desc {
                cmd.push("desc".into());
            }
            if let Some((o, c)) = limit {
                cmd.extend(["limit".to_string(), o.to_string(), c.to_string()]);
                let start = o.max(0) as usize;
                let end = if c < 0 { model.len() } else { (start + c as usize).min(model.len()) };
                model = if start < model.len() { model[start..end].to_vec() } else { vec![] };
            }
            let refs: Vec<&str> = cmd.iter().map(|x| x.as_str()).collect();
            prop_assert_eq!(strs(run(&mut s, sort, &refs)), model);
        }
    }
}
