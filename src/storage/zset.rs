//! The sorted set value: members with scores, in two encodings, as Redis 7.0 has them.
//!
//! - `Listpack`: member, score, member, score... in one listpack, sorted by score then
//!   member bytes. A score is stored as Redis's `zzlInsertAt` stores it: an integer
//!   entry when the double is integral within ±2^62 (so `-0` reads back as `0`), else
//!   its `%.17g` text (`inf`, `-inf`). Every operation is a linear walk, which is what
//!   makes it fast for the small sets it is used for.
//! - `SkipList`: a [`SkipList`] ordered by (score, member) for ranks and ranges, plus an
//!   index of its nodes by member for O(1) lookups (see [`SkipListZSet`]).
//!
//! The one idea to hold: the encoding is part of the observable state (OBJECT ENCODING,
//! ZSCAN's order and score text), so conversions happen exactly where 7.0 does them: a
//! listpack becomes a skiplist when an insert would pass `zset-max-listpack-entries`
//! or add a member longer than `zset-max-listpack-value` (or the listpack would pass
//! 1 GiB); a skiplist goes back to a listpack only where a command asks for it
//! ([`ZSet::convert_to_listpack_if_needed`], after ZUNIONSTORE and friends). Range
//! lookups follow Redis's own walk for each encoding, so even lex ranges over members
//! of different scores (an undefined case) answer as Redis's listpack code does.

use super::listpack::{Listpack, LpEntry, Pos, Where};
use super::skiplist::{NodeId, SkipList};
use super::Dict;
use crate::config::EncodingLimits;
use std::cmp::Ordering;

/// The thresholds a sorted set converts at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `zset-max-listpack-entries`
    pub entries: usize,
    /// `zset-max-listpack-value`
    pub value: usize,
}

impl Limits {
    pub fn of(e: &EncodingLimits) -> Limits {
        Limits {
            entries: e.zset_max_listpack_entries,
            value: e.zset_max_listpack_value,
        }
    }
}

/// A score interval with inclusive or exclusive ends (`zrangespec`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub minex: bool,
    pub maxex: bool,
}

impl ScoreRange {
    /// `[min, max]`
    pub fn inclusive(min: f64, max: f64) -> ScoreRange {
        ScoreRange {
            min,
            max,
            minex: false,
            maxex: false,
        }
    }
    pub fn gte_min(&self, v: f64) -> bool {
        if self.minex {
            v > self.min
        } else {
            v >= self.min
        }
    }
    pub fn lte_max(&self, v: f64) -> bool {
        if self.maxex {
            v < self.max
        } else {
            v <= self.max
        }
    }
    /// True for ranges that can hold nothing.
    pub fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }
    /// Parse ZRANGEBYSCORE-style bounds as `zslParseRange`: `(` makes a bound
    /// exclusive; the rest is read by C's `strtod` up to the string's first NUL and must
    /// be consumed entirely (so `""` is 0 and `1e999` is `inf`); NaN is refused.
    pub fn parse(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
        let (min, minex) = parse_score_bound(min)?;
        let (max, maxex) = parse_score_bound(max)?;
        Some(ScoreRange {
            min,
            max,
            minex,
            maxex,
        })
    }
}

fn parse_score_bound(b: &[u8]) -> Option<(f64, bool)> {
    let b = &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())];
    let (ex, s) = match b.first() {
        Some(b'(') => (true, &b[1..]),
        _ => (false, b),
    };
    let (v, used, _) = strtod(s);
    (used == s.len() && !v.is_nan()).then_some((v, ex))
}

/// One end of a lexicographic range: `-`, `+` or a string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexItem {
    Min,
    Max,
    Str(Vec<u8>),
}

/// A ZRANGEBYLEX interval (`zlexrangespec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexRange {
    pub min: LexItem,
    pub minex: bool,
    pub max: LexItem,
    pub maxex: bool,
}

/// `sdscmplex`: `-` below every string, `+` above.
fn cmp_lex(a: &LexItem, b: &LexItem) -> Ordering {
    match (a, b) {
        (LexItem::Min, LexItem::Min) | (LexItem::Max, LexItem::Max) => Ordering::Equal,
        (LexItem::Min, _) | (_, LexItem::Max) => Ordering::Less,
        (LexItem::Max, _) | (_, LexItem::Min) => Ordering::Greater,
        (LexItem::Str(x), LexItem::Str(y)) => x.cmp(y),
    }
}

fn cmp_value(v: &[u8], item: &LexItem) -> Ordering {
    match item {
        LexItem::Min => Ordering::Greater,
        LexItem::Max => Ordering::Less,
        LexItem::Str(s) => v.cmp(s),
    }
}

impl LexRange {
    /// Parse `[a`, `(a`, `-`, `+` bounds as `zslParseLexRange`.
    pub fn parse(min: &[u8], max: &[u8]) -> Option<LexRange> {
        let (min, minex) = parse_lex_item(min)?;
        let (max, maxex) = parse_lex_item(max)?;
        Some(LexRange {
            min,
            minex,
            max,
            maxex,
        })
    }
    pub fn gte_min(&self, v: &[u8]) -> bool {
        let c = cmp_value(v, &self.min);
        if self.minex {
            c == Ordering::Greater
        } else {
            c != Ordering::Less
        }
    }
    pub fn lte_max(&self, v: &[u8]) -> bool {
        let c = cmp_value(v, &self.max);
        if self.maxex {
            c == Ordering::Less
        } else {
            c != Ordering::Greater
        }
    }
    pub fn is_empty(&self) -> bool {
        let c = cmp_lex(&self.min, &self.max);
        c == Ordering::Greater || (c == Ordering::Equal && (self.minex || self.maxex))
    }
}

fn parse_lex_item(b: &[u8]) -> Option<(LexItem, bool)> {
    // As C reads it: `+` and `-` must be followed by the string's end (or a NUL).
    let alone = b.len() == 1 || b.get(1) == Some(&0);
    match b.first() {
        Some(b'+') if alone => Some((LexItem::Max, true)),
        Some(b'-') if alone => Some((LexItem::Min, true)),
        Some(b'(') => Some((LexItem::Str(b[1..].to_vec()), true)),
        Some(b'[') => Some((LexItem::Str(b[1..].to_vec()), false)),
        _ => None,
    }
}

