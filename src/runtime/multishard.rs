//! Multi-key commands whose keys live on several shards, always as (part of) a
//! transaction (`runtime::transaction`), so they are atomic and isolated.
//!
//! Two ways to run one, chosen by its table entry:
//! - **Split** (`Command::split`: DEL, EXISTS, MGET, MSET...): one part per shard with
//!   that shard's keys, replies merged ([`Merge`]).
//! - **Gathered** (everything else: RENAME, SMOVE, SUNIONSTORE...): the keys' states
//!   are copied from their shards, the command runs once on a private shard holding
//!   the copies, and every key whose value or TTL changed is written back. Its records
//!   join the transaction's log on the coordinator's side.
//!
//! There is one runner, [`run`]: inside a transaction that already holds the shards
//! (EXEC) its per-shard steps are plain hops; otherwise they are the first steps of the
//! command's own transaction, run as each shard is granted, so a split command costs
//! one round trip.

use crate::commands::{errors, Command, Ctx, Exec, Merge};
use crate::protocol::Reply;
use crate::runtime::call;
use crate::runtime::transaction::{FirstStep, Tx};
use crate::runtime::Shards;
use crate::shard::intents::Footprint;
use crate::shard::Shard;
use crate::storage::db::Entry;
use bytes::Bytes;

/// Run a keyed command whose keys span shards, atomically: inside the transaction
/// `shards` acts for, or as its own. `writer`: the client's id (client-side caching's
/// NOLOOP), 0 for none. `now`: the clock a script's commands read (when it started),
/// `None` for the time each shard reads when it runs its part.
pub async fn run(
    shards: &Shards,
    cmd: &'static Command,
    db: usize,
    argv: &[Bytes],
    no_touch: bool,
    writer: u64,
    now: Option<u64>,
) -> Reply {
    match cmd.split {
        // An odd MSET must fail whole, before any part is applied.
        Some(_) if !keys_complete(cmd, argv.len()) => errors::wrong_arity(cmd.name),
        Some(merge) => {
            let nkeys = cmd.key_indexes(argv).len();
            let mut positions = Vec::new();
            let steps: Vec<(usize, Footprint, FirstStep<Reply>)> = split_parts(shards, cmd, argv)
                .into_iter()
                .map(|(sid, part, pos)| {
                    positions.push(pos);
                    let claim = call::footprint(cmd, &part);
                    let step: FirstStep<Reply> = Box::new(move |s: &mut Shard| {
                        crate::tracking::set_writer(writer);
                        let now = now.unwrap_or_else(crate::clock::now_ms);
                        let r = call::run(s, cmd, db, &part, no_touch, now);
                        crate::tracking::set_writer(0);
                        r
                    });
                    (sid, claim, step)
                })
                .collect();
            // Nothing follows the parts but the conclusion: their claims are brief.
            let (tx, replies) = steps_in_tx(shards, steps, true).await;
            if let Some(tx) = tx {
                tx.finish().await;
            }
            merge_parts(merge, nkeys, positions.into_iter().zip(replies).collect())
        }
        None => {
            let steps: Vec<(usize, Footprint, FirstStep<Gathered>)> =
                keys_by_shard(shards, cmd, argv)
                    .into_iter()
                    .map(|(sid, ks)| {
                        let claim = Footprint::keys(ks.clone());
                        let step: FirstStep<Gathered> =
                            Box::new(move |s: &mut Shard| gather(s, &ks, now));
                        (sid, claim, step)
                    })
                    .collect();
            let (tx, gathered) = steps_in_tx(shards, steps, false).await;
            let handle = tx.as_ref().map_or(shards, |t| &t.shards);
            let before = gathered.into_iter().flatten().collect();
            let reply = finish_gathered(handle, cmd, db, argv, before, writer, now).await;
            if let Some(tx) = tx {
                tx.finish().await;
            }
            reply
        }
    }
}

