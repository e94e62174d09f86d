//! The call path: running one command on the shard that owns its keys, and everything
//! that follows from it having run, in one place (Redis's `call()`).
//!
//! For a command run on its shard, in order:
//! 0. **Evict** while the process is over `maxmemory` (a client's command only, in
//!    [`call`]; `shard::evict`), refusing a `denyoom` command with `-OOM` when nothing
//!    can be evicted.
//! 1. **Refuse** a write that a consumer of the propagation hook cannot take (the AOF
//!    file cannot be written: `-MISCONF`; admission refused it already unless the
//!    file failed meanwhile, or it is our master's and we may ignore disk errors).
//! 2. **Watch, before**: if anyone watches a key the command may modify (or, for a
//!    write, any client tracks keys for client-side caching), note what its table
//!    entry's [`Touch`] rule needs to know beforehand (did the key exist).
//! 3. **Execute** the handler, a panic becoming an error reply. (While CLIENT PAUSE
//!    holds expiry, a write's lazy expiry deletes as usual: see `pause`.)
//! 4. **Watch, after**: if it changed data, invalidate the tracked keys its rule names
//!    (`crate::tracking`; sent with its keyspace events, before its reply) and bump
//!    the watched ones: one function (`modified`) applies the rule for both.
//! 5. **Propagate**: if it changed data and some consumer listens, the keys found
//!    expired meanwhile as `DEL`s, then its records (its table entry's
//!    [`Propagation`](crate::commands::Propagation) rule) go to the shard's hook.
//! 6. **Record**: stats, slow log and latency monitor ([`call`]; a part of a split command is recorded
//!    once, by whoever ran the whole), then serve the clients blocked on keys it made
//!    ready.
//!
//! The one idea to hold: the runtime asks the command's table entry, never its name.
//! A command added to the table with its rules gets WATCH, the AOF and blocking right.

use crate::commands::errors;
use crate::commands::traits;
use crate::commands::{propagate, Command, Ctx, Exec, Touch};
use crate::protocol::Reply;
use crate::runtime::hop::ServerInfo;
use crate::shard::intents::Footprint;
use crate::shard::propagation::Effect;
use crate::shard::slowlog::{self, Caller};
use crate::shard::Shard;
use bytes::Bytes;
use std::time::Instant;

/// Run a `Shard` command on `shard`, with stats, the slow log and blocked clients.
pub fn call(
    shard: &mut Shard,
    cmd: &'static Command,
    db: usize,
    argv: &[Bytes],
    no_touch: bool,
    caller: &Caller,
    now_ms: u64,
) -> Reply {
    // Over `maxmemory`: evict first, and refuse what would only make it worse when
    // nothing can be evicted (not the AOF's replay: loading never evicts).
    if shard.config.maxmemory != 0 && caller.id != crate::client::REPLAY_CLIENT {
        if let Some(oom) = crate::shard::evict::before_command(shard, || {
            cmd.has_flag(crate::commands::flag::DENYOOM)
        }) {
            crate::runtime::pubsub::publish_events(crate::notify::take());
            shard.stats.record_rejected(Some(cmd.name));
            return Reply::err(oom);
        }
    }
    crate::tracking::set_writer(caller.id);
    let (reply, us) = run_timed(shard, cmd, db, argv, no_touch, now_ms);
    crate::tracking::set_writer(0);
    slowlog_unless_blocked(shard, cmd, argv, us, &reply, caller);
    crate::runtime::blocking::after_command(shard);
    reply
}

/// [`run`] with command stats and the latency monitor; returns its duration (us).
fn run_timed(
    shard: &mut Shard,
    cmd: &'static Command,
    db: usize,
    argv: &[Bytes],
    no_touch: bool,
    now_ms: u64,
) -> (Reply, u64) {
    let start = Instant::now();
    let reply = run(shard, cmd, db, argv, no_touch, now_ms);
    let us = record_stats(shard, cmd, start, &reply);
    (reply, us)
}