/// C's `strtod` over `s`: the value, how many bytes it used (0 when nothing parses)
/// and whether it set `ERANGE` (overflow to infinity, or underflow to zero). Accepts
/// what glibc accepts: leading white space, a sign, decimal with exponent, `0x` hex
/// floats with a `p` exponent, `inf`, `infinity` and `nan`.
pub fn strtod(s: &[u8]) -> (f64, usize, bool) {
    let mut i = crate::protocol::parse::c_skip_space(s, 0);
    let neg;
    (i, neg) = crate::protocol::parse::c_sign(s, i);
    let sign = |v: f64| if neg { -v } else { v };
    let rest = &s[i..];
    let starts = |w: &[u8]| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w);
    if starts(b"infinity") {
        return (sign(f64::INFINITY), i + 8, false);
    }
    if starts(b"inf") {
        return (sign(f64::INFINITY), i + 3, false);
    }
    if starts(b"nan") {
        let mut j = i + 3;
        if s.get(j) == Some(&b'(') {
            let mut k = j + 1;
            while k < s.len() && (s[k].is_ascii_alphanumeric() || s[k] == b'_') {
                k += 1;
            }
            if s.get(k) == Some(&b')') {
                j = k + 1;
            }
        }
        return (f64::NAN, j, false);
    }
    if rest.len() >= 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        if let Some((v, used, erange)) = parse_hex(&rest[2..]) {
            return (sign(v), i + 2 + used, erange);
        }
        // "0x" with no hex digits: just the "0".
        return (sign(0.0), i + 1, false);
    }
    // Decimal: digits [. digits] [e [sign] digits], at least one mantissa digit.
    let mut j = i;
    let mut digits = 0;
    let mut nonzero = false;
    while j < s.len() && s[j].is_ascii_digit() {
        nonzero |= s[j] != b'0';
        digits += 1;
        j += 1;
    }
    if j < s.len() && s[j] == b'.' {
        j += 1;
        while j < s.len() && s[j].is_ascii_digit() {
            nonzero |= s[j] != b'0';
            digits += 1;
            j += 1;
        }
    }
    if digits == 0 {
        return (0.0, 0, false);
    }
    if j < s.len() && (s[j] | 0x20) == b'e' {
        let mut k = j + 1;
        if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
            k += 1;
        }
        if k < s.len() && s[k].is_ascii_digit() {
            while k < s.len() && s[k].is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    let text = std::str::from_utf8(&s[i..j]).unwrap_or("0");
    let v: f64 = text.parse().unwrap_or(0.0);
    let erange = v.is_infinite() || (v == 0.0 && nonzero);
    (sign(v), j, erange)
}

/// A hex float's body after `0x`: `[hex][.hex][p[sign]digits]`, at least one hex
/// digit. Returns the magnitude, the bytes used and ERANGE.
fn parse_hex(s: &[u8]) -> Option<(f64, usize, bool)> {
    let mut i = 0;
    let mut mant: u64 = 0;
    let mut exp2: i64 = 0;
    let mut sticky = false;
    let mut seen = false;
    let mut frac = false;
    while i < s.len() {
        let c = s[i];
        if c == b'.' && !frac {
            frac = true;
        } else if let Some(d) = (c as char).to_digit(16) {
            seen = true;
            if mant >> 60 == 0 {
                mant = mant << 4 | d as u64;
                if frac {
                    exp2 -= 4;
                }
            } else {
                sticky |= d != 0;
                if !frac {
                    exp2 += 4;
                }
            }
        } else {
            break;
        }
        i += 1;
    }
    if !seen {
        return None;
    }
    if i < s.len() && (s[i] | 0x20) == b'p' {
        let mut k = i + 1;
        let eneg;
        (k, eneg) = crate::protocol::parse::c_sign(s, k);
        if k < s.len() && s[k].is_ascii_digit() {
            let mut e: i64 = 0;
            while k < s.len() && s[k].is_ascii_digit() {
                e = (e * 10 + (s[k] - b'0') as i64).min(1 << 40);
                k += 1;
            }
            exp2 += if eneg { -e } else { e };
            i = k;
        }
    }
    if mant == 0 {
        return Some((0.0, i, false));
    }
    let v = compose(mant, sticky, exp2);
    Some((v, i, v.is_infinite() || v == 0.0))
}

/// `mant * 2^exp2` rounded to nearest-even as a double (subnormals included).
fn compose(mant: u64, sticky: bool, exp2: i64) -> f64 {
    let lz = mant.leading_zeros() as i64;
    let m = mant << lz;
    // value = m * 2^(e - 63) with m in [2^63, 2^64): unbiased exponent e.
    let e = exp2 - lz + 63;
    if e > 1023 {
        return f64::INFINITY;
    }
    let shift = if e >= -1022 { 11 } else { 11 + (-1022 - e) };
    if shift > 64 {
        return 0.0;
    }
    let (q, rem, half) = if shift == 64 {
        (0u64, m, 1u64 << 63)
    } else {
        (m >> shift, m & ((1u64 << shift) - 1), 1u64 << (shift - 1))
    };
    let up = rem > half || (rem == half && (sticky || q & 1 == 1));
    let q = q + up as u64;
    if e >= -1022 {
        let (q, e) = if q >> 53 != 0 {
            (q >> 1, e + 1)
        } else {
            (q, e)
        };
        if e > 1023 {
            return f64::INFINITY;
        }
        f64::from_bits(((e + 1023) as u64) << 52 | (q & ((1u64 << 52) - 1)))
    } else {
        // Subnormal: the exponent field is 0, or 1 if rounding reached 2^52.
        f64::from_bits(q)
    }
}

/// `double2ll`: the integer a listpack stores for an integral score within ±2^62.
pub fn score_as_int(d: f64) -> Option<i64> {
    let lim = (i64::MAX / 2) as f64;
    if !(-lim..=lim).contains(&d) {
        return None;
    }
    let ll = d as i64;
    (ll as f64 == d).then_some(ll)
}

/// The text a listpack stores for a non-integral score (`d2string`).
fn score_text(d: f64) -> String {
    if d.is_nan() {
        "nan".into()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.into()
    } else if d == 0.0 {
        if d.is_sign_negative() { "-0" } else { "0" }.into()
    } else if d > -4503599627370495.0 && d < 4503599627370496.0 && d == (d as i64) as f64 {
        (d as i64).to_string()
    } else {
        crate::protocol::reply::format_g17(d)
    }
}

/// The bytes of a listpack entry as a string, without allocating.
fn with_bytes<R>(e: LpEntry<'_>, f: impl FnOnce(&[u8]) -> R) -> R {
    match e {
        LpEntry::Str(s) => f(s),
        LpEntry::Int(i) => f(itoa::Buffer::new().format(i).as_bytes()),
    }
}

/// Flags of [`ZSet::add`] (ZADD's options).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddFlags {
    pub incr: bool,
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
}

/// What [`ZSet::add`] did (`zsetAdd`'s out flags).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Added {
    /// A new member, with this score.
    Added(f64),
    /// An existing member's score changed to this.
    Updated(f64),
    /// An existing member kept its score (same score, or a zero increment).
    Same(f64),
    /// Nothing done because of NX, XX, GT or LT.
    Skipped,
    /// The score (or the incremented one) is NaN; nothing changed.
    NaN,
}

/// The skiplist encoding: the list for order, an index of its nodes for lookups.
///
/// The index holds node ids, not members: a member's bytes live once, in its list
/// node, and the index finds a node by the fingerprint of its member and then compares
/// the bytes in the list (Redis shares one sds between its dict and skiplist for the
/// same reason). 16 bytes per member (plus the bucket) where a member -> score dict
/// took 48. Node ids change when the list rebuilds its arenas after many removals;
/// the index is then rebuilt too (`reindex`, O(n), amortised as the rebuild is).
#[derive(Default)]
pub struct SkipListZSet {
    list: SkipList,
    index: Dict<Indexed, ()>,
}

/// A node in the member index: its id and its member's fingerprint, which is all the
/// index hashes (so a lookup by member bytes and a removal by id find the same bucket).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Indexed {
    id: NodeId,
    fp: u32,
}

impl std::hash::Hash for Indexed {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        Fingerprint(self.fp).hash(h)
    }
}

/// What a member lookup hashes: the same as its node's [`Indexed`] entry.
#[derive(Hash)]
struct Fingerprint(u32);

