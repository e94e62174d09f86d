//! Admission: whether a request may run now, before it is routed anywhere.
//!
//! In Redis's `processCommand` order: the command and its arity must exist
//! ([`resolve`]); an unauthenticated client may run only `no_auth` commands; while the
//! data set loads, only `loading` commands run; after a failed background save (with
//! `stop-writes-on-bgsave-error`) or while the AOF cannot be written, writes and PING
//! get `-MISCONF`; a RESP2 client
//! subscribed to anything may run only the [`traits::SUBSCRIBE_CONTEXT`] commands; a
//! monitoring client (a replica to Redis) no read or write; inside MULTI a
//! `no_multi` command is refused and dooms the transaction; then, while CLIENT PAUSE
//! holds it, a command is postponed (see `pause`); and every command the table does
//! not mark [`traits::RUNS_IN_MULTI`] is queued inside MULTI instead of run.
//! What our master's link or the AOF's replay sends passes every check but the first
//! (it was accepted where it first ran, and a refusal would lose it); a write from our
//! master that a failed save or AOF write would refuse stops the server instead, as
//! Redis's replica does unless `replica-ignore-disk-write-errors`.
//!
//! # Commands run for a user without admission
//! Some commands run on a user's behalf after admission, or without it: each check
//! made here must be made there too, or it is a way around it (a script's SORT once
//! read any key, bypassing the BY/GET rule below). Where each check is made:
//!
//! | check | a script's `redis.call` | EXEC's queued commands |
//! |---|---|---|
//! | ACL command, keys, channels | `scripting::run` (`acl::check`) | `transaction::recheck_acl` |
//! | ACL: SORT's BY / GET | `scripting::run` (`acl::sort_refusal`) | `transaction::recheck_acl` |
//! | `-OOM` | at the script's start (`commands::scripting`), first write only | at queueing, and EXEC itself here |
//! | `-MISCONF` (failed save, AOF) | at the script's start (`commands::scripting`) | at queueing |
//! | `-MISCONF` (AOF failed since) | on the shard (`call::run`), every path | on the shard |
//! | `-NOREPLICAS`, `-READONLY` replica | at the script's start (`commands::scripting`) | at queueing |
//! | cluster routing | `scripting::run` (`ClusterCheck`) | EXEC routed by its commands' keys here |
//! | `noscript`, DEBUG protection | `scripting::run` (flag); DEBUG is `noscript` | at queueing |
//!
//! A request CLIENT PAUSE postponed passes admission again ([`admit`]) when the pause
//! ends; a blocked command, admitted once, is retried without it, as in Redis.

use crate::client::ClientRef;
use crate::cluster::{Route, SlotCheck};
use crate::commands::{self, errors, traits, Command};
use crate::protocol::Reply;
use crate::runtime::pause;
use crate::runtime::transaction;
use crate::runtime::Shards;
use bytes::Bytes;
use std::sync::atomic::Ordering;