/// Steps 1-5 of a `Shard` command (a part of a split command: the whole command is
/// recorded once by its caller).
pub fn run(
    shard: &mut Shard,
    cmd: &'static Command,
    db: usize,
    argv: &[Bytes],
    no_touch: bool,
    now_ms: u64,
) -> Reply {
    let Exec::Shard(f) = cmd.exec else {
        unreachable!("only Shard commands are executed on a shard")
    };
    let propagating = shard.propagation.active();
    if propagating && cmd.is_write() {
        if let Some(why) = shard.propagation.refuses_writes() {
            // On a replica, admission already refused clients' writes (or, for our
            // master's, stopped the server unless it may ignore disk errors): what
            // gets here is our master's, or a client's that raced the file's failure
            // under `replica-read-only no`, which then runs too.
            let obeyed =
                shard.expire.replica && shard.config.get_bool("replica-ignore-disk-write-errors");
            if !obeyed {
                return errors::misconf(&why);
            }
        }
    }
    // (Checked in this order so the common case, nobody watching, costs one test.)
    let watched = if !shard.watches.is_empty()
        && (cmd.is_write() || cmd.has_trait(traits::TOUCHES_ON_READ))
    {
        let scope = (!cmd.touch.crosses_dbs()).then_some(db);
        let watches = &shard.watches;
        let keys: Vec<usize> = cmd
            .key_indexes(argv)
            .into_iter()
            .filter(|&k| watches.is_watched(scope, &argv[k]))
            .collect();
        touched_before(shard, cmd, db, argv, keys, now_ms)
    } else {
        Vec::new()
    };
    // Client-side caching: while someone tracks, every key a write modifies.
    let tracked = if crate::tracking::active() && cmd.is_write() {
        touched_before(shard, cmd, db, argv, cmd.key_indexes(argv), now_ms)
    } else {
        Vec::new()
    };
    // The dirty counter is a sum over databases: read only when someone needs it.
    let counting = propagating || !watched.is_empty() || !tracked.is_empty();
    let dirty_before = if counting { shard.dirty() } else { 0 };
    // While CLIENT PAUSE holds expiry, a write that runs all the same (it was on its
    // way before the pause, or EXEC paused) deletes the expired keys it meets: it
    // must not find a dead key in its place.
    // On a replica, the master's writes see every key alive (it sends the DELs); a
    // writable replica's own clients' writes delete the expired keys they meet, as
    // anyone's do while CLIENT PAUSE holds expiry.
    let replica_write = shard.expire.replica
        && cmd.is_write()
        && crate::replication::obeyed(crate::tracking::writer());
    let lifted = !replica_write && shard.expiry_held(now_ms) && cmd.is_write();
    if lifted {
        shard.hold_expiry_for_reads_only(false);
    }
    let mut ctx = Ctx::at(shard, db, now_ms);
    ctx.no_touch = no_touch;
    let reply = if replica_write {
        // A replica's writes are its master's: the master decides what has expired.
        crate::storage::db::ignoring_ttl(|| guarded(cmd, || f(&mut ctx, argv)))
    } else {
        guarded(cmd, || f(&mut ctx, argv))
    };
    if lifted {
        shard.hold_expiry_for_reads_only(true);
        if shard.expire.replica && !reply.is_error() {
            shard.remember_written_with_ttl(argv, &cmd.key_indexes(argv));
        }
    }
    let changed = counting && shard.dirty() != dirty_before;
    if !tracked.is_empty() && changed && !reply.is_error() {
        let mut keys = Vec::new();
        modified(cmd, db, argv, &tracked, &reply, |_, k| keys.push(k.clone()));
        crate::tracking::invalidate(&keys, crate::tracking::writer());
    }
    // Its keyspace events (and invalidations) leave before its reply (see `notify`).
    crate::runtime::pubsub::publish_events(crate::notify::take());
    if !watched.is_empty() && changed && !reply.is_error() {
        let watches = &mut shard.watches;
        modified(cmd, db, argv, &watched, &reply, |db, k| {
            watches.touch(db, k)
        });
    }
    if propagating {
        shard.propagate_expired();
        if changed {
            propagate_effects(shard, cmd, db, argv, &reply);
        }
    }
    reply
}

/// Hand `cmd`'s records to the shard's propagation hook.
pub fn propagate_effects(
    shard: &mut Shard,
    cmd: &Command,
    db: usize,
    argv: &[Bytes],
    reply: &Reply,
) {
    let effects = effects(cmd, &mut shard.dbs[db], db, argv, reply);
    shard.propagation.emit(shard.id, effects);
}

/// `cmd`'s propagated records, as effects in database `db` (whose keyspace is `d`).
pub fn effects(
    cmd: &Command,
    d: &mut crate::storage::Db,
    db: usize,
    argv: &[Bytes],
    reply: &Reply,
) -> Vec<Effect> {
    propagate::records(cmd, d, argv, reply)
        .into_iter()
        .map(|argv| Effect {
            db,
            argv,
            to: crate::shard::propagation::targets(),
        })
        .collect()
}

/// True while effects are propagated anywhere (coordinators of multi-shard work check
/// it before building records on their side).
pub fn propagating(server: &ServerInfo) -> bool {
    server.durability.propagating()
        || server
            .replication
            .feeding
            .load(std::sync::atomic::Ordering::Relaxed)
}

