//! SORT whose BY / GET patterns name keys, on a server with several shards.
//!
//! The keys a pattern names depend on the data (`BY weight_*` names one key per
//! element), so they cannot be routed up front like other multi-key commands. Plan:
//! hold every shard (one transaction, as FLUSHALL does), read the sorted key's elements
//! on its shard, then run the pure sort (`commands::sort::sort_elements`) here over a
//! lookup that answers from keys fetched so far and records the ones it missed; fetch
//! those from their shards (one hop per shard) and run it again, until nothing is
//! missing (BY lookups first, then GET lookups for the rows LIMIT keeps: at most a few
//! rounds). STORE writes the result on the destination's shard before the shards are
//! released, so the whole command is atomic, as in Redis.
//!
//! Inside EXEC or a script it takes this path too, as their work over the hold they
//! already have on every shard (an EXEC with such a SORT holds every shard:
//! `transaction::exec`; a script reaching keys it may not hold runs holding every
//! shard: `scripting::run::held`), so it does not claim them again.

use crate::commands::sort::{self, Elements, SortLookup, SortOptions};
use crate::commands::{Command, Ctx, Spread};
use crate::protocol::Reply;
use crate::runtime::transaction::Tx;
use crate::runtime::Shards;
use crate::shard::propagation::Effect;
use crate::shard::Shard;
use crate::storage::db::Entry;
use crate::storage::Value;
use bytes::Bytes;
use std::collections::HashMap;

/// SORT's and SORT_RO's own multi-shard path (their table entries name it).
pub const SPREAD: Spread = Spread {
    reaches: reaches_other_keys,
    run: |shards, cmd, db, argv| Box::pin(sort_across_shards(shards, cmd, db, argv)),
};

/// A key a pattern names, and the hash field when the pattern has `->field`.
type Wanted = (Vec<u8>, Option<Vec<u8>>);

/// True if this SORT must take the all-shards path: several shards, and a pattern that
/// names keys (BY with `*`, or GET other than `#`).
pub fn reaches_other_keys(shards: &Shards, cmd: &Command, argv: &[Bytes]) -> bool {
    if shards.count() == 1 {
        return false;
    }
    match SortOptions::parse(argv, !cmd.is_write()) {
        Ok(o) => (o.by.is_some() && !o.dontsort) || o.gets.iter().any(|g| &g[..] != b"#"),
        Err(_) => false,
    }
}

/// Answers from `found`; records what it lacks in `missing`.
struct Fetched<'a> {
    found: &'a HashMap<Wanted, Option<Vec<u8>>>,
    missing: Vec<Wanted>,
}

impl Fetched<'_> {
    fn get(&mut self, w: Wanted) -> Option<Vec<u8>> {
        match self.found.get(&w) {
            Some(v) => v.clone(),
            None => {
                self.missing.push(w);
                None
            }
        }
    }
}

impl SortLookup for Fetched<'_> {
    fn string(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        self.get((key.to_vec(), None))
    }
    fn hash_field(&mut self, key: &[u8], field: &[u8]) -> Option<Vec<u8>> {
        self.get((key.to_vec(), Some(field.to_vec())))
    }
}

/// Run SORT / SORT_RO over all shards (see the module comment).
pub async fn sort_across_shards(
    shards: &Shards,
    cmd: &'static Command,
    db: usize,
    argv: &[Bytes],
) -> Reply {
    let opts = match SortOptions::parse(argv, !cmd.is_write()) {
        Ok(o) => o,
        Err(r) => return r,
    };
    // Inside a script that holds every shard already (`scripting::run`), as its work;
    // otherwise holding every shard for the command.
    let tx = match shards.tx {
        Some(_) => None,
        None => {
            let all: Vec<usize> = (0..shards.count()).collect();
            Some(Tx::begin(shards, &all).await)
        }
    };
    let held = tx.as_ref().map_or(shards, |tx| &tx.shards);
    let key = argv[1].clone();
    let load_opts = opts.clone();
    let loaded: Result<Elements, Reply> = held
        .on(shards.shard_of(&key), move |s: &mut Shard| {
            sort::load_key(&mut Ctx::new(s, db), &key, &load_opts)
        })
        .await;
    let elements = match loaded {
        Ok(e) => e,
        Err(r) => return r,
    };
    let mut found: HashMap<Wanted, Option<Vec<u8>>> = HashMap::new();
    let rows = loop {
        let mut lookup = Fetched {
            found: &found,
            missing: Vec::new(),
        };
        let result = sort::sort_elements(&opts, elements.clone(), &mut lookup);
        let mut missing = lookup.missing;
        if missing.is_empty() {
            match result {
                Ok(rows) => break rows,
                Err(r) => return r,
            }
        }
        missing.sort();
        missing.dedup();
        let mut by_shard: HashMap<usize, Vec<Wanted>> = HashMap::new();
        for w in missing {
            by_shard.entry(shards.shard_of(&w.0)).or_default().push(w);
        }
        for (sid, wanted) in by_shard {
            let got = held
                .on(sid, move |s: &mut Shard| {
                    let mut ctx = Ctx::new(s, db);
                    wanted
                        .into_iter()
                        .map(|w| {
                            let v = match &w.1 {
                                None => ctx.string(&w.0),
                                Some(f) => ctx.hash_field(&w.0, f),
                            };
                            (w, v)
                        })
                        .collect::<Vec<_>>()
                })
                .await;
            found.extend(got);
        }
    };
    let reply = match opts.store.clone() {
        None => sort::rows_reply(rows),
        Some(dest) => {
            held.on(shards.shard_of(&dest), move |s: &mut Shard| {
                let before = s.dbs[db].dirty;
                let r = sort::store(&mut Ctx::new(s, db), &dest, rows);
                if s.dbs[db].dirty != before {
                    s.watches.touch(db, &dest);
                    log_stored(s, db, &dest);
                }
                r
            })
            .await
        }
    };
    if let Some(tx) = tx {
        tx.finish().await;
    }
    reply
}

/// The records of a SORT ... STORE whose inputs lived on other shards: its effect
/// (`DEL dest`, then `RPUSH dest` with the stored list), since the command could not
/// be replayed by the destination's shard alone. They join the transaction's log, so
/// they replay whole or not at all.
fn log_stored(s: &mut Shard, db: usize, dest: &Bytes) {
    if !s.propagation.active() {
        return;
    }
    s.propagate_expired();
    let mut effects = vec![Effect::new(
        db,
        vec![Bytes::from_static(b"DEL"), dest.clone()],
    )];
    if let Some(Entry {
        value: Value::List(l),
        ..
    }) = s.dbs[db].keys.get(&dest[..])
    {
        let mut push = Vec::with_capacity(l.len() + 2);
        push.push(Bytes::from_static(b"RPUSH"));
        push.push(dest.clone());
        push.extend(l.iter().map(|e| Bytes::from(e.to_vec())));
        effects.push(Effect::new(db, push));
    }
    s.propagation.emit(s.id, effects);
}