/// Run one step per shard: as plain hops inside the transaction `shards` acts for, or
/// as the first steps of a new transaction claiming what each step touches, returned
/// to be finished by the caller. `brief`: the caller will only finish that new
/// transaction, sending its shards nothing more (see [`Tx::claiming`]).
pub(crate) async fn steps_in_tx<R: Send + 'static>(
    shards: &Shards,
    steps: Vec<(usize, Footprint, FirstStep<R>)>,
    brief: bool,
) -> (Option<Tx>, Vec<R>) {
    if shards.tx.is_none() {
        let (tx, out) = Tx::claiming(shards, steps, brief).await;
        return (Some(tx), out);
    }
    let waiting: Vec<_> = steps
        .into_iter()
        .map(|(sid, _, step)| shards.send_or_local(sid, step))
        .collect();
    let mut out = Vec::with_capacity(waiting.len());
    for rx in waiting {
        out.push(rx.get().await);
    }
    (None, out)
}

/// True when the key arguments fill whole steps (MSET's key/value pairs).
fn keys_complete(cmd: &Command, argc: usize) -> bool {
    let step = cmd.key_step.max(1) as usize;
    cmd.last_key != -1
        || argc
            .saturating_sub(cmd.first_key as usize)
            .is_multiple_of(step)
}

/// The parts of a split command: for each shard with keys, its argv and the
/// positions (in key order) of the keys it answers for.
fn split_parts(
    shards: &Shards,
    cmd: &Command,
    argv: &[Bytes],
) -> Vec<(usize, Vec<Bytes>, Vec<usize>)> {
    let idx = cmd.key_indexes(argv);
    let step = cmd.key_step.max(1) as usize;
    let mut parts: Vec<(Vec<Bytes>, Vec<usize>)> = (0..shards.count())
        .map(|_| (vec![argv[0].clone()], Vec::new()))
        .collect();
    for (pos, &k) in idx.iter().enumerate() {
        let s = shards.shard_of(&argv[k]);
        parts[s]
            .0
            .extend_from_slice(&argv[k..(k + step).min(argv.len())]);
        parts[s].1.push(pos);
    }
    parts
        .into_iter()
        .enumerate()
        .filter(|(_, (_, positions))| !positions.is_empty())
        .map(|(sid, (part, positions))| (sid, part, positions))
        .collect()
}

/// Merge the parts' replies (each with the key positions it answers for).
fn merge_parts(merge: Merge, nkeys: usize, results: Vec<(Vec<usize>, Reply)>) -> Reply {
    let mut sum = 0i64;
    let mut ordered: Vec<Reply> = vec![Reply::Null; nkeys];
    for (positions, reply) in results {
        match (merge, reply) {
            (_, e) if e.is_error() => return e,
            (Merge::SumInt, Reply::Int(n)) => sum += n,
            (Merge::Ordered, Reply::Array(items)) => {
                for (p, r) in positions.into_iter().zip(items) {
                    ordered[p] = r;
                }
            }
            _ => {}
        }
    }
    match merge {
        Merge::SumInt => Reply::Int(sum),
        Merge::Ordered => Reply::Array(ordered),
        Merge::AllOk => Reply::ok(),
    }
}

/// A key's state as copied from its shard for gathered execution: (db, key, entry and TTL).
type KeyState = (usize, Bytes, Option<(Entry, Option<u64>)>);
type Gathered = Vec<KeyState>;

/// The command's keys grouped by owning shard.
fn keys_by_shard(shards: &Shards, cmd: &Command, argv: &[Bytes]) -> Vec<(usize, Vec<Bytes>)> {
    let keys = cmd.key_indexes(argv).into_iter().map(|k| argv[k].clone());
    shards.group_by_shard(keys, |k| k)
}

/// Copy the state of `keys` in every database (COPY ... DB reaches another one).
fn gather(s: &mut Shard, keys: &[Bytes], now: Option<u64>) -> Gathered {
    let now = now.unwrap_or_else(crate::clock::now_ms);
    let mut out: Gathered = Vec::new();
    for (dbi, d) in s.dbs.iter_mut().enumerate() {
        for k in keys {
            let e = d.lookup(k, now).cloned();
            let ttl = d.expire_of(k);
            out.push((dbi, k.clone(), e.map(|e| (e, ttl))));
        }
    }
    // Keys found expired are propagated before the command that follows.
    s.propagate_expired();
    out
}