/// A refused request: the error, and the command when it was found.
type Refusal = (Reply, Option<&'static Command>);

/// Find the table entry for `argv`, or the error Redis gives.
pub fn resolve(argv: &[Bytes]) -> Result<&'static Command, Refusal> {
    let Some(cmd) = commands::lookup_named(&argv[0]) else {
        return Err((errors::unknown_command(argv), None));
    };
    if !cmd.arity_ok(argv.len()) {
        return Err((errors::wrong_arity(cmd.name), Some(cmd)));
    }
    if !cmd.subcommands.is_empty() && argv.len() >= 2 {
        let Some(sub) = commands::lookup_sub(cmd, &argv[1]) else {
            // (No command: Redis counts no call of the container in commandstats.)
            return Err((errors::unknown_subcommand(cmd.name, &argv[1]), None));
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
    /// Run it (its argv handed back), in cluster mode after its slot's shard made the
    /// check (if any) that a slot being migrated or imported needs.
    Run(&'static Command, Vec<Bytes>, Option<SlotCheck>),
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
    let (cmd, slot_check) = match resolve(&argv).and_then(|cmd| check(client, shards, cmd, &argv)) {
        Ok(c) => c,
        Err((reply, cmd)) => return Admitted::Answer(refused(client, shards, reply, cmd)),
    };
    if pausable {
        if let Some(class) = pause::postpones(client, &shards.server, cmd, &argv) {
            return Admitted::Postponed(cmd, class, argv);
        }
    }
    if queues_in_multi(client, cmd) {
        if let Some(q) = client.borrow_mut().multi.as_mut() {
            q.push(argv);
        }
        return Admitted::Answer(Reply::status("QUEUED"));
    }
    Admitted::Run(cmd, argv, slot_check)
}

/// The refusals that depend on the client's and the server's state.
fn check(
    client: &ClientRef,
    shards: &Shards,
    cmd: &'static Command,
    argv: &[Bytes],
) -> Result<(&'static Command, Option<SlotCheck>), Refusal> {
    let refuse = |reply: Reply| Err((reply, Some(cmd)));
    let (authed, subscribe_mode, monitor, replicated) = {
        let c = client.borrow();
        (
            c.authenticated,
            c.resp == 2 && c.pubsub.active(),
            c.monitor,
            c.replicated(),
        )
    };
    if replicated {
        // What our master or the AOF sends was accepted where it first ran; refusing
        // it here would lose it without a word (Redis's master and AOF clients pass
        // no such check either). A script past `busy-reply-threshold` holds its shards'
        // claims, so a command on its keys waits for it, as Redis stops reading its
        // master meanwhile.
        if client.borrow().repl.is_master {
            obey_despite_disk_error(shards, cmd);
        }
        return Ok((cmd, None));
    }
    if !authed
        && crate::acl::registry().default_needs_auth()
        && !cmd.has_flag(crate::commands::flag::NO_AUTH)
    {
        return refuse(Reply::err(errors::NOAUTH));
    }
    if let Some((option, refusal)) = crate::commands::debug::protection(cmd) {
        if !crate::commands::debug::option_allows(option, client, shards) {
            return refuse(Reply::err(refusal));
        }
    }
    if let Err(reply) = permitted(client, cmd, argv) {
        return refuse(reply);
    }
    // (Read once: the flag lookup is on every command's path.) EXEC counts as a write
    // when it queued one, as Redis's `processCommand` judges it (MISCONF, NOREPLICAS,
    // a read-only replica, cluster routing).
    let write = cmd.is_write()
        || (cmd.has_trait(traits::ENDS_MULTI) && queued_any(client, |c, _| c.is_write()));
    let mut slot_check = None;
    if crate::cluster::enabled() {
        match cluster_route(client, cmd, argv, write) {
            Route::Here => {}
            Route::Refuse(reply) => return refuse(reply),
            Route::Check(c) => slot_check = Some(c),
        }
    }
    if shards.server.loading.load(Ordering::Relaxed)
        && !cmd.has_flag(crate::commands::flag::LOADING)
        && !(cmd.has_flag(crate::commands::flag::ALLOW_BUSY)
            && crate::scripting::run::busy_somewhere(&shards.server))
    {
        return refuse(Reply::err(errors::LOADING));
    }
    if !cmd.has_flag(crate::commands::flag::ALLOW_BUSY) {
        if let Some(busy) = crate::scripting::run::busy(&shards.server) {
            return refuse(Reply::err(busy));
        }
        let shard_of = |k: &[u8]| shards.shard_of(k);
        if let Some(busy) = crate::scripting::run::busy_shard(&shards.server, cmd, argv, shard_of) {
            return refuse(Reply::err(busy));
        }
    }
    if write || cmd.has_trait(traits::REFUSED_ON_DISK_ERROR) {
        if let Some(reply) = writes_refused(shards) {
            return refuse(reply);
        }
    }
    if let Some(reply) = out_of_memory(client, shards, cmd) {
        return refuse(reply);
    }
    if write
        && crate::replication::too_few_good_replicas(&shards.server, &shards.local.borrow().config)
    {
        return refuse(Reply::err(errors::NOREPLICAS));
    }
    if crate::replication::is_replica(&shards.server) {
        if let Some(reply) = replica_refuses(client, shards, cmd, write) {
            return refuse(reply);
        }
    }
    if subscribe_mode && !cmd.has_trait(traits::SUBSCRIBE_CONTEXT) {
        return refuse(errors::only_subscribe_commands(cmd.name));
    }
    if monitor && touches_keyspace(cmd) {
        return refuse(Reply::err(errors::REPLICA_KEYSPACE));
    }
    if queues_in_multi(client, cmd) && cmd.has_flag(crate::commands::flag::NO_MULTI) {
        return refuse(Reply::err(errors::NOT_IN_MULTI));
    }
    Ok((cmd, slot_check))
}

/// May the client's ACL user run `argv`? The `-NOPERM` error if not (the refusal
/// logged in ACL LOG, context `multi` while the client queues a transaction, as
/// Redis), or SORT's own error for BY / GET it may not use. The common case (a user
/// with everything allowed, its rules unchanged) costs one atomic load and a few
/// flag tests.
pub fn permitted(client: &ClientRef, cmd: &'static Command, argv: &[Bytes]) -> Result<(), Reply> {
    let mut c = client.borrow_mut();
    let acl = crate::acl::registry();
    let generation = acl.generation();
    if c.acl_generation != generation {
        c.acl_generation = generation;
        if let Some(u) = acl.user(c.user.name.as_bytes()) {
            c.user = u;
        }
    }
    // What our master or the AOF sends ran already (Redis gives those clients no
    // user at all).
    if c.user.unrestricted() || c.replicated() {
        return Ok(());
    }
    if let Err(denied) = crate::acl::check(&c.user, cmd, argv) {
        let context = if c.multi.is_some() {
            crate::acl::Context::Multi
        } else {
            crate::acl::Context::Toplevel
        };
        log_refusal(&c, denied, context, cmd, argv);
        return Err(Reply::error(denied.error(cmd)));
    }
    // SORT's own refusal comes when it runs: inside MULTI, at EXEC
    // (`transaction::recheck_acl`).
    match crate::acl::sort_refusal(&c.user, cmd, argv) {
        Some(e) if c.multi.is_none() => Err(Reply::err(e)),
        _ => Ok(()),
    }
}

/// Put a refusal of `c`'s command in ACL LOG.
pub fn log_refusal(
    c: &crate::client::Client,
    denied: crate::acl::Denied,
    context: crate::acl::Context,
    cmd: &'static Command,
    argv: &[Bytes],
) {
    let info = c.info_line(crate::clock::now_ms());
    let object = denied.object(cmd, argv);
    let entry = crate::acl::entry(denied, context, object, &c.user.name, info);
    crate::acl::registry().log(entry);
}

/// Cluster mode: where a request with keys must go instead (`-MOVED`, `-ASK`,
/// `-CROSSSLOT`, `-CLUSTERDOWN`), or the check its slot's shard must make first (a
/// slot being migrated or imported), unless it comes from our master or the AOF.
/// EXEC is routed by the keys of the commands it runs, as Redis does. ASKING lasts one
/// command. The common case (keys in one stable slot this node serves) reads three
/// atomics and hashes each key once, without allocating.
fn cluster_route(client: &ClientRef, cmd: &'static Command, argv: &[Bytes], write: bool) -> Route {
    // ASKING holds for the next command, or for a whole transaction (Redis clears it
    // after each command outside MULTI).
    let asking = {
        let mut c = client.borrow_mut();
        let asking = c.asking;
        if c.multi.is_none() || cmd.has_trait(traits::ENDS_MULTI) || cmd.name == "asking" {
            c.asking = cmd.name == "asking";
        }
        asking
    };
    let mut keys = Keys {
        first: None,
        one_slot: true,
        multiple_keys: false,
    };
    let mut write = write;
    let held = client.borrow();
    for (rcmd, rargv) in routed(&held, cmd, argv) {
        write |= rcmd.is_write();
        keys.visit_all(rcmd, rargv);
    }
    let Keys {
        first,
        one_slot,
        multiple_keys,
    } = keys;
    let Some((first, _)) = first else {
        return Route::Here;
    };
    if one_slot
        && crate::cluster::state_ok()
        && crate::cluster::serves(first)
        && !crate::cluster::open(first)
    {
        return Route::Here;
    }
    let c = client.borrow();
    crate::cluster::route(&crate::cluster::Query {
        first,
        one_slot,
        multiple_keys,
        write,
        readonly_client: c.cluster_readonly,
        asking: asking || cmd.has_flag(crate::commands::flag::ASKING),
        migrate: cmd.name == "migrate",
        pubsub_shard: matches!(cmd.name, "spublish" | "ssubscribe" | "sunsubscribe"),
    })
}

/// The commands whose keys route a request in cluster mode: for EXEC the ones it
/// queued, as Redis's `getNodeByQuery` routes it, else the request itself.
pub fn routed<'a>(
    client: &'a crate::client::Client,
    cmd: &'static Command,
    argv: &'a [Bytes],
) -> impl Iterator<Item = (&'static Command, &'a [Bytes])> + 'a {
    let queued = client
        .multi
        .as_deref()
        .filter(|_| cmd.has_trait(traits::ENDS_MULTI));
    let own = queued.is_none().then_some((cmd, argv));
    let of_queue = queued
        .into_iter()
        .flatten()
        .filter_map(|q| resolve(q).ok().map(|c| (c, &q[..])));
    own.into_iter().chain(of_queue)
}

/// What routing needs of a request's keys, gathered in place.
struct Keys<'a> {
    /// The first key's slot, and the key.
    first: Option<(u16, &'a [u8])>,
    one_slot: bool,
    /// Some key differs from the first.
    multiple_keys: bool,
}

impl<'a> Keys<'a> {
    /// Visit the keys of `argv`, run as `cmd`.
    fn visit_all(&mut self, cmd: &Command, argv: &'a [Bytes]) {
        match cmd.find_keys {
            Some(_) => cmd
                .key_indexes(argv)
                .iter()
                .for_each(|&i| self.visit(&argv[i])),
            None => cmd
                .fixed_key_range(argv.len())
                .for_each(|i| self.visit(&argv[i])),
        }
    }

    fn visit(&mut self, k: &'a [u8]) {
        let s = crate::runtime::slots::key_slot(k);
        match self.first {
            None => self.first = Some((s, k)),
            Some((f, fk)) => {
                self.one_slot &= f == s;
                self.multiple_keys |= fk != k;
            }
        }
    }
}

/// On a replica: `-READONLY` for a write under `replica-read-only`, `-MASTERDOWN` for
/// a command without the `stale` flag while the link is down and
/// `replica-serve-stale-data` is off (Redis's order).
/// (`write`: the command writes, or it is an EXEC that queued a write; an EXEC is
/// stale-safe only if all it queued is, as Redis's `processCommand` judges them.)
fn replica_refuses(
    client: &ClientRef,
    shards: &Shards,
    cmd: &Command,
    write: bool,
) -> Option<Reply> {
    let cfg = &shards.local.borrow().config;
    if write && cfg.get_bool("replica-read-only") {
        return Some(Reply::err(errors::READONLY_REPLICA));
    }
    let stale = |c: &Command| c.has_flag(crate::commands::flag::STALE);
    if !cfg.get_bool("replica-serve-stale-data")
        && !crate::replication::link_up(&shards.server)
        && !(stale(cmd)
            && !(cmd.has_trait(traits::ENDS_MULTI) && queued_any(client, |c, _| !stale(c))))
    {
        return Some(Reply::err(errors::MASTERDOWN));
    }
    None
}

/// A read, a write or a command that may propagate: refused to a monitoring client,
/// which Redis holds for a replica.
fn touches_keyspace(cmd: &Command) -> bool {
    cmd.is_write()
        || cmd.has_flag(crate::commands::flag::READONLY)
        || cmd.has_trait(traits::MAY_REPLICATE)
}

/// A write (or PING) from our master while a failed background save stops writes
/// (`stop-writes-on-bgsave-error`) or the AOF cannot be written: Redis's replica stops
/// (panics) rather than take data it cannot save, unless
/// `replica-ignore-disk-write-errors`, with which it runs the command and says so in
/// its log at most every 10 s; a PING runs either way.
fn obey_despite_disk_error(shards: &Shards, cmd: &Command) {
    static LOGGED_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let ping = cmd.name == "ping";
    if !(ping || cmd.is_write()) || writes_refused(shards).is_none() {
        return;
    }
    let ignore = shards
        .local
        .borrow()
        .config
        .get_bool("replica-ignore-disk-write-errors");
    if !ignore && !ping {
        crate::log::warning("Replica was unable to write command to disk.");
        std::process::abort();
    }
    let (now, last) = (crate::clock::now_ms(), LOGGED_MS.load(Ordering::Relaxed));
    if now > last + 10_000
        && LOGGED_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        crate::log::warning(
            "Replica is applying a command even though it is unable to write to disk.",
        );
    }
}