/// For the keys at `keys` in `argv` (those watched, or all of them for tracking):
/// (argv index, what `cmd`'s touch rule needs to know beforehand: did the key exist;
/// for [`Touch::UnlessMember`]'s key, did the set already hold the member).
fn touched_before(
    shard: &mut Shard,
    cmd: &Command,
    db: usize,
    argv: &[Bytes],
    keys: Vec<usize>,
    now_ms: u64,
) -> Vec<(usize, bool)> {
    keys.into_iter()
        .map(|k| match cmd.touch {
            Touch::UnlessMember { key, member } if k == key => {
                let has = match shard.dbs[db].lookup(&argv[key], now_ms) {
                    Some(e) => matches!(&e.value, crate::storage::Value::Set(set) if set.contains(&argv[member])),
                    None => false,
                };
                (k, has)
            }
            _ => (k, shard.dbs[db].contains(&argv[k], now_ms)),
        })
        .collect()
}

/// The keys among `before`'s that a write modified, per its [`Touch`] rule (Redis's
/// per-command precision), each given to `touch` with its database: WATCH bumps their
/// versions, client-side caching invalidates them.
fn modified(
    cmd: &Command,
    db: usize,
    argv: &[Bytes],
    before: &[(usize, bool)],
    reply: &Reply,
    mut touch: impl FnMut(usize, &Bytes),
) {
    let db_arg = |b: &[u8]| {
        crate::protocol::parse::parse_i64(b)
            .filter(|&n| n >= 0)
            .map(|n| n as usize)
    };
    for &(k, before) in before {
        let key = &argv[k];
        match cmd.touch {
            Touch::Keys => touch(db, key),
            Touch::Existing if before => touch(db, key),
            Touch::Existing => {}
            Touch::Only(i) if k == i => touch(db, key),
            Touch::Only(_) => {}
            Touch::AllBut(i) if k != i => touch(db, key),
            Touch::AllBut(_) => {}
            Touch::Popped if popped_key(reply) == Some(&key[..]) => touch(db, key),
            Touch::Popped => {}
            Touch::UnlessMember { key: i, .. } if k == i && before => {}
            Touch::UnlessMember { .. } => touch(db, key),
            Touch::OnlyInDbOption(i) if k == i => {
                let dst_db = argv
                    .iter()
                    .position(|a| a.eq_ignore_ascii_case(b"db"))
                    .and_then(|i| argv.get(i + 1))
                    .and_then(|a| db_arg(a))
                    .unwrap_or(db);
                touch(dst_db, key);
            }
            Touch::OnlyInDbOption(_) => {}
            Touch::AlsoInDbArg(i) => {
                touch(db, key);
                if let Some(to) = db_arg(&argv[i]) {
                    touch(to, key);
                }
            }
        }
    }
}

/// The key a pop over several keys popped from: the first element of its reply.
fn popped_key(reply: &Reply) -> Option<&[u8]> {
    match reply {
        Reply::Array(items) => match items.first() {
            Some(Reply::Bulk(k)) => Some(&k[..]),
            _ => None,
        },
        _ => None,
    }
}

/// Run a handler so that a bug in one command cannot take the shard (and every key on
/// it) down with it: a panic becomes an error reply, the event loop keeps running, and
/// the panic message stays in the log.
pub fn guarded(cmd: &Command, f: impl FnOnce() -> Reply) -> Reply {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| panicked(cmd))
}

pub fn panicked(cmd: &Command) -> Reply {
    crate::log::log(&format!(
        "BUG: command '{}' panicked; see the message above",
        cmd.name
    ));
    errors::internal_error(cmd.name)
}

/// Stats, latency monitor and slow log for one executed command. A blocking command
/// that found nothing (outside EXEC: its connection now blocks) is left out of the
/// slow log here: Redis logs it once, when it is served, times out or is unblocked
/// (`blocking::log_unblocked`).
pub fn record(
    shard: &mut Shard,
    cmd: &Command,
    argv: &[Bytes],
    start: Instant,
    reply: &Reply,
    caller: &Caller,
) {
    let us = record_stats(shard, cmd, start, reply);
    slowlog_unless_blocked(shard, cmd, argv, us, reply, caller);
}

/// The slow log entry of a command that ran, except for a blocking command that found
/// nothing: it is logged when its wait ends.
fn slowlog_unless_blocked(
    shard: &mut Shard,
    cmd: &Command,
    argv: &[Bytes],
    us: u64,
    reply: &Reply,
    caller: &Caller,
) {
    let blocks = crate::runtime::blocking::may_block(cmd, argv)
        && crate::runtime::blocking::found_nothing(cmd, reply);
    if !blocks {
        slowlog_push(shard, cmd, argv, us, caller);
    }
}