/// Run `cmd` on a private shard holding the gathered keys, and write back every key
/// whose value or TTL changed, to all owning shards at once.
async fn finish_gathered(
    shards: &Shards,
    cmd: &'static Command,
    db: usize,
    argv: &[Bytes],
    before: Gathered,
    writer: u64,
    now: Option<u64>,
) -> Reply {
    let mut scratch = Shard::new(
        shards.local_id,
        shards.count(),
        shards.local.borrow().config_handle.clone(),
    );
    // The copies are not changes: they raise no keyspace event. The command's own
    // events are raised on the scratch shard, with its databases' indexes, and
    // published from this core like any command's.
    crate::notify::muted(|| {
        for (dbi, k, e) in &before {
            if let Some((entry, ttl)) = e {
                let d = &mut scratch.dbs[*dbi];
                d.set(k, entry.value.clone(), false);
                if let Some(at) = ttl {
                    d.set_expire(k, *at);
                }
            }
        }
    });
    // The command's own count of changes (its Redis count), given to the shard of its
    // first write back; the write back itself counts nothing more.
    let base = scratch.dirty();
    let reply = {
        let Exec::Shard(f) = cmd.exec else {
            unreachable!("gathered commands are Shard commands")
        };
        let now = now.unwrap_or_else(crate::clock::now_ms);
        let mut ctx = Ctx::at(&mut scratch, db, now);
        let reply = call::guarded(cmd, || f(&mut ctx, argv));
        crate::runtime::pubsub::publish_events(crate::notify::take());
        reply
    };
    let met: Vec<usize> = before.iter().map(|(_, k, _)| shards.shard_of(k)).collect();
    let writes = changed_keys(shards, &mut scratch, before);
    let wrote = writes.iter().any(|w| !w.is_empty());
    if let (true, Some(log)) = (wrote && call::propagating(&shards.server), &shards.tx_log) {
        // Logged as run, in the transaction that holds every shard of its keys.
        log.push(
            &met,
            call::effects(cmd, &mut scratch.dbs[db], db, argv, &reply),
        );
    }
    let mut changes = scratch.dirty() - base;
    let waiting: Vec<_> = writes
        .into_iter()
        .enumerate()
        .filter(|(_, w)| !w.is_empty())
        .map(|(sid, w)| {
            let counted = std::mem::take(&mut changes);
            shards.send_or_local(sid, move |s: &mut Shard| {
                write_back(s, w, writer);
                s.dbs[db].dirty += counted;
            })
        })
        .collect();
    for rx in waiting {
        rx.get().await;
    }
    reply
}

/// The keys whose value or TTL the command changed on `scratch`, per owning shard.
fn changed_keys(shards: &Shards, scratch: &mut Shard, before: Gathered) -> Vec<Gathered> {
    let mut writes: Vec<Gathered> = (0..shards.count()).map(|_| Vec::new()).collect();
    for (dbi, k, old) in before {
        let d = &mut scratch.dbs[dbi];
        let new = d.keys.get(&k[..]).cloned().map(|e| (e, d.expire_of(&k)));
        let changed = match (&old, &new) {
            (None, None) => false,
            (Some((a, ta)), Some((b, tb))) => a.value != b.value || ta != tb,
            _ => true,
        };
        if changed {
            writes[shards.shard_of(&k)].push((dbi, k, new));
        }
    }
    writes
}

/// (Muted: the command raised its keyspace events where it ran.)
fn write_back(s: &mut Shard, writes: Gathered, writer: u64) {
    // Client-side caching: each key written back is a modified key, by `writer`.
    if crate::tracking::active() {
        let keys: Vec<Bytes> = writes.iter().map(|(_, k, _)| k.clone()).collect();
        crate::tracking::invalidate(&keys, writer);
    }
    crate::notify::muted(|| write_back_keys(s, writes));
}

fn write_back_keys(s: &mut Shard, writes: Gathered) {
    for (dbi, k, new) in writes {
        s.watches.touch(dbi, &k);
        // Counted by the command where it ran (see `finish_gathered`).
        s.dbs[dbi].uncounted(|d| match new {
            None => {
                d.delete(&k);
            }
            Some((e, ttl)) => {
                d.set(&k, e.value, false);
                if let Some(at) = ttl {
                    d.set_expire(&k, at);
                }
            }
        });
    }
}