/// A member's fingerprint, from a hash seeded once per process (so nobody can choose
/// members that all share one chain).
fn fingerprint(member: &[u8]) -> u32 {
    use std::hash::BuildHasher;
    static SEED: std::sync::OnceLock<foldhash::fast::FixedState> = std::sync::OnceLock::new();
    SEED.get_or_init(|| foldhash::fast::FixedState::with_seed(rand::random()))
        .hash_one(member) as u32
}

impl Clone for SkipListZSet {
    fn clone(&self) -> Self {
        let mut z = SkipListZSet {
            list: self.list.clone(),
            index: Dict::new(),
        };
        z.reindex();
        z
    }
}

impl std::fmt::Debug for SkipListZSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.list.fmt(f)
    }
}

impl PartialEq for SkipListZSet {
    fn eq(&self, o: &Self) -> bool {
        self.list == o.list
    }
}

impl SkipListZSet {
    /// The members in order.
    pub fn list(&self) -> &SkipList {
        &self.list
    }
    /// The node of `member`.
    fn find(&self, member: &[u8]) -> Option<NodeId> {
        let fp = fingerprint(member);
        let list = &self.list;
        let eq = |k: &Indexed| k.fp == fp && list.member(k.id) == member;
        self.index.find_key_by(&Fingerprint(fp), eq).map(|k| k.id)
    }
    pub fn contains(&self, member: &[u8]) -> bool {
        self.find(member).is_some()
    }
    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.find(member).map(|id| self.list.score(id))
    }
    /// Add a member that is not in the set yet.
    pub fn insert_new(&mut self, score: f64, member: &[u8]) {
        let id = self.list.insert(score, member);
        self.index.insert(
            Indexed {
                id,
                fp: fingerprint(member),
            },
            (),
        );
    }
    /// Give `member` (node `id`, score `old`) the score `new`.
    fn update(&mut self, id: NodeId, member: &[u8], old: f64, new: f64) {
        let moved = self.list.update_score(old, member, new);
        if moved != id {
            let fp = fingerprint(member);
            self.index.remove(&Indexed { id, fp });
            self.index.insert(Indexed { id: moved, fp }, ());
        }
    }
    fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let id = self.find(member)?;
        let score = self.list.score(id);
        let generation = self.list.generation();
        self.index.remove(&Indexed {
            id,
            fp: fingerprint(member),
        });
        self.list.remove(score, member);
        self.after_removals(generation);
        Some(score)
    }
    /// Remove node `id` (just taken out of the list) from the index.
    fn unindex(index: &mut Dict<Indexed, ()>, id: NodeId, member: &[u8]) {
        index.remove(&Indexed {
            id,
            fp: fingerprint(member),
        });
    }
    /// After removals that began at list generation `generation`: rebuild the index if
    /// the list renumbered its nodes, else let it shrink.
    fn after_removals(&mut self, generation: u32) {
        if self.list.generation() != generation {
            self.reindex();
        } else {
            self.index.shrink_if_needed();
        }
    }
    fn reindex(&mut self) {
        let mut index = Dict::new();
        for id in self.list.iter() {
            let fp = fingerprint(self.list.member(id));
            index.insert(Indexed { id, fp }, ());
        }
        self.index = index;
    }
    /// One step of ZSCAN (the index's cursor, as Redis scans its dict): calls `f` with
    /// each member and score; the next cursor.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], f64)) -> u64 {
        self.index.scan(cursor, |k, _| {
            f(self.list.member(k.id), self.list.score(k.id))
        })
    }
    /// Heap bytes of the index (its buckets and one 16-byte node per member).
    fn index_bytes(&self) -> usize {
        self.index.buckets() * 8 + self.index.len() * 16
    }
    fn first_in_range(&self, r: &ScoreRange) -> Option<NodeId> {
        if !self.in_range(r) {
            return None;
        }
        let id = self.list.first_not_before(|s, _| !r.gte_min(s))?;
        r.lte_max(self.list.score(id)).then_some(id)
    }
    fn last_in_range(&self, r: &ScoreRange) -> Option<NodeId> {
        if !self.in_range(r) {
            return None;
        }
        let id = self.list.last_within(|s, _| r.lte_max(s))?;
        r.gte_min(self.list.score(id)).then_some(id)
    }
    fn in_range(&self, r: &ScoreRange) -> bool {
        let (Some(first), Some(last)) = (self.list.first(), self.list.last()) else {
            return false;
        };
        !r.is_empty() && r.gte_min(self.list.score(last)) && r.lte_max(self.list.score(first))
    }
    fn first_in_lex(&self, r: &LexRange) -> Option<NodeId> {
        if !self.in_lex(r) {
            return None;
        }
        let id = self.list.first_not_before(|_, m| !r.gte_min(m))?;
        r.lte_max(self.list.member(id)).then_some(id)
    }
    fn last_in_lex(&self, r: &LexRange) -> Option<NodeId> {
        if !self.in_lex(r) {
            return None;
        }
        let id = self.list.last_within(|_, m| r.lte_max(m))?;
        r.gte_min(self.list.member(id)).then_some(id)
    }
    fn in_lex(&self, r: &LexRange) -> bool {
        let (Some(first), Some(last)) = (self.list.first(), self.list.last()) else {
            return false;
        };
        !r.is_empty() && r.gte_min(self.list.member(last)) && r.lte_max(self.list.member(first))
    }
    fn rank_of(&self, id: NodeId) -> usize {
        self.list.rank(self.list.score(id), self.list.member(id))
    }
}

/// A sorted set.
#[derive(Clone, Debug, PartialEq)]
pub enum ZSet {
    Listpack(Listpack),
    /// Boxed: the skiplist's header is large and most sorted sets are small.
    SkipList(Box<SkipListZSet>),
}

/// Where an iteration stands: a member's listpack position or a skiplist node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cursor {
    Lp(Pos),
    Node(NodeId),
}

/// Members with their scores, in either direction (see [`ZSet::iter`]).
pub struct Iter<'a> {
    zset: &'a ZSet,
    at: Option<Cursor>,
    reverse: bool,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (LpEntry<'a>, f64);
    fn next(&mut self) -> Option<Self::Item> {
        let at = self.at?;
        match (self.zset, at) {
            (ZSet::Listpack(lp), Cursor::Lp(e)) => {
                let s = lp.next(e)?;
                self.at = if self.reverse {
                    lp.prev(e).and_then(|p| lp.prev(p)).map(Cursor::Lp)
                } else {
                    lp.next(s).map(Cursor::Lp)
                };
                Some((lp.get(e), lp_score(lp, s)))
            }
            (ZSet::SkipList(z), Cursor::Node(id)) => {
                let next = if self.reverse {
                    z.list.prev(id)
                } else {
                    z.list.next(id)
                };
                self.at = next.map(Cursor::Node);
                Some((LpEntry::Str(z.list.member(id)), z.list.score(id)))
            }
            _ => None,
        }
    }
}

/// The score stored at `s` (`zzlGetScore`): an integer entry, or text read by
/// `strtod` (at most 127 bytes of it).
fn lp_score(lp: &Listpack, s: Pos) -> f64 {
    match lp.get(s) {
        LpEntry::Int(i) => i as f64,
        LpEntry::Str(t) => strtod(&t[..t.len().min(127)]).0,
    }
}