/// [`call`] for a command EXEC runs: its stats are recorded, and its duration is
/// returned for EXEC to log it in the slow log in queue order (a blocking command
/// there never blocks, so it is logged whatever it found).
pub fn call_queued(
    shard: &mut Shard,
    cmd: &'static Command,
    db: usize,
    argv: &[Bytes],
    no_touch: bool,
    now_ms: u64,
) -> (Reply, u64) {
    let (reply, us) = run_timed(shard, cmd, db, argv, no_touch, now_ms);
    crate::runtime::blocking::after_command(shard);
    (reply, us)
}

/// Command stats and the latency monitor for one executed command; returns its
/// duration in microseconds.
pub fn record_stats(shard: &mut Shard, cmd: &Command, start: Instant, reply: &Reply) -> u64 {
    let us = start.elapsed().as_micros() as u64;
    // EXEC's replies hold its commands' errors, not its own.
    let failures = if cmd.has_trait(crate::commands::traits::ENDS_MULTI) {
        reply.is_error() as u64
    } else {
        reply.failures()
    };
    shard.stats.record_call(cmd.name, us, failures);
    let latency_threshold = shard.config.latency_monitor_threshold;
    if latency_threshold != 0 && us / 1000 >= latency_threshold {
        // Redis's call(): the event names the command's speed class.
        let event = if cmd.has_flag(crate::commands::flag::FAST) {
            "fast-command"
        } else {
            "command"
        };
        shard
            .latency
            .add_if_needed(latency_threshold, event, us / 1000);
    }
    us
}

/// Add `argv` to the slow log if it took long enough. Commands flagged `skip_slowlog`
/// (EXEC: Redis 7.0 logs the commands it runs instead) never are.
pub fn slowlog_push(shard: &mut Shard, cmd: &Command, argv: &[Bytes], us: u64, caller: &Caller) {
    let threshold = shard.config.slowlog_log_slower_than;
    if threshold >= 0
        && us >= threshold as u64
        && !cmd.has_flag(crate::commands::flag::SKIP_SLOWLOG)
    {
        let max = shard.config.slowlog_max_len;
        // Secrets (AUTH's password...) are not kept: Redis shows them `(redacted)`.
        let shown = cmd.redacted(argv);
        shard
            .slowlog
            .push(slowlog::next_id(), &shown, us, caller, max);
    }
}

