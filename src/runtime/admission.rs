//! Admission: whether a request may run now, before it is routed anywhere.
//!
//! In Redis's `processCommand` order: the command and its arity must exist
//! ([`resolve`]); an unauthenticated client may run only `no_auth` commands; while the
//! data set loads, only `loading` commands run; after a failed background save (with
//! `stop-writes-on-bgsave-error`) writes and PING get `-MISCONF`; a RESP2 client
//! subscribed to anything may run only the [`traits::SUBSCRIBE_CONTEXT`] commands; a
//! monitoring client (a replica to Redis) no read or write; inside MULTI a
//! `no_multi` command is refused and dooms the transaction; then, while CLIENT PAUSE
//! holds it, a command is postponed (see `pause`); and every command the table does
//! not mark [`traits::RUNS_IN_MULTI`] is queued inside MULTI instead of run.

use crate::client::ClientRef;
use crate::commands::{self, errors, traits, Command};
use crate::protocol::Reply;
use crate::runtime::pause;
use crate::runtime::transaction;
use crate::runtime::Shards;
use bytes::Bytes;
use std::sync::atomic::Ordering;

/// Find the table entry for `argv`, or the error Redis gives.
pub fn resolve(argv: &[Bytes]) -> Result<&'static Command, (Reply, Option<&'static Command>)> {
    let Some(cmd) = commands::lookup(&argv[0]) else {
        return Err((errors::unknown_command(argv), None));
    };
    if !cmd.arity_ok(argv.len()) {
        return Err((errors::wrong_arity(cmd.name), Some(cmd)));
    }
    if !cmd.subcommands.is_empty() && argv.len() >= 2 {
        let Some(sub) = commands::lookup_sub(cmd, &argv[1]) else {
            return Err((errors::unknown_subcommand(cmd.name, &argv[1]), Some(cmd)));
        };
        if !sub.arity_ok(argv.len()) {
            return Err((errors::wrong_arity(sub.name), Some(sub)));
        }
        return Ok(sub);
    }
    Ok(cmd)
}