/// `-MISCONF` after a failed background save while `stop-writes-on-bgsave-error` holds,
/// or while the AOF cannot be written.
fn writes_refused(shards: &Shards) -> Option<Reply> {
    shards
        .server
        .durability
        .writes_refused(&shards.local.borrow().config)
}

/// `-OOM` for a command that may grow memory (`denyoom`; an EXEC, if any command it
/// queued does; any command queued inside MULTI) while the process is over
/// `maxmemory` and no shard can evict (`shard::evict`). One load and a compare when no
/// limit is set.
fn out_of_memory(client: &ClientRef, shards: &Shards, cmd: &Command) -> Option<Reply> {
    {
        let local = shards.local.borrow();
        if local.config.maxmemory == 0 || !crate::shard::evict::out_of_memory(&local.config) {
            return None;
        }
    }
    let denyoom = |cmd: &Command| cmd.has_flag(crate::commands::flag::DENYOOM);
    // Queuing could take memory without bound: inside MULTI everything but the
    // commands that run there (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET) is refused
    // (Redis's `processCommand`).
    let queuing = client.borrow().multi.is_some() && !cmd.has_trait(traits::RUNS_IN_MULTI);
    let grows = denyoom(cmd)
        || (cmd.has_trait(traits::ENDS_MULTI) && queued_any(client, |c, _| denyoom(c)))
        || queuing;
    grows.then(|| Reply::err(errors::OOM))
}

/// True if `f` holds for a command the client queued in its MULTI.
pub fn queued_any(client: &ClientRef, f: impl Fn(&Command, &[Bytes]) -> bool) -> bool {
    let c = client.borrow();
    c.multi
        .iter()
        .flatten()
        .any(|argv| resolve(argv).is_ok_and(|cmd| f(cmd, argv)))
}

/// A refused request's reply: a refused EXEC discards the transaction (Redis's
/// `execCommandAbort`: EXECABORT with the reason, except for a cluster redirection,
/// which Redis sends as it is), and any refusal while queuing dooms it (EXECABORT).
fn refused(
    client: &ClientRef,
    shards: &Shards,
    mut reply: Reply,
    cmd: Option<&'static Command>,
) -> Reply {
    if cmd.is_some_and(|c| c.has_trait(traits::ENDS_MULTI)) {
        let redirection = reply.error_text().is_some_and(|e| {
            ["CROSSSLOT ", "MOVED ", "ASK ", "TRYAGAIN ", "CLUSTERDOWN "]
                .iter()
                .any(|p| e.starts_with(p))
        });
        if !redirection {
            reply = exec_abort(reply);
        }
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