/// What a command with arguments `argv` touches on its shard, for the transactions'
/// claims (see `shard::intents`): its keys; the whole shard for a command that names
/// none, or that may reach keys its key spec does not name (SORT's BY and GET).
pub fn footprint(cmd: &Command, argv: &[Bytes]) -> Footprint {
    if cmd.spread.is_some() {
        return Footprint::Shard;
    }
    let keys: Vec<Bytes> = cmd.key_index_iter(argv).map(|i| argv[i].clone()).collect();
    if keys.is_empty() {
        return Footprint::Shard;
    }
    Footprint::keys(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::{argv, shard};
    use crate::shard::propagation::{Consumer, TxLog, Unit};
    use std::sync::{Arc, Mutex};

    /// A consumer that writes down what it receives, as text.
    struct Recorder(Arc<Mutex<Vec<String>>>);

    fn show(effects: &[Effect]) -> String {
        effects
            .iter()
            .map(|e| {
                let words: Vec<String> = e
                    .argv
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                format!("{}:{}", e.db, words.join(" "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    impl Consumer for Recorder {
        fn apply(&mut self, unit: Unit<'_>) {
            let line = match unit {
                Unit::Command(e) => format!("command {}", show(e)),
                Unit::Block(e) => format!("block {}", show(e)),
                Unit::Transaction {
                    shard,
                    id,
                    set,
                    effects,
                } => {
                    format!("tx {id} on {shard} of {set:?}: {}", show(effects))
                }
            };
            self.0.lock().unwrap().push(line);
        }
        fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
            self
        }
    }

    fn run_line(s: &mut Shard, line: &str) -> Reply {
        let args: Vec<&str> = line.split(' ').collect();
        let argv = argv(&args);
        let cmd = crate::commands::lookup(&argv[0]).unwrap();
        run(s, cmd, 0, &argv, false, crate::clock::now_ms())
    }

    #[test]
    fn the_hook_receives_each_write_in_its_propagated_form_and_nothing_else() {
        let mut s = shard();
        // Nothing attached: nothing is built.
        run_line(&mut s, "SET a 1");
        let seen = Arc::new(Mutex::new(Vec::new()));
        s.attach(Box::new(Recorder(seen.clone())));
        run_line(&mut s, "SET k v EX 100");
        run_line(&mut s, "GET k");
        run_line(&mut s, "SET k v NX"); // changed nothing
        run_line(&mut s, "INCRBYFLOAT f 1.5");
        // A key found expired is propagated as DEL before the next record.
        s.dbs[0].set_expire(b"a", 1);
        run_line(&mut s, "GET a");
        run_line(&mut s, "SET b 2");
        let got = seen.lock().unwrap().clone();
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[0].starts_with("command 0:SET k v PXAT "), "{got:?}");
        assert_eq!(got[1], "command 0:SET f 1.5 KEEPTTL");
        assert_eq!(got[2], "command 0:DEL a");
        assert_eq!(got[3], "command 0:SET b 2");
    }

    #[test]
    fn blocks_and_transactions_leave_whole() {
        let mut s = shard();
        let seen = Arc::new(Mutex::new(Vec::new()));
        s.attach(Box::new(Recorder(seen.clone())));
        s.propagation.begin_block();
        run_line(&mut s, "SET x 1");
        run_line(&mut s, "INCR x");
        assert!(
            seen.lock().unwrap().is_empty(),
            "staged until the block ends"
        );
        s.propagation.end_block();
        // Work of a multi-shard transaction: records go to its log, in order.
        let log = Arc::new(TxLog::default());
        let outer = s.propagation.enter_tx(log.clone());
        run_line(&mut s, "SET y 1");
        run_line(&mut s, "DEL y");
        s.propagation.leave_tx(outer);
        let (set, effects) = log.take().unwrap();
        assert_eq!(set, vec![0]);
        s.propagation.conclude(0, 7, &set, &effects);
        let got = seen.lock().unwrap().clone();
        assert_eq!(
            got,
            [
                "block 0:SET x 1; 0:INCR x",
                "tx 7 on 0 of [0]: 0:SET y 1; 0:DEL y"
            ]
        );
        // Detached: nothing more is received, and nothing is noted for expiry.
        s.detach::<Recorder>();
        run_line(&mut s, "SET z 1");
        assert_eq!(seen.lock().unwrap().len(), 2);
        assert!(s.dbs[0].expired_log.is_none());
    }

    #[test]
    fn keys_found_expired_before_a_transaction_step_stay_out_of_its_log() {
        let mut s = shard();
        let seen = Arc::new(Mutex::new(Vec::new()));
        s.attach(Box::new(Recorder(seen.clone())));
        run_line(&mut s, "SET k v");
        s.dbs[0].set_expire(b"k", 1);
        // Found expired by a look that is not a command (a WATCH's, at EXEC).
        assert!(!s.dbs[0].contains(b"k", crate::clock::now_ms()));
        // The transaction replays where it concludes, maybe after a later SET k by
        // someone else: the DEL must not travel with it.
        let log = Arc::new(TxLog::default());
        crate::runtime::hop::as_tx(&mut s, Some(&log), |s| run_line(s, "SET a 1"));
        let (_, effects) = log.take().unwrap();
        assert_eq!(show(&effects), "0:SET a 1");
        assert_eq!(seen.lock().unwrap()[1..], ["command 0:DEL k"]);
    }

    #[test]
    fn held_expiry_keeps_expired_keys_from_reads_not_from_writes() {
        let mut s = shard();
        run_line(&mut s, "SET a 1");
        run_line(&mut s, "SET b 1");
        s.dbs[0].set_expire(b"a", 1);
        s.dbs[0].set_expire(b"b", 1);
        s.hold_expiry(crate::clock::now_ms() + 60_000);
        // A read finds it missing and leaves it (the data set stays constant).
        assert_eq!(run_line(&mut s, "GET a"), Reply::Null);
        assert_eq!(run_line(&mut s, "EXISTS a"), Reply::Int(0));
        assert_eq!(s.dbs[0].len(), 2);
        // A write replaces it as if it were gone, its old TTL with it.
        assert_eq!(run_line(&mut s, "SET b 2 KEEPTTL"), Reply::ok());
        assert_eq!(s.dbs[0].expire_of(b"b"), None);
        assert_eq!(run_line(&mut s, "GET b"), Reply::bulk_str("2"));
        // And reads keep holding after it.
        assert_eq!(run_line(&mut s, "GET a"), Reply::Null);
        assert_eq!(s.dbs[0].len(), 2);
        s.hold_expiry(0);
        assert_eq!(run_line(&mut s, "GET a"), Reply::Null);
        assert_eq!(s.dbs[0].len(), 1);
    }
}
