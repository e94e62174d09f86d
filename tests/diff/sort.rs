//! SORT and SORT_RO for the differential test: ALPHA and DESC orders, LIMIT,
//! BY and GET patterns, STORE, and malformed options.
//!
//! Patterns name keys after the elements, which may live on any shard; the generator
//! keeps them on the sorted key's shard by giving the pattern the sorted key's hash tag
//! (`{t}*` with element `1` names `{t}1`, one of the test's keys), and picks a STORE
//! destination with the same tag when patterns are used. Orders Redis leaves to chance
//! are compared loosely: ALPHA with a BY pattern keeps equal values (missing ones
//! included) in input order, which for sets and sorted sets is hash-table order and
//! under LIMIT is a partial quicksort's; `BY nosort` returns a set in hash-table order.
//! Those replies are compared as multisets (or by length with LIMIT) and never stored.
//!
//! Redis's errno: SORT tests `errno == ERANGE` after `strtod` without clearing errno,
//! so once any number overflows (an INCRBYFLOAT result such as `2e+308` read by a BY
//! pattern) every later numeric SORT in that redis-server fails with "One or more
//! scores can't be converted into double" until some unrelated system call resets
//! errno, and many commands leave ERANGE behind (`HSCAN k 18446744073709551616`'s
//! `strtoul`, for one). Shardis does not copy that. So nothing here makes Redis parse a
//! number for sorting: sorts are ALPHA, or `BY nosort`, or by a pattern naming missing
//! keys (which weigh 0 without being parsed). Numeric sorting is covered by the unit
//! tests in `src/commands/sort.rs`; a comparison that accepts that one Redis error
//! where Shardis answers would let this generator send numeric sorts again.

use super::{Argv, Cmp, Gen};
use rand::Rng;

/// A LIMIT argument: small mostly, sometimes negative, huge or malformed.
fn limit_arg(g: &mut Gen) -> String {
    match g.rng.gen_range(0..10) {
        0..=6 => g.rng.gen_range(0..8).to_string(),
        7 => "-1".into(),
        _ => g.int_arg(),
    }
}

pub fn command(g: &mut Gen) -> Option<(Argv, Cmp)> {
    let readonly = g.chance(0.25);
    let name = if readonly { "SORT_RO" } else { "SORT" };
    // Patterns and STORE stay within one hash tag; without patterns any key goes.
    let tagged = g.chance(0.6);
    let tag = *g.pick(&["{t}", "{u}"]);
    let key = if tagged {
        format!("{tag}{}", g.rng.gen_range(1..=3)).into_bytes()
    } else {
        g.key()
    };
    let mut v: Argv = vec![name.as_bytes().to_vec(), key];
    let (mut alpha, mut by_star, mut nosort, mut limit, mut store) =
        (false, false, false, false, false);
    let mut fetched = false;
    for _ in 0..g.rng.gen_range(0..5) {
        match g.rng.gen_range(0..20) {
            0..=2 => {
                let w = *g.pick(&["ALPHA", "alpha"]);
                alpha = true;
                v.push(w.into());
            }
            3..=4 => v.push(g.pick(&["DESC", "desc", "ASC"]).as_bytes().to_vec()),
            5..=7 => {
                v.push(b"LIMIT".to_vec());
                v.push(limit_arg(g).into_bytes());
                v.push(limit_arg(g).into_bytes());
                limit = true;
            }
            8..=10 if tagged => {
                let (p, named) = match g.rng.gen_range(0..6) {
                    0 => ("nosort".to_string(), false),
                    1 => (format!("{tag}*->{}", g.pick(&["f1", "a", "1", "zz"])), true),
                    2 => (format!("{tag}nokey_*"), false),
                    _ => (format!("{tag}*"), true),
                };
                by_star = p.contains('*');
                // As Redis: one BY without '*' turns sorting off for good.
                nosort |= !by_star;
                v.push(b"BY".to_vec());
                v.push(p.into_bytes());
                if named {
                    // Sorted ALPHA: see the module comment on Redis's errno.
                    v.push(b"ALPHA".to_vec());
                    alpha = true;
                }
            }
            11..=13 if tagged => {
                let p = match g.rng.gen_range(0..6) {
                    0 => "#".to_string(),
                    1 => format!("{tag}*->{}", g.pick(&["f1", "a", "2"])),
                    2 => "nostar".to_string(),
                    _ => format!("{tag}*"),
                };
                fetched |= p.contains('*');
                v.push(b"GET".to_vec());
                v.push(p.into_bytes());
            }
            14..=15 => {
                let dest = if tagged {
                    format!("{tag}{}", g.rng.gen_range(1..=3)).into_bytes()
                } else {
                    g.key()
                };
                v.push(b"STORE".to_vec());
                v.push(dest);
                store = !readonly;
            }
            16 => {
                let w = *g.pick(&["LIMIT", "BY", "GET", "STORE", "nope"]);
                // A bare BY may take the next keyword as its pattern: no '*', no sort.
                nosort |= w == "BY";
                v.push(w.as_bytes().to_vec());
            }
            _ => {}
        }
    }
    let chancy = (alpha && by_star) || nosort;
    if !alpha && !nosort && !by_star {
        // A numeric sort of the elements themselves: see the module comment.
        v.insert(2, b"ALPHA".to_vec());
    }
    if (chancy || fetched) && store {
        // A stored order left to chance, or values fetched from other keys stored in a
        // list (see the module comment): send the reply-only form instead.
        let at = v.iter().position(|a| a.eq_ignore_ascii_case(b"store"))?;
        v.truncate(at);
    }
    let cmp = match (chancy, limit) {
        (false, _) => Cmp::Exact,
        (true, false) => Cmp::Unordered,
        (true, true) => Cmp::SameLen,
    };
    Some((v, cmp))
}