/// What admission decided for one request.
pub enum Admitted {
    /// Run it (its argv handed back).
    Run(&'static Command, Vec<Bytes>),
    /// Answer this without running it (refused, or QUEUED inside MULTI).
    Answer(Reply),
    /// Not now: CLIENT PAUSE holds commands of this class. Admit it again when the
    /// pause ends (its argv handed back).
    Postponed(&'static Command, pause::Class, Vec<Bytes>),
}

/// Admit `argv` from `client`: resolve it, check it may run now, queue it inside MULTI.
/// Only a `pausable` request (a client's, not one the server replays or retries
/// itself) is postponed by CLIENT PAUSE.
pub fn admit(client: &ClientRef, shards: &Shards, argv: Vec<Bytes>, pausable: bool) -> Admitted {
    let cmd = match resolve(&argv).and_then(|cmd| check(client, shards, cmd, &argv)) {
        Ok(cmd) => cmd,
        Err((reply, cmd)) => return Admitted::Answer(refused(client, shards, reply, cmd)),
    };
    if pausable {
        if let Some(class) = pause::postpones(client, &shards.server, cmd) {
            return Admitted::Postponed(cmd, class, argv);
        }
    }
    if queues_in_multi(client, cmd) {
        if let Some(q) = client.borrow_mut().multi.as_mut() {
            q.push(argv);
        }
        return Admitted::Answer(Reply::status("QUEUED"));
    }
    Admitted::Run(cmd, argv)
}

/// The refusals that depend on the client's and the server's state.
fn check(
    client: &ClientRef,
    shards: &Shards,
    cmd: &'static Command,
    argv: &[Bytes],
) -> Result<&'static Command, (Reply, Option<&'static Command>)> {
    let refuse = |reply: Reply| Err((reply, Some(cmd)));
    let (authed, id, subscribe_mode, monitor) = {
        let c = client.borrow();
        (
            c.authenticated,
            c.id,
            c.resp == 2 && c.pubsub.active(),
            c.monitor,
        )
    };
    if !authed && !cmd.has_flag("no_auth") {
        return refuse(Reply::err(errors::NOAUTH));
    }
    // (Read once: the flag lookup is on every command's path.)
    let write = cmd.is_write();
    if crate::cluster::enabled() {
        if let Some(reply) = cluster_redirect(client, cmd, argv, write) {
            return refuse(reply);
        }
    }
    if shards.server.loading.load(Ordering::Relaxed)
        && !cmd.has_flag("loading")
        && id != crate::client::REPLAY_CLIENT
    {
        return refuse(Reply::err(errors::LOADING));
    }
    if !cmd.has_flag("allow_busy") {
        if let Some(busy) = crate::scripting::run::busy(&shards.server) {
            return refuse(Reply::err(busy));
        }
    }
    if write || cmd.has_trait(traits::REFUSED_ON_DISK_ERROR) {
        if let Some(reply) = writes_refused(shards) {
            return refuse(reply);
        }
    }
    if write
        && crate::replication::too_few_good_replicas(&shards.server, &shards.local.borrow().config)
    {
        return refuse(Reply::err(errors::NOREPLICAS));
    }
    if crate::replication::is_replica(&shards.server) && !client.borrow().repl.is_master {
        if let Some(reply) = replica_refuses(shards, cmd) {
            return refuse(reply);
        }
    }
    if subscribe_mode && !cmd.has_trait(traits::SUBSCRIBE_CONTEXT) {
        return refuse(errors::only_subscribe_commands(cmd.name));
    }
    if monitor && touches_keyspace(cmd) {
        return refuse(Reply::err(errors::REPLICA_KEYSPACE));
    }
    if queues_in_multi(client, cmd) && cmd.has_flag("no_multi") {
        return refuse(Reply::err(errors::NOT_IN_MULTI));
    }
    Ok(cmd)
}

/// Cluster mode: where a request with keys must go instead (`-MOVED`, `-CROSSSLOT`,
/// `-CLUSTERDOWN`), unless it comes from our master or the AOF. ASKING lasts one
/// command, as in Redis. The common case (keys in one slot this node serves) reads
/// two atomics and hashes each key once, without allocating.
fn cluster_redirect(
    client: &ClientRef,
    cmd: &Command,
    argv: &[Bytes],
    write: bool,
) -> Option<Reply> {
    let mut first: Option<u16> = None;
    let mut one_slot = true;
    let mut visit = |k: &Bytes| {
        let s = crate::runtime::slots::key_slot(k);
        match first {
            None => first = Some(s),
            Some(f) => one_slot &= f == s,
        }
    };
    match cmd.find_keys {
        Some(_) => cmd.key_indexes(argv).iter().for_each(|&i| visit(&argv[i])),
        None => cmd
            .fixed_key_range(argv.len())
            .for_each(|i| visit(&argv[i])),
    }
    // (Nothing reads ASKING until slot migration exists; it is kept for one command.)
    client.borrow_mut().asking = cmd.name == "asking";
    let first = first?;
    if one_slot && crate::cluster::state_ok() && crate::cluster::serves(first) {
        return None;
    }
    let (readonly, exempt) = {
        let c = client.borrow();
        (
            c.cluster_readonly,
            c.repl.is_master || c.id == crate::client::REPLAY_CLIENT,
        )
    };
    if exempt {
        return None;
    }
    crate::cluster::redirect(first, one_slot, write, readonly)
}

/// On a replica: `-READONLY` for a write under `replica-read-only`, `-MASTERDOWN` for
/// a command without the `stale` flag while the link is down and
/// `replica-serve-stale-data` is off (Redis's order).
fn replica_refuses(shards: &Shards, cmd: &Command) -> Option<Reply> {
    let cfg = &shards.local.borrow().config;
    if cmd.is_write() && cfg.get_bool("replica-read-only") {
        return Some(Reply::err(errors::READONLY_REPLICA));
    }
    if !cfg.get_bool("replica-serve-stale-data")
        && !cmd.has_flag("stale")
        && !crate::replication::link_up(&shards.server)
    {
        return Some(Reply::err(errors::MASTERDOWN));
    }
    None
}

/// A read, a write or a command that may propagate: refused to a monitoring client,
/// which Redis holds for a replica.
fn touches_keyspace(cmd: &Command) -> bool {
    cmd.is_write() || cmd.has_flag("readonly") || cmd.has_trait(traits::MAY_REPLICATE)
}

/// `-MISCONF` after a failed background save while `stop-writes-on-bgsave-error` holds.
fn writes_refused(shards: &Shards) -> Option<Reply> {
    shards
        .server
        .durability
        .writes_refused(&shards.local.borrow().config)
}

/// A refused request's reply: a refused EXEC discards the transaction (Redis's
/// `execCommandAbort`), and any refusal while queuing dooms it (EXECABORT).
fn refused(
    client: &ClientRef,
    shards: &Shards,
    mut reply: Reply,
    cmd: Option<&'static Command>,
) -> Reply {
    if cmd.is_some_and(|c| c.has_trait(traits::ENDS_MULTI)) {
        reply = exec_abort(reply);
        let mut c = client.borrow_mut();
        c.multi = None;
        c.multi_aborted = false;
        drop(c);
        transaction::unwatch_all(client, shards);
    }
    let mut c = client.borrow_mut();
    if c.multi.is_some() {
        c.multi_aborted = true;
    }
    drop(c);
    shards
        .local
        .borrow_mut()
        .stats
        .record_rejected(cmd.map(|c| c.name));
    reply
}

/// `EXECABORT Transaction discarded because of: <why>`, `why` without its ERR code.
fn exec_abort(reply: Reply) -> Reply {
    let Reply::Error(e) = reply else { return reply };
    let why = e.strip_prefix("ERR ").unwrap_or(&e);
    errors::exec_abort(why)
}

/// True if `cmd` is queued rather than run: inside MULTI, everything but the commands
/// that control the transaction or the connection (as Redis's `processCommand`).
fn queues_in_multi(client: &ClientRef, cmd: &Command) -> bool {
    client.borrow().multi.is_some() && !cmd.has_trait(traits::RUNS_IN_MULTI)
}