/// Listpack helpers, named after Redis's `zzl*` functions.
mod zzl {
    use super::*;

    /// The member entry of the pair whose score entry is `s`'s predecessor pair.
    pub fn prev_pair(lp: &Listpack, e: Pos) -> Option<Pos> {
        lp.prev(e).and_then(|s| lp.prev(s))
    }
    pub fn next_pair(lp: &Listpack, e: Pos) -> Option<Pos> {
        lp.next(e).and_then(|s| lp.next(s))
    }
    pub fn score_of(lp: &Listpack, e: Pos) -> f64 {
        lp.next(e).map(|s| lp_score(lp, s)).unwrap_or(0.0)
    }
    /// `zzlFind`: the member's entry and score.
    pub fn find(lp: &Listpack, member: &[u8]) -> Option<(Pos, f64)> {
        let e = lp.find(lp.first()?, member, 1)?;
        Some((e, score_of(lp, e)))
    }
    /// `zzlCompareElements`: the entry's bytes against `m`.
    pub fn cmp(lp: &Listpack, e: Pos, m: &[u8]) -> Ordering {
        with_bytes(lp.get(e), |b| b.cmp(m))
    }
    /// `zzlInsertAt`: the pair before the member at `at`, or at the tail.
    pub fn insert_at(lp: &mut Listpack, at: Option<Pos>, member: &[u8], score: f64) {
        let text;
        let s: &[u8] = match score_as_int(score) {
            Some(i) => {
                text = i.to_string();
                text.as_bytes()
            }
            None => {
                text = score_text(score);
                text.as_bytes()
            }
        };
        match at {
            None => {
                lp.push_back(member);
                lp.push_back(s);
            }
            Some(p) => {
                let m = lp.insert(p, member, Where::Before);
                lp.insert(m, s, Where::After);
            }
        }
    }
    /// `zzlInsert`: keep the order by score, then member.
    pub fn insert(lp: &mut Listpack, member: &[u8], score: f64) {
        let mut e = lp.first();
        while let Some(p) = e {
            let s = score_of(lp, p);
            if s > score || (s == score && cmp(lp, p, member) == Ordering::Greater) {
                break;
            }
            e = next_pair(lp, p);
        }
        insert_at(lp, e, member, score);
    }
    /// `zzlDelete`: the pair at `e`; returns the next pair's member entry.
    pub fn delete(lp: &mut Listpack, e: Pos) -> Option<Pos> {
        lp.delete(e)?;
        lp.delete(e)
    }
    fn in_range(lp: &Listpack, r: &ScoreRange) -> bool {
        if r.is_empty() {
            return false;
        }
        let (Some(last), Some(first)) = (lp.last(), lp.first().and_then(|e| lp.next(e))) else {
            return false;
        };
        r.gte_min(lp_score(lp, last)) && r.lte_max(lp_score(lp, first))
    }
    pub fn first_in_range(lp: &Listpack, r: &ScoreRange) -> Option<Pos> {
        if !in_range(lp, r) {
            return None;
        }
        let mut e = lp.first();
        while let Some(p) = e {
            let s = score_of(lp, p);
            if r.gte_min(s) {
                return r.lte_max(s).then_some(p);
            }
            e = next_pair(lp, p);
        }
        None
    }
    pub fn last_in_range(lp: &Listpack, r: &ScoreRange) -> Option<Pos> {
        if !in_range(lp, r) {
            return None;
        }
        let mut e = lp.seek(-2);
        while let Some(p) = e {
            let s = score_of(lp, p);
            if r.lte_max(s) {
                return r.gte_min(s).then_some(p);
            }
            e = prev_pair(lp, p);
        }
        None
    }
    pub fn gte_min(lp: &Listpack, e: Pos, r: &LexRange) -> bool {
        with_bytes(lp.get(e), |b| r.gte_min(b))
    }
    pub fn lte_max(lp: &Listpack, e: Pos, r: &LexRange) -> bool {
        with_bytes(lp.get(e), |b| r.lte_max(b))
    }
    fn in_lex(lp: &Listpack, r: &LexRange) -> bool {
        if r.is_empty() {
            return false;
        }
        let (Some(last), Some(first)) = (lp.seek(-2), lp.first()) else {
            return false;
        };
        gte_min(lp, last, r) && lte_max(lp, first, r)
    }
    pub fn first_in_lex(lp: &Listpack, r: &LexRange) -> Option<Pos> {
        if !in_lex(lp, r) {
            return None;
        }
        let mut e = lp.first();
        while let Some(p) = e {
            if gte_min(lp, p, r) {
                return lte_max(lp, p, r).then_some(p);
            }
            e = next_pair(lp, p);
        }
        None
    }
    pub fn last_in_lex(lp: &Listpack, r: &LexRange) -> Option<Pos> {
        if !in_lex(lp, r) {
            return None;
        }
        let mut e = lp.seek(-2);
        while let Some(p) = e {
            if lte_max(lp, p, r) {
                return gte_min(lp, p, r).then_some(p);
            }
            e = prev_pair(lp, p);
        }
        None
    }
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::Listpack(Listpack::new())
    }
}

impl ZSet {
    /// An empty listpack-encoded set.
    pub fn new_listpack() -> ZSet {
        ZSet::Listpack(Listpack::new())
    }
    /// An empty skiplist-encoded set.
    pub fn new_skiplist() -> ZSet {
        ZSet::SkipList(Box::default())
    }
    /// The empty set ZADD creates for a new key whose first member is `first_len`
    /// bytes long: a skiplist when listpacks are off or that member is too long.
    pub fn new_for(limits: Limits, first_len: usize) -> ZSet {
        if limits.entries == 0 || limits.value < first_len {
            Self::new_skiplist()
        } else {
            Self::new_listpack()
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            ZSet::Listpack(_) => "listpack",
            ZSet::SkipList(_) => "skiplist",
        }
    }
    pub fn len(&self) -> usize {
        match self {
            ZSet::Listpack(lp) => lp.len() / 2,
            ZSet::SkipList(z) => z.list.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Approximate heap bytes owned (for INFO memory and MEMORY USAGE).
    pub fn heap_size(&self) -> usize {
        match self {
            ZSet::Listpack(lp) => lp.heap_size(),
            ZSet::SkipList(z) => {
                std::mem::size_of::<SkipListZSet>() + z.list.heap_size() + z.index_bytes()
            }
        }
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Listpack(lp) => zzl::find(lp, member).map(|(_, s)| s),
            ZSet::SkipList(z) => z.score(member),
        }
    }

    /// Add `member` or update its score, as ZADD with `flags` (`zsetAdd`); converts a
    /// listpack to a skiplist first when the new member would not fit.
    pub fn add(&mut self, score: f64, member: &[u8], flags: AddFlags, limits: Limits) -> Added {
        if score.is_nan() {
            return Added::NaN;
        }
        // Shared rules for an existing member with score `cur`.
        let existing = |cur: f64| -> Result<f64, Added> {
            if flags.nx {
                return Err(Added::Skipped);
            }
            let new = if flags.incr { score + cur } else { score };
            if new.is_nan() {
                return Err(Added::NaN);
            }
            if (flags.lt && new >= cur) || (flags.gt && new <= cur) {
                return Err(Added::Skipped);
            }
            Ok(new)
        };
        if let ZSet::Listpack(lp) = self {
            match zzl::find(lp, member) {
                Some((e, cur)) => {
                    let new = match existing(cur) {
                        Ok(n) => n,
                        Err(a) => return a,
                    };
                    if new == cur {
                        return Added::Same(new);
                    }
                    zzl::delete(lp, e);
                    zzl::insert(lp, member, new);
                    return Added::Updated(new);
                }
                None if flags.xx => return Added::Skipped,
                None => {
                    if lp.len() / 2 + 1 > limits.entries
                        || member.len() > limits.value
                        || !lp.safe_to_add(member.len())
                    {
                        self.convert_to_skiplist();
                    } else {
                        zzl::insert(lp, member, score);
                        return Added::Added(score);
                    }
                }
            }
        }
        let ZSet::SkipList(z) = self else {
            unreachable!("converted above")
        };
        match z.find(member) {
            Some(id) => {
                let cur = z.list.score(id);
                let new = match existing(cur) {
                    Ok(n) => n,
                    Err(a) => return a,
                };
                if new == cur {
                    return Added::Same(new);
                }
                z.update(id, member, cur, new);
                Added::Updated(new)
            }
            None if flags.xx => Added::Skipped,
            None => {
                z.insert_new(score, member);
                Added::Added(score)
            }
        }
    }

    /// Set `member`'s score (adding it if new), converting as ZADD does.
    pub fn insert(&mut self, score: f64, member: &[u8], limits: Limits) {
        self.add(score, member, AddFlags::default(), limits);
    }

    /// Remove `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            ZSet::Listpack(lp) => match zzl::find(lp, member) {
                Some((e, _)) => {
                    zzl::delete(lp, e);
                    true
                }
                None => false,
            },
            ZSet::SkipList(z) => z.remove(member).is_some(),
        }
    }

    /// 0-based rank of `member`, from the lowest score (or the highest if `reverse`).
    pub fn rank(&self, member: &[u8], reverse: bool) -> Option<usize> {
        let len = self.len();
        let rank = match self {
            ZSet::Listpack(lp) => {
                let mut e = lp.first();
                let mut i = 1;
                loop {
                    let p = e?;
                    if lp.get(p).eq_bytes(member) {
                        break i;
                    }
                    i += 1;
                    e = zzl::next_pair(lp, p);
                }
            }
            ZSet::SkipList(z) => {
                let score = z.score(member)?;
                match z.list.rank(score, member) {
                    0 => return None,
                    r => r,
                }
            }
        };
        Some(if reverse { len - rank } else { rank - 1 })
    }

    fn iter_at(&self, at: Option<Cursor>, reverse: bool) -> Iter<'_> {
        Iter {
            zset: self,
            at,
            reverse,
        }
    }

    /// All members with their scores, lowest first (or highest first if `reverse`).
    pub fn iter(&self, reverse: bool) -> Iter<'_> {
        self.iter_from_rank(0, reverse)
    }

    /// Members from 0-based `rank` on, counted and walked in the given direction.
    pub fn iter_from_rank(&self, rank: usize, reverse: bool) -> Iter<'_> {
        let at = match self {
            ZSet::Listpack(lp) => i64::try_from(rank)
                .ok()
                .and_then(|r| r.checked_mul(2))
                .and_then(|r| lp.seek(if reverse { -2 - r } else { r }))
                .map(Cursor::Lp),
            ZSet::SkipList(z) => {
                let len = z.list.len();
                if rank >= len {
                    None
                } else if rank == 0 {
                    if reverse {
                        z.list.last()
                    } else {
                        z.list.first()
                    }
                } else {
                    z.list.by_rank(if reverse { len - rank } else { rank + 1 })
                }
                .map(Cursor::Node)
            }
        };
        self.iter_at(at, reverse)
    }

    /// Members whose scores are in `r`, from the lowest (or the highest if `reverse`).
    pub fn range_by_score<'a>(
        &'a self,
        r: &'a ScoreRange,
        reverse: bool,
    ) -> impl Iterator<Item = (LpEntry<'a>, f64)> + 'a {
        let at = match (self, reverse) {
            (ZSet::Listpack(lp), false) => zzl::first_in_range(lp, r).map(Cursor::Lp),
            (ZSet::Listpack(lp), true) => zzl::last_in_range(lp, r).map(Cursor::Lp),
            (ZSet::SkipList(z), false) => z.first_in_range(r).map(Cursor::Node),
            (ZSet::SkipList(z), true) => z.last_in_range(r).map(Cursor::Node),
        };
        self.iter_at(at, reverse).take_while(move |(_, s)| {
            if reverse {
                r.gte_min(*s)
            } else {
                r.lte_max(*s)
            }
        })
    }

    /// Members in the lex range `r`, from the lowest (or the highest if `reverse`).
    pub fn range_by_lex<'a>(
        &'a self,
        r: &'a LexRange,
        reverse: bool,
    ) -> impl Iterator<Item = (LpEntry<'a>, f64)> + 'a {
        let at = match (self, reverse) {
            (ZSet::Listpack(lp), false) => zzl::first_in_lex(lp, r).map(Cursor::Lp),
            (ZSet::Listpack(lp), true) => zzl::last_in_lex(lp, r).map(Cursor::Lp),
            (ZSet::SkipList(z), false) => z.first_in_lex(r).map(Cursor::Node),
            (ZSet::SkipList(z), true) => z.last_in_lex(r).map(Cursor::Node),
        };
        self.iter_at(at, reverse).take_while(move |(m, _)| {
            with_bytes(*m, |b| if reverse { r.gte_min(b) } else { r.lte_max(b) })
        })
    }

    /// How many scores fall in `r` (ZCOUNT).
    pub fn count_in_range(&self, r: &ScoreRange) -> usize {
        match self {
            ZSet::Listpack(_) => self.range_by_score(r, false).count(),
            ZSet::SkipList(z) => match (z.first_in_range(r), z.last_in_range(r)) {
                (Some(a), Some(b)) => (z.rank_of(b) + 1).saturating_sub(z.rank_of(a)),
                _ => 0,
            },
        }
    }

    /// How many members fall in the lex range `r` (ZLEXCOUNT).
    pub fn count_in_lex(&self, r: &LexRange) -> usize {
        match self {
            ZSet::Listpack(_) => self.range_by_lex(r, false).count(),
            ZSet::SkipList(z) => match z.first_in_lex(r) {
                Some(a) => {
                    let len = z.list.len();
                    let mut count = len - (z.rank_of(a) - 1);
                    if let Some(b) = z.last_in_lex(r) {
                        count = count.saturating_sub(len - z.rank_of(b));
                    }
                    count
                }
                None => 0,
            },
        }
    }

    /// Remove the members of 0-based ranks `start..=end` (already clamped to the set).
    pub fn remove_range_by_rank(&mut self, start: usize, end: usize) -> usize {
        if start > end || start >= self.len() {
            return 0;
        }
        match self {
            ZSet::Listpack(lp) => {
                let n = end - start + 1;
                lp.delete_range(2 * start, 2 * n);
                n
            }
            ZSet::SkipList(z) => {
                let generation = z.list.generation();
                let SkipListZSet { list, index } = &mut **z;
                let n = list.remove_rank_range(start + 1, end + 1, |id, m| {
                    SkipListZSet::unindex(index, id, m)
                });
                z.after_removals(generation);
                n
            }
        }
    }

    /// Remove the members whose scores are in `r`.
    pub fn remove_range_by_score(&mut self, r: &ScoreRange) -> usize {
        match self {
            ZSet::Listpack(lp) => {
                let mut n = 0;
                let mut e = zzl::first_in_range(lp, r);
                while let Some(p) = e {
                    if lp.next(p).is_none() || !r.lte_max(zzl::score_of(lp, p)) {
                        break;
                    }
                    e = zzl::delete(lp, p);
                    n += 1;
                }
                n
            }
            ZSet::SkipList(z) => {
                let generation = z.list.generation();
                let SkipListZSet { list, index } = &mut **z;
                let n = list.remove_range(
                    |s, _| !r.gte_min(s),
                    |s, _| r.lte_max(s),
                    |id, m| SkipListZSet::unindex(index, id, m),
                );
                z.after_removals(generation);
                n
            }
        }
    }

    /// Remove the members in the lex range `r`.
    pub fn remove_range_by_lex(&mut self, r: &LexRange) -> usize {
        match self {
            ZSet::Listpack(lp) => {
                let mut n = 0;
                let mut e = zzl::first_in_lex(lp, r);
                while let Some(p) = e {
                    if lp.next(p).is_none() || !zzl::lte_max(lp, p, r) {
                        break;
                    }
                    e = zzl::delete(lp, p);
                    n += 1;
                }
                n
            }
            ZSet::SkipList(z) => {
                let generation = z.list.generation();
                let SkipListZSet { list, index } = &mut **z;
                let n = list.remove_range(
                    |_, m| !r.gte_min(m),
                    |_, m| r.lte_max(m),
                    |id, m| SkipListZSet::unindex(index, id, m),
                );
                z.after_removals(generation);
                n
            }
        }
    }

    /// Remove and return the member with the lowest score (the highest if `max`).
    pub fn pop(&mut self, max: bool) -> Option<(Vec<u8>, f64)> {
        match self {
            ZSet::Listpack(lp) => {
                let e = lp.seek(if max { -2 } else { 0 })?;
                let out = (lp.get(e).to_vec(), zzl::score_of(lp, e));
                zzl::delete(lp, e);
                Some(out)
            }
            ZSet::SkipList(z) => {
                let id = if max { z.list.last() } else { z.list.first() }?;
                let m = z.list.member(id).to_vec();
                let s = z.remove(&m)?;
                Some((m, s))
            }
        }
    }

    /// The member of 0-based rank `i` with its score.
    pub fn get_by_rank(&self, i: usize) -> Option<(LpEntry<'_>, f64)> {
        self.iter_from_rank(i, false).next()
    }

    /// Convert to the skiplist encoding (`zsetConvert`).
    pub fn convert_to_skiplist(&mut self) {
        if let ZSet::Listpack(lp) = self {
            let mut z = SkipListZSet::default();
            let mut e = lp.first();
            while let Some(p) = e {
                let s = zzl::score_of(lp, p);
                with_bytes(lp.get(p), |m| z.insert_new(s, m));
                e = zzl::next_pair(lp, p);
            }
            *self = ZSet::SkipList(Box::new(z));
        }
    }

    /// Convert to the listpack encoding, whatever the limits.
    pub fn convert_to_listpack(&mut self) {
        if let ZSet::SkipList(z) = self {
            let mut lp = Listpack::new();
            for id in z.list.iter() {
                zzl::insert_at(&mut lp, None, z.list.member(id), z.list.score(id));
            }
            *self = ZSet::Listpack(lp);
        }
    }

    /// `zsetConvertToListpackIfNeeded`: back to a listpack when the set is within the
    /// limits (`max_len` is its longest member, `total_len` the sum of member lengths).
    pub fn convert_to_listpack_if_needed(
        &mut self,
        limits: Limits,
        max_len: usize,
        total_len: usize,
    ) {
        if let ZSet::SkipList(z) = self {
            if z.list.len() <= limits.entries
                && max_len <= limits.value
                && Listpack::new().safe_to_add(total_len)
            {
                self.convert_to_listpack();
            }
        }
    }

    /// A set built from (member, score) pairs by inserting each into a skiplist, then
    /// converted back as ZUNIONSTORE / ZINTERSTORE / ZDIFFSTORE do.
    pub fn from_pairs<'m>(
        pairs: impl IntoIterator<Item = (&'m [u8], f64)>,
        limits: Limits,
    ) -> ZSet {
        let mut z = SkipListZSet::default();
        let (mut max_len, mut total) = (0, 0);
        for (m, s) in pairs {
            if z.contains(m) {
                continue;
            }
            max_len = max_len.max(m.len());
            total += m.len();
            z.insert_new(s, m);
        }
        let mut out = ZSet::SkipList(Box::new(z));
        out.convert_to_listpack_if_needed(limits, max_len, total);
        out
    }

    /// Check the encoding's invariants (tests).
    #[cfg(test)]
    pub fn check(&self) {
        match self {
            ZSet::Listpack(lp) => {
                assert_eq!(lp.len() % 2, 0);
                let v: Vec<_> = self.iter(false).map(|(m, s)| (m.to_vec(), s)).collect();
                for w in v.windows(2) {
                    assert_eq!(
                        super::skiplist::cmp_entries(w[0].1, &w[0].0, w[1].1, &w[1].0),
                        Ordering::Less,
                        "{v:?}"
                    );
                }
            }
            ZSet::SkipList(z) => {
                z.list.check();
                assert_eq!(z.index.len(), z.list.len());
                for id in z.list.iter() {
                    assert_eq!(z.find(z.list.member(id)), Some(id));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        entries: 128,
        value: 64,
    };

    fn items(z: &ZSet, reverse: bool) -> Vec<(Vec<u8>, f64)> {
        z.iter(reverse).map(|(m, s)| (m.to_vec(), s)).collect()
    }

    #[test]
    fn strtod_like_glibc() {
        let p = |s: &str| strtod(s.as_bytes());
        assert_eq!(p("1.5"), (1.5, 3, false));
        assert_eq!(p("  -2e3x"), (-2000.0, 6, false));
        assert_eq!(p("0x1p3"), (8.0, 5, false));
        assert_eq!(p("0x"), (0.0, 1, false));
        assert_eq!(p("0x.8"), (0.5, 4, false));
        assert_eq!(p("-0X1.8P-1"), (-0.75, 9, false));
        assert_eq!(p("5.0e"), (5.0, 3, false));
        assert_eq!(p("inFinity"), (f64::INFINITY, 8, false));
        assert_eq!(p("-infx"), (f64::NEG_INFINITY, 4, false));
        assert!(p("nan").0.is_nan());
        assert_eq!(p("1e400"), (f64::INFINITY, 5, true));
        assert_eq!(p("1e-400"), (0.0, 6, true));
        assert_eq!(p("0e-400"), (0.0, 6, false));
        assert_eq!(p(""), (0.0, 0, false));
        assert_eq!(p("."), (0.0, 0, false));
        assert_eq!(p("0x1p-1074").0, f64::from_bits(1));
        assert_eq!(p("0x1p-1075"), (0.0, 9, true));
        assert_eq!(p("0x1.8p-1074").0, f64::from_bits(2));
        assert_eq!(p("0x1fffffffffffff8p-3").0, ((1u64 << 54) - 1) as f64);
        assert_eq!(p("0x1p1024"), (f64::INFINITY, 8, true));
        assert_eq!(
            p("0x123456789abcdef123"),
            (0x123456789abcdef123u128 as f64, 20, false)
        );
    }

    #[test]
    fn ranges_parse_as_redis() {
        assert_eq!(
            ScoreRange::parse(b"(1", b"5"),
            Some(ScoreRange {
                min: 1.0,
                max: 5.0,
                minex: true,
                maxex: false
            })
        );
        assert_eq!(
            ScoreRange::parse(b"", b"(").map(|r| (r.min, r.maxex)),
            Some((0.0, true))
        );
        assert!(ScoreRange::parse(b"1 ", b"2").is_none());
        assert!(ScoreRange::parse(b"nan", b"2").is_none());
        assert_eq!(
            ScoreRange::parse(b" 1", b"1e999").map(|r| r.max),
            Some(f64::INFINITY)
        );
        assert_eq!(ScoreRange::parse(b"1\0x", b"2").map(|r| r.min), Some(1.0));
        assert!(LexRange::parse(b"a", b"+").is_none());
        assert!(LexRange::parse(b"", b"+").is_none());
        assert!(LexRange::parse(b"-x", b"+").is_none());
        let r = LexRange::parse(b"(a", b"[c").unwrap();
        assert!(!r.gte_min(b"a") && r.gte_min(b"aa") && r.lte_max(b"c") && !r.lte_max(b"ca"));
        assert!(LexRange::parse(b"+", b"-").unwrap().is_empty());
        assert!(LexRange::parse(b"-", b"-").unwrap().is_empty());
        assert!(!LexRange::parse(b"-", b"+").unwrap().is_empty());
    }

    #[test]
    fn listpack_stores_scores_as_redis() {
        let mut z = ZSet::new_listpack();
        z.insert(-0.0, b"a", LIMITS);
        z.insert(1.5, b"b", LIMITS);
        z.insert(f64::INFINITY, b"c", LIMITS);
        z.insert(1e18, b"d", LIMITS);
        z.insert(1e19, b"e", LIMITS);
        let ZSet::Listpack(lp) = &z else { panic!() };
        let raw: Vec<Vec<u8>> = lp.iter().map(|e| e.to_vec()).collect();
        let raw: Vec<&[u8]> = raw.iter().map(|v| &v[..]).collect();
        assert_eq!(
            raw,
            vec![
                &b"a"[..],
                b"0",
                b"b",
                b"1.5",
                b"d",
                b"1000000000000000000",
                b"e",
                b"1e+19",
                b"c",
                b"inf"
            ]
        );
        assert_eq!(z.score(b"a").map(|s| s.is_sign_negative()), Some(false));
        assert_eq!(z.score(b"c"), Some(f64::INFINITY));
        // A member that looks like an integer reads back as its bytes.
        z.insert(2.0, b"123", LIMITS);
        assert_eq!(z.rank(b"123", false), Some(2));
        assert_eq!(z.rank(b"123", true), Some(3));
    }

    #[test]
    fn converts_at_the_limits() {
        let l = Limits {
            entries: 3,
            value: 4,
        };
        let mut z = ZSet::new_for(l, 1);
        for m in ["a", "b", "c"] {
            z.insert(1.0, m.as_bytes(), l);
        }
        assert_eq!(z.encoding(), "listpack");
        z.insert(2.0, b"a", l); // update: no conversion
        assert_eq!(z.encoding(), "listpack");
        z.insert(1.0, b"d", l);
        assert_eq!(z.encoding(), "skiplist");
        z.check();
        let mut z = ZSet::new_for(l, 1);
        z.insert(1.0, b"abcd", l);
        assert_eq!(z.encoding(), "listpack");
        z.insert(1.0, b"abcde", l);
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(ZSet::new_for(l, 5).encoding(), "skiplist");
        assert_eq!(
            ZSet::new_for(
                Limits {
                    entries: 0,
                    value: 64
                },
                1
            )
            .encoding(),
            "skiplist"
        );
        // Back to a listpack when asked and within limits.
        z.remove(b"abcde");
        z.convert_to_listpack_if_needed(l, 4, 4);
        assert_eq!(z.encoding(), "listpack");
        assert_eq!(items(&z, false), vec![(b"abcd".to_vec(), 1.0)]);
    }

    #[test]
    fn add_flags_follow_zadd() {
        let mut z = ZSet::new_listpack();
        let f = |incr, nx, xx, gt, lt| AddFlags {
            incr,
            nx,
            xx,
            gt,
            lt,
        };
        assert_eq!(
            z.add(1.0, b"a", f(false, false, true, false, false), LIMITS),
            Added::Skipped
        );
        assert_eq!(
            z.add(1.0, b"a", AddFlags::default(), LIMITS),
            Added::Added(1.0)
        );
        assert_eq!(
            z.add(5.0, b"a", f(false, true, false, false, false), LIMITS),
            Added::Skipped
        );
        assert_eq!(
            z.add(0.5, b"a", f(false, false, false, true, false), LIMITS),
            Added::Skipped
        );
        assert_eq!(
            z.add(2.0, b"a", f(false, false, false, true, false), LIMITS),
            Added::Updated(2.0)
        );
        assert_eq!(
            z.add(2.0, b"a", AddFlags::default(), LIMITS),
            Added::Same(2.0)
        );
        assert_eq!(
            z.add(3.0, b"a", f(true, false, false, false, true), LIMITS),
            Added::Skipped
        );
        assert_eq!(
            z.add(-3.0, b"a", f(true, false, false, false, true), LIMITS),
            Added::Updated(-1.0)
        );
        z.insert(f64::INFINITY, b"b", LIMITS);
        assert_eq!(
            z.add(
                f64::NEG_INFINITY,
                b"b",
                f(true, false, false, false, false),
                LIMITS
            ),
            Added::NaN
        );
        assert_eq!(
            z.add(f64::NAN, b"c", AddFlags::default(), LIMITS),
            Added::NaN
        );
    }

    /// The member index follows its nodes through every kind of removal, score moves
    /// that reinsert a node, and the list's renumbering of its nodes (which only heavy
    /// removals cause).
    #[test]
    fn index_follows_renumbered_nodes() {
        let member = |i: usize| format!("member:{i}").into_bytes();
        let mut z = ZSet::new_listpack();
        for i in 0..2000 {
            z.insert(i as f64, &member(i), LIMITS);
        }
        let ZSet::SkipList(sl) = &z else {
            panic!("not converted")
        };
        let first = sl.list().generation();
        // Moves across the order reinsert nodes (new ids); one ZREM at a time, then
        // ranges by rank, score and lex, each past the point where the list renumbers.
        for i in (0..2000).step_by(7) {
            z.insert(-(i as f64), &member(i), LIMITS);
        }
        z.check();
        for i in (0..2000).filter(|i| i % 3 == 0) {
            z.remove(&member(i));
        }
        z.check();
        z.remove_range_by_rank(0, 300);
        z.check();
        let r = ScoreRange::parse(b"500", b"1500").unwrap();
        z.remove_range_by_score(&r);
        z.check();
        let ZSet::SkipList(sl) = &z else {
            panic!("converted back")
        };
        assert_ne!(sl.list().generation(), first, "the list never renumbered");
        let left: Vec<Vec<u8>> = sl
            .list()
            .iter()
            .map(|id| sl.list().member(id).to_vec())
            .collect();
        for m in &left {
            assert_eq!(z.score(m), sl.score(m));
            assert!(z.score(m).is_some());
        }
        let mut scanned = 0;
        let mut cursor = 0;
        loop {
            cursor = sl.scan(cursor, |_, _| scanned += 1);
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(scanned, left.len());
    }
    /// Model: (member -> score) plus the order of (score, member).
    fn model_items(m: &std::collections::BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
        let mut v: Vec<_> = m.iter().map(|(k, s)| (k.clone(), *s)).collect();
        v.sort_by(|a, b| super::super::skiplist::cmp_entries(a.1, &a.0, b.1, &b.0));
        v
    }

    proptest! {
        #[test]
        fn both_encodings_match_a_model(
            entries in 0usize..12,
            ops in proptest::collection::vec((0u8..9, -6i32..6, 0u8..16, -8i64..8, -8i64..8), 0..200),
        ) {
            let limits = Limits { entries, value: 3 };
            let mut z = ZSet::new_for(limits, 1);
            let mut m: std::collections::BTreeMap<Vec<u8>, f64> = Default::default();
            for (op, s, k, a, b) in ops {
                let score = s as f64 / 2.0;
                // Members: short ones, and a few longer than the value limit.
                let member: Vec<u8> = if k >= 13 { vec![b'x'; 4 + k as usize] } else { vec![b'a' + k] };
                let was_listpack = z.encoding() == "listpack";
                match op {
                    0..=2 => {
                        let got = z.add(score, &member, AddFlags { incr: op == 1, ..Default::default() }, limits);
                        let old = m.get(&member).copied();
                        let new = if op == 1 { score + old.unwrap_or(0.0) } else { score };
                        let want = match old {
                            None => Added::Added(new),
                            Some(o) if o == new => Added::Same(new),
                            Some(_) => Added::Updated(new),
                        };
                        prop_assert_eq!(got, want);
                        m.insert(member.clone(), new);
                        if was_listpack && old.is_none() {
                            let fits = m.len() <= entries && member.len() <= 3;
                            prop_assert_eq!(z.encoding() == "listpack", fits);
                        }
                    }
                    3 => { prop_assert_eq!(z.remove(&member), m.remove(&member).is_some()); }
                    4 => {
                        let len = m.len() as i64;
                        let (mut start, mut end) = (a, b);
                        if start < 0 { start += len; }
                        if end < 0 { end += len; }
                        let start = start.max(0);
                        if start <= end && start < len {
                            let end = end.min(len - 1);
                            let n = z.remove_range_by_rank(start as usize, end as usize);
                            let gone: Vec<_> = model_items(&m).into_iter().skip(start as usize).take((end - start + 1) as usize).collect();
                            prop_assert_eq!(n, gone.len());
                            for (k, _) in gone { m.remove(&k); }
                        }
                    }
                    5 => {
                        let r = ScoreRange { min: a as f64 / 2.0, max: b as f64 / 2.0, minex: s % 2 == 0, maxex: k % 2 == 0 };
                        let want: Vec<_> = model_items(&m).into_iter().filter(|(_, s)| r.gte_min(*s) && r.lte_max(*s)).collect();
                        let got: Vec<_> = z.range_by_score(&r, false).map(|(e, s)| (e.to_vec(), s)).collect();
                        prop_assert_eq!(&got, &want);
                        let mut rev: Vec<_> = z.range_by_score(&r, true).map(|(e, s)| (e.to_vec(), s)).collect();
                        rev.reverse();
                        prop_assert_eq!(&rev, &want);
                        prop_assert_eq!(z.count_in_range(&r), want.len());
                        if s > 3 {
                            prop_assert_eq!(z.remove_range_by_score(&r), want.len());
                            for (k, _) in want { m.remove(&k); }
                        }
                    }
                    6 => {
                        // Lex ranges are defined when all scores are equal: use a
                        // private set with score 0.
                        let mut lz = ZSet::new_for(limits, 1);
                        let mut lm: std::collections::BTreeMap<Vec<u8>, f64> = Default::default();
                        for (k, _) in m.iter() { lz.insert(0.0, k, limits); lm.insert(k.clone(), 0.0); }
                        let item = |x: i64, ex: bool| -> (LexItem, bool) {
                            match x { -8 => (LexItem::Min, true), 7 => (LexItem::Max, true), _ => (LexItem::Str(vec![b'a' + (x + 8) as u8]), ex) }
                        };
                        let (min, minex) = item(a, s % 2 == 0);
                        let (max, maxex) = item(b, k % 2 == 0);
                        let r = LexRange { min, minex, max, maxex };
                        let want: Vec<_> = lm.keys().filter(|k| r.gte_min(k) && r.lte_max(k)).cloned().collect();
                        let got: Vec<_> = lz.range_by_lex(&r, false).map(|(e, _)| e.to_vec()).collect();
                        prop_assert_eq!(&got, &want);
                        let mut rev: Vec<_> = lz.range_by_lex(&r, true).map(|(e, _)| e.to_vec()).collect();
                        rev.reverse();
                        prop_assert_eq!(&rev, &want);
                        prop_assert_eq!(lz.count_in_lex(&r), want.len());
                        prop_assert_eq!(lz.remove_range_by_lex(&r), want.len());
                        lz.check();
                    }
                    7 => {
                        let got = z.pop(s > 0);
                        let items = model_items(&m);
                        let want = if s > 0 { items.last().cloned() } else { items.first().cloned() };
                        prop_assert_eq!(&got, &want);
                        if let Some((k, _)) = want { m.remove(&k); }
                    }
                    _ => {
                        // Convert back and forth: contents never change.
                        let before = items(&z, false);
                        z.convert_to_skiplist();
                        prop_assert_eq!(items(&z, false), before.clone());
                        let max_len = m.keys().map(|k| k.len()).max().unwrap_or(0);
                        z.convert_to_listpack_if_needed(limits, max_len, 0);
                        prop_assert_eq!(z.encoding() == "listpack", m.len() <= entries && max_len <= 3);
                        prop_assert_eq!(items(&z, false), before);
                    }
                }
                z.check();
                let want = model_items(&m);
                prop_assert_eq!(z.len(), want.len());
                prop_assert_eq!(&items(&z, false), &want);
                for (i, (k, s)) in want.iter().enumerate() {
                    prop_assert_eq!(z.score(k), Some(*s));
                    prop_assert_eq!(z.rank(k, false), Some(i));
                    prop_assert_eq!(z.rank(k, true), Some(want.len() - 1 - i));
                    prop_assert_eq!(z.get_by_rank(i).map(|(e, _)| e.to_vec()), Some(k.clone()));
                }
                let mut rev = items(&z, true);
                rev.reverse();
                prop_assert_eq!(&rev, &want);
                let mid = want.len() / 2;
                let tail: Vec<_> = z.iter_from_rank(mid, true).map(|(e, _)| e.to_vec()).collect();
                let want_tail: Vec<_> = want.iter().rev().skip(mid).map(|x| x.0.clone()).collect();
                prop_assert_eq!(tail, want_tail);
                prop_assert_eq!(z.clone(), z.clone());
            }
        }
    }
}
