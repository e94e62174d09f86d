//! Running a script: on the one shard its declared keys live on, holding just its
//! declared keys, or holding every shard, and `redis.call` from inside it.
//!
//! [`eval`] picks where a script runs (see the module plan in `scripting`):
//! - **On one shard** when every declared key lives there (or the server has one
//!   shard): the script runs as a job of that shard, on that shard's thread, with the
//!   shard in hand; `redis.call` executes straight on it. Nothing else runs on that
//!   shard meanwhile, and no other shard is touched, so this is atomic without any
//!   claim. A command the shard cannot answer alone (a key of another shard, a
//!   server-wide command) makes the script *move*: if it has had no effect yet, the
//!   run is abandoned (its reads are thrown away, its later writes refused) and the
//!   script runs again holding every shard, and its sha is remembered so that it goes
//!   there directly from then on. If it already wrote, it cannot move, and the command
//!   gets an error naming the fix (declare the key, or share a hash tag). Pipelined,
//!   such scripts for another core's shard travel in that shard's batch of the read,
//!   one hop for all of them ([`batchable`], `runtime::dispatch`); one that must move
//!   or wait stops the batch there and is carried on by the caller
//!   ([`finish_batched`]).
//! - **Holding its declared keys** when they live on several shards and its last run
//!   holding every shard touched nothing else (`Seen::Keys`): a transaction claiming
//!   those keys (`Footprint::Keys`), so that scripts on other keys, and any other work
//!   on other keys, run beside it. A command on another key claims that key too where
//!   nobody else claims or waits for it (`Intents::try_claim`, which never waits);
//!   where that fails the script moves as above, or, after a write, the command gets
//!   the same error. Either way the script holds every shard from its next run on.
//! - **Holding every shard**: one transaction over all of them (or the EXEC it is
//!   queued in).
//!
//! In the last two the script runs on this core, from its client's task: a command
//! for this core's shard inline; one for another core's shard as a hop, the script
//! suspended until its answer comes while the core serves everything else
//! ([`answer_of`], `slices::suspend_until`); a command over several shards or a
//! server-wide one by driving its future to completion here (`hop::block_serving`).
//!
//! Deadlock: a script waits only for its own work, on shards where it is granted, which
//! nothing else holds up; but the thread that must run that work may itself be
//! waiting, inside a script holding other keys, for this thread. So a waiting thread
//! goes on running the jobs that reach its shard (`hop::block_serving`): every wait
//! ends. A job that would run a script on a thread whose interpreter is in the middle
//! of one is sent back to try again (`OnShard::Again`). A script on one shard never
//! waits for anything.
//!
//! Past `busy-reply-threshold` every kind of script is suspended between slices so
//! that its core serves its other clients (`slices`). A script holding every shard,
//! or its keys, simply goes on holding them (one on its keys makes `-BUSY` only the
//! commands on its core's shard, as a script on one shard does). A script on one shard cannot keep its job's
//! `&mut Shard` while suspended, so the first time it is suspended it claims its shard
//! whole, as a transaction would (granted at once: nothing else is queued there, see
//! [`due_for_pause`]); the job returns [`OnShard::Paused`], and each later slice is a
//! job that passes that claim, sent by the EVAL's task after a pause. What reaches the
//! shard meanwhile parks behind the claim, so the script stays atomic; its end releases
//! the claim after closing its propagation block.

use super::cache;
use super::convert;
use super::engine::{self, Outcome};
use super::slices::{self, Slices};
use crate::client::{Client, ClientRef};
use crate::commands::{errors, traits, Command, Exec};
use crate::config::ConfigHandle;
use crate::protocol::Reply;
use crate::runtime::admission;
use crate::runtime::hop::Answer;
use crate::runtime::multishard;
use crate::runtime::slots::SlotTable;
use crate::runtime::transaction::{self, Tx};
use crate::runtime::Shards;
use crate::shard::intents::Footprint;
use crate::shard::propagation::Effect;
use crate::shard::Shard;
use bytes::Bytes;
use mlua::ffi;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// One core thread's running script, seen by SCRIPT KILL and `-BUSY` on other cores.
struct CoreScript {
    /// When it started (ms), 0 when none runs.
    started_ms: AtomicU64,
    /// It holds every shard (only such a script makes other clients `-BUSY`).
    holds_all: AtomicBool,
    /// [`CLEAN`], [`DIRTY`] (it has run a write: SCRIPT KILL refuses) or [`KILLED`]
    /// (SCRIPT KILL asked it to stop: its interpreter's hook sees it, and a write
    /// is refused). One value changed by compare-and-swap, so that a first write and
    /// a SCRIPT KILL on another core cannot both succeed (a flag for each let a kill
    /// that had read "not written" stop a script that wrote just after).
    state: AtomicU8,
    /// It is an EVAL (not an FCALL): which of SCRIPT KILL / FUNCTION KILL stops it.
    eval: AtomicBool,
    /// For a function: its name and the FCALL that runs it (FUNCTION STATS).
    function: std::sync::Mutex<Option<(String, Vec<Bytes>)>>,
}

impl CoreScript {
    const fn new() -> CoreScript {
        CoreScript {
            started_ms: AtomicU64::new(0),
            holds_all: AtomicBool::new(false),
            state: AtomicU8::new(CLEAN),
            eval: AtomicBool::new(true),
            function: std::sync::Mutex::new(None),
        }
    }
}

/// A running script's [`CoreScript::state`].
const CLEAN: u8 = 0;
const DIRTY: u8 = 1;
const KILLED: u8 = 2;

/// The script on `slot`'s core is about to write: false if SCRIPT KILL has stopped
/// it (the write must not run).
fn mark_dirty(slot: usize) -> bool {
    match core(slot)
        .state
        .compare_exchange(CLEAN, DIRTY, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => true,
        Err(now) => now == DIRTY,
    }
}

/// The reply to a write of a script SCRIPT KILL has stopped.
fn killed_reply() -> Reply {
    Reply::error(format!("ERR {}", engine::KILLED))
}

/// Indexed by shard id (one core thread per shard).
static CORES: [CoreScript; 1024] = [const { CoreScript::new() }; 1024];

/// How many of `CORES` have run a script (the highest slot used, plus one): what the
/// checks on every command's path scan while a script runs, instead of all 1024.
static CORES_USED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The part of `CORES` scripts have used.
fn cores() -> &'static [CoreScript] {
    &CORES[..CORES_USED.load(Ordering::Acquire).min(CORES.len())]
}

thread_local! {
    /// The slot of `CORES` this thread's running script uses.
    static SLOT: Cell<usize> = const { Cell::new(0) };
    /// That script's name (an EVAL's sha), for the slow-script warning.
    static NAME: RefCell<String> = const { RefCell::new(String::new()) };
    /// `busy-reply-threshold` when that script started (ms; 0 or less: none).
    static LIMIT: Cell<i64> = const { Cell::new(0) };
}

fn core(slot: usize) -> &'static CoreScript {
    &CORES[slot % CORES.len()]
}

/// The script starts on this thread, as shard `slot`'s, under `config`'s
/// `busy-reply-threshold`.
fn core_begin(slot: usize, holds_all: bool, script: &Script, config: &ConfigHandle) {
    CORES_USED.fetch_max(slot % CORES.len() + 1, Ordering::AcqRel);
    SLOT.with(|s| s.set(slot));
    LIMIT.with(|l| l.set(busy_limit(config)));
    NAME.with(|n| n.borrow_mut().clone_from(&script.name));
    let c = core(slot);
    // Plain stores (Release where others read what came before): no reader needs
    // more than to see them soon, and a sequentially consistent store is a locked
    // instruction, a dozen of them per script.
    c.state.store(CLEAN, Ordering::Relaxed);
    c.holds_all.store(holds_all, Ordering::Relaxed);
    let eval = matches!(script.kind, Kind::Eval(_));
    c.eval.store(eval, Ordering::Relaxed);
    if !eval {
        *lock(&c.function) = Some((script.name.clone(), script.command.clone()));
    }
    let now = crate::clock::now_ms().max(1);
    c.started_ms.store(now, Ordering::Release);
    if holds_all {
        HOLDING_ALL_EVAL.store(eval, Ordering::Relaxed);
        HOLDING_ALL_SINCE.store(now, Ordering::Release);
    } else {
        ONE_SHARD_RUNNING.fetch_add(1, Ordering::SeqCst);
    }
}

fn core_end(slot: usize) {
    let c = core(slot);
    if c.holds_all.load(Ordering::SeqCst) {
        HOLDING_ALL_SINCE.store(0, Ordering::Release);
    } else {
        ONE_SHARD_RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
    c.started_ms.store(0, Ordering::Release);
    c.holds_all.store(false, Ordering::Relaxed);
    c.state.store(CLEAN, Ordering::Relaxed);
    lock(&c.function).take();
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// When the script holding every shard started (ms), 0 when none does (at most one
/// can: it holds them all).
static HOLDING_ALL_SINCE: AtomicU64 = AtomicU64::new(0);
/// Whether that script is an EVAL (the `-BUSY` text names SCRIPT KILL) or an FCALL.
static HOLDING_ALL_EVAL: AtomicBool = AtomicBool::new(true);

/// True while a script holding every shard has run longer than
/// `busy-reply-threshold`: other clients then get `-BUSY` (see `runtime::admission`),
/// except for the commands flagged `allow_busy` (SCRIPT KILL, SHUTDOWN...), on every
/// core: the script's own core serves them between the script's slices (see
/// `slices`). (A script on one shard only holds up that shard's work: see
/// [`busy_shard`].)
/// One atomic load when no such script runs: this is on every command's path.
/// The `-BUSY` error to answer, if any.
pub fn busy(server: &crate::runtime::ServerInfo) -> Option<&'static str> {
    let started = HOLDING_ALL_SINCE.load(Ordering::Acquire);
    if started == 0 {
        return None;
    }
    let limit = busy_limit(&server.config);
    let over = limit > 0 && crate::clock::now_ms().saturating_sub(started) >= limit as u64;
    over.then(|| busy_error(HOLDING_ALL_EVAL.load(Ordering::Relaxed)))
}

/// The `-BUSY` reply for a command that would use this core's interpreters while a
/// script is suspended in the middle of them (see `slices`): such a script has passed
/// `busy-reply-threshold`, and Redis answers `-BUSY` to every script command then.
/// (Commands without keys get it from admission already; this covers an EVAL or FCALL
/// whose keys live on other shards, and a threshold raised meanwhile. Waiting instead
/// could last as long as an unkillable script.) The master's link and the AOF's
/// replay wait for the script instead: they must not lose a command, and Redis does
/// not read from its master during a busy script either.
pub async fn busy_here(client: &ClientRef) -> Option<Reply> {
    if !slices::suspended_here() {
        return None;
    }
    let replicated = client.borrow().replicated();
    if replicated {
        slices::interpreter_free().await;
        return None;
    }
    let eval = core(SLOT.with(Cell::get)).eval.load(Ordering::SeqCst);
    Some(Reply::err(busy_error(eval)))
}

/// `busy-reply-threshold` (ms): read from the configuration once per configuration
/// change, since every script run and, while one runs, every command ask for it
/// (reading an option scans the option table).
fn busy_limit(config: &ConfigHandle) -> i64 {
    thread_local! {
        /// (configuration generation, its threshold)
        static CACHED: Cell<Option<(u64, i64)>> = const { Cell::new(None) };
    }
    let generation = config.generation();
    CACHED.with(|c| match c.get() {
        Some((g, limit)) if g == generation => limit,
        _ => {
            let limit = config.current().get_int("busy-reply-threshold");
            c.set(Some((generation, limit)));
            limit
        }
    })
}

/// How many scripts run on one shard each now (their shard is busy, the others not).
static ONE_SHARD_RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The `-BUSY` error for `argv` if one of its keys lives on a shard whose script (run
/// there alone) has passed `busy-reply-threshold`: the command would wait for it,
/// and Redis would answer `-BUSY`. A command on other shards' keys runs (they are not
/// busy); one without keys gets `-BUSY`, as in Redis. One atomic load when no such
/// script runs.
pub fn busy_shard(
    server: &crate::runtime::ServerInfo,
    cmd: &Command,
    argv: &[Bytes],
    shard_of: impl Fn(&[u8]) -> usize,
) -> Option<&'static str> {
    let busy = one_shard_busy(server)?;
    let keys = cmd.key_indexes(argv);
    if keys.is_empty() {
        // A command without keys may reach every shard (INFO, DBSIZE, SCRIPT LOAD...)
        // or none (PING): Redis answers `-BUSY` to all of them.
        return cores().iter().find_map(busy);
    }
    keys.into_iter()
        .find_map(|i| busy(core(shard_of(&argv[i]))))
}

/// The `-BUSY` error if a script run on one shard alone has passed
/// `busy-reply-threshold`: for a script about to hold every shard, which would wait
/// for it (Redis answers `-BUSY`). One atomic load when no such script runs.
fn busy_anywhere(server: &crate::runtime::ServerInfo) -> Option<&'static str> {
    cores().iter().find_map(one_shard_busy(server)?)
}

/// Whether any script has passed `busy-reply-threshold`. A replica's full sync waits
/// for such a script before it flushes, with the server marked loading: admission lets
/// SCRIPT KILL, FUNCTION KILL and SHUTDOWN through meanwhile.
pub fn busy_somewhere(server: &crate::runtime::ServerInfo) -> bool {
    busy(server).is_some() || busy_anywhere(server).is_some()
}

/// While a script runs on one shard alone: a test of a core's script, the `-BUSY`
/// error if it has passed `busy-reply-threshold`.
fn one_shard_busy(
    server: &crate::runtime::ServerInfo,
) -> Option<impl Fn(&CoreScript) -> Option<&'static str>> {
    if ONE_SHARD_RUNNING.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let limit = busy_limit(&server.config);
    if limit <= 0 {
        return None;
    }
    let now = crate::clock::now_ms();
    Some(move |c: &CoreScript| {
        let started = c.started_ms.load(Ordering::Acquire);
        let over = started != 0
            && !c.holds_all.load(Ordering::Relaxed)
            && now.saturating_sub(started) >= limit as u64;
        over.then(|| busy_error(c.eval.load(Ordering::Relaxed)))
    })
}

/// The `-BUSY` text for a running EVAL or a running function.
pub fn busy_error(eval: bool) -> &'static str {
    if eval {
        errors::BUSY_SCRIPT
    } else {
        errors::BUSY_FUNCTION
    }
}

/// SCRIPT KILL (`eval`) or FUNCTION KILL, from any core (a script's own core serves
/// it between the script's slices): stops every running script of that kind that has
/// not written. Redis's order of refusals: nothing runs, it wrote, it is of the other
/// kind.
pub fn kill(eval: bool) -> Reply {
    let running: Vec<&CoreScript> = cores()
        .iter()
        .filter(|c| c.started_ms.load(Ordering::SeqCst) != 0)
        .collect();
    if running.is_empty() {
        return Reply::err("NOTBUSY No scripts in execution right now.");
    }
    // Stop every script of this kind that has not written (in one step each: see
    // `CoreScript::state`).
    let killed = running
        .iter()
        .filter(|c| c.eval.load(Ordering::SeqCst) == eval)
        .filter(|c| {
            // (One already asked to stop counts: a second SCRIPT KILL is OK too.)
            match c
                .state
                .compare_exchange(CLEAN, KILLED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => true,
                Err(now) => now == KILLED,
            }
        })
        .count();
    if killed == 0 {
        if running
            .iter()
            .any(|c| c.state.load(Ordering::SeqCst) == DIRTY)
        {
            return Reply::err(
                "UNKILLABLE Sorry the script already executed write commands against the \
                 dataset. You can either wait the script termination or kill the server in a \
                 hard way using the SHUTDOWN NOSAVE command.",
            );
        }
        return Reply::err(busy_error(!eval));
    }
    Reply::ok()
}

/// What runs now, for FUNCTION STATS' `running_script`.
pub enum NowRunning {
    Nothing,
    /// An EVAL (Redis answers `-BUSY` then).
    Eval,
    /// A function: its name, its FCALL, ms so far.
    Function(String, Vec<Bytes>, u64),
}

/// The script running on some core, if any.
pub fn running() -> NowRunning {
    for c in cores().iter() {
        let started = c.started_ms.load(Ordering::SeqCst);
        if started == 0 {
            continue;
        }
        if c.eval.load(Ordering::SeqCst) {
            return NowRunning::Eval;
        }
        if let Some((name, argv)) = lock(&c.function).clone() {
            let ms = crate::clock::now_ms().saturating_sub(started);
            return NowRunning::Function(name, argv, ms);
        }
    }
    NowRunning::Nothing
}

/// True once SCRIPT KILL asked this thread's running script to stop.
pub fn kill_requested() -> bool {
    core(SLOT.with(|s| s.get())).state.load(Ordering::Relaxed) == KILLED
}

/// The interpreter's hook asks (see `slices`): the running script has passed
/// `busy-reply-threshold`, and what it holds keeps it atomic while it is suspended:
/// every shard, its declared keys, or its own shard whole. A script on one shard claims its shard the
/// first time it is suspended, which is granted at once when nothing else is queued
/// there (nothing can be granted on a shard while one of its jobs runs, but requests
/// may wait there for parked work); otherwise it runs on without suspending.
pub fn due_for_pause() -> bool {
    let started = core(SLOT.with(|s| s.get()))
        .started_ms
        .load(Ordering::Relaxed);
    let limit = LIMIT.with(|l| l.get());
    if started == 0 || limit <= 0 || crate::clock::now_ms().saturating_sub(started) < limit as u64 {
        return false;
    }
    RUNNING.with(|r| {
        let Ok(mut run) = r.try_borrow_mut() else {
            return false;
        };
        if let Some(run) = run.as_mut().filter(|run| !run.warned) {
            run.warned = true;
            slow_script_warning(limit);
        }
        match run.as_ref().map(|run| (&run.target, run.claim)) {
            Some((Target::Held { .. }, _)) | Some((Target::Direct { .. }, Some(_))) => true,
            // SAFETY: as in `on_shard`: the pointer is the running job's shard, whose
            // own reference is not used while the script runs on this thread; this
            // only reads it.
            Some((Target::Direct { shard, .. }, None)) => unsafe { (**shard).intents.is_empty() },
            None => false,
        }
    })
}

/// Redis's log line for a script that has just passed the busy threshold.
fn slow_script_warning(limit: i64) {
    let c = core(SLOT.with(|s| s.get()));
    let (kill, name) = if c.eval.load(Ordering::Relaxed) {
        ("SCRIPT KILL", NAME.with(|n| n.borrow().clone()))
    } else {
        let name = lock(&c.function).as_ref().map(|(n, _)| n.clone());
        ("FUNCTION KILL", name.unwrap_or_default())
    };
    crate::log::warning(&format!(
        "Slow script detected: still in execution after {limit} milliseconds. You can try \
         killing the script using the {kill} command. Script name is: {name}."
    ));
}

/// Where a script has been seen to run: what decides whether it may run on its
/// declared keys' shard alone, or on its declared keys alone.
#[derive(Clone, Copy, PartialEq)]
enum Seen {
    /// Its declared keys share a shard, and its last run holding every shard touched
    /// only them.
    Local,
    /// Its declared keys live on several shards, and its last run holding every
    /// shard touched only them.
    Keys,
    /// It reached further (an undeclared key, even one on the same shard, or a
    /// server-wide command), once: for good.
    Wide,
}

/// By sha (emptied by SCRIPT FLUSH). A script not in it runs holding every shard the
/// first time, which tells where it goes.
fn seen() -> &'static RwLock<HashMap<String, Seen, foldhash::fast::RandomState>> {
    static SEEN: OnceLock<RwLock<HashMap<String, Seen, foldhash::fast::RandomState>>> =
        OnceLock::new();
    SEEN.get_or_init(|| RwLock::new(HashMap::default()))
}

/// Note where `sha` was seen to run. `Wide` is for good (until SCRIPT FLUSH): a
/// script that once reached beyond its declared keys may do so again on any run, and
/// one that does so after writing can no longer move (see `stray`), so a later run
/// that happened to keep to them proves nothing.
fn remember(sha: &str, how: Seen) {
    let mut seen = seen().write().unwrap_or_else(|e| e.into_inner());
    match seen.get_mut(sha) {
        Some(Seen::Wide) => {}
        Some(known) => *known = how,
        None => {
            seen.insert(sha.to_string(), how);
        }
    }
}

pub fn forget_where_scripts_run() {
    seen()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|k, _| k.starts_with(FUNCTION_PREFIX));
}

/// Functions are remembered as `fn:<lower-case name>` (a sha has no colon).
const FUNCTION_PREFIX: &str = "fn:";

/// The function registry changed: a function of the same name may now do otherwise.
pub fn forget_functions() {
    seen()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|k, _| !k.starts_with(FUNCTION_PREFIX));
}

/// Where a script's commands go.
enum Target {
    /// Every shard is held (by the script's own transaction, or the EXEC's).
    Held { shards: Shards, own: Option<Tx> },
    /// One shard, in hand on its own thread (see `run_on_shard`).
    Direct {
        shard: *mut Shard,
        slots: Arc<SlotTable>,
    },
}

/// What `redis.call` needs while a script runs on this thread.
struct Running {
    target: Target,
    /// The caller (held scripts run on its core); connection commands of a script on
    /// another core's shard run on a stand-in.
    client: Option<ClientRef>,
    stand_in: Option<Box<Client>>,
    client_id: u64,
    no_touch: bool,
    /// The script's own database (SELECT in a script does not change the caller's).
    db: usize,
    /// EVAL_RO, EVALSHA_RO, or `#!lua flags=no-writes`.
    read_only: bool,
    /// See [`Script::oom`]; cleared by its first write.
    oom: bool,
    /// See [`Script::writes_refused`].
    writes_refused: Option<Reply>,
    /// The protocol replies reach the script in (`redis.setresp`).
    resp: u8,
    /// Where its commands' records go (`redis.set_repl`; see `propagation::TO_ALL`).
    repl: u8,
    slot: usize,
    /// It wrote (or published): it can no longer move to every shard.
    had_effect: bool,
    /// It reached beyond its shard with no effect: this run is abandoned.
    moving: bool,
    /// Holding every shard: the shard of its declared keys, if they share one, and
    /// whether every command so far stayed there.
    declared: Option<usize>,
    stayed: bool,
    /// Its declared keys, sorted (with any more it claimed), and whether every command
    /// so far kept to them: what lets the script run on its shard, or on them, alone
    /// next time.
    declared_keys: Option<Vec<Bytes>>,
    kept: bool,
    /// It holds only its declared keys (`declared_keys`), not every shard: a command on
    /// any other key claims that key too if it can without waiting, and otherwise
    /// makes it move, as a script on one shard does.
    keyed: bool,
    /// Holding its keys, it reached another (it runs holding every shard next time).
    strayed: bool,
    cluster: Option<ClusterCheck>,
    /// On one shard: the claim on it taken when the script was first suspended.
    claim: Option<u64>,
    /// The slow-script warning was logged.
    warned: bool,
    /// The clock its keyed commands read (ms): the time it started. Redis 7.0 checks
    /// expiry against that time (`scriptTimeSnapshot`), so that a key cannot expire in
    /// the middle of a script (what the script saw and what it propagates agree); here
    /// TTLs set or read by the script count from it too, as in Redis 7.2
    /// (`commandTimeSnapshot`; 7.0 uses the current time for them). Server-wide
    /// commands (KEYS, SCAN, RANDOMKEY) read it through `clock::frozen_at`. Also one
    /// clock read per script rather than per `redis.call`.
    now_ms: u64,
    /// Where the MONITOR lines of its commands go (`[<db> lua] ...`), if anywhere.
    monitor: Option<Lines>,
    /// See [`Script::tracker`]: the caller and the script's declared keys, until its
    /// first read command remembers them.
    tracker: Option<(u64, Vec<Bytes>)>,
    /// See [`Script::acl`].
    acl: Option<(Arc<crate::acl::User>, String)>,
}

impl Running {
    /// A script's state as it starts: `caller` is its database, client id and
    /// `no_touch`; the declared keys' shard is `slot`'s, and nobody's client is lent.
    fn new(target: Target, script: &Script, caller: (usize, u64, bool), slot: usize) -> Running {
        let (db, client_id, no_touch) = caller;
        Running {
            target,
            client: None,
            stand_in: None,
            client_id,
            no_touch,
            db,
            read_only: script.read_only,
            oom: script.oom,
            writes_refused: script.writes_refused.clone(),
            resp: 2,
            repl: crate::shard::propagation::TO_ALL,
            slot,
            had_effect: false,
            moving: false,
            declared: Some(slot),
            stayed: true,
            declared_keys: None,
            kept: true,
            keyed: false,
            strayed: false,
            cluster: script.cluster.clone(),
            claim: None,
            warned: false,
            now_ms: crate::clock::now_ms(),
            monitor: script.monitor.clone(),
            tracker: script.tracker.map(|id| (id, script.keys.clone())),
            acl: script.acl.clone(),
        }
    }

    /// A command it ran, `us` long: its line for the monitors (as Redis's `call()`
    /// feeds them: after the command, with the database it left selected), and its
    /// slow log entry, from the `lua` client as Redis's (shown as `?:0`). Not for a
    /// command refused before it ran.
    fn ran(&self, cmd: &Command, argv: &[Bytes], us: u64) {
        if let Some(lines) = &self.monitor {
            if crate::runtime::monitor::shows(cmd) {
                let line = crate::runtime::monitor::line(self.db, &"lua", cmd, argv, None);
                lines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&line);
            }
        }
        with_shard(self, |s| {
            let caller = crate::shard::slowlog::Caller::SCRIPT;
            crate::runtime::call::slowlog_push(s, cmd, argv, us, &caller)
        });
    }
}

thread_local! {
    static RUNNING: RefCell<Option<Running>> = const { RefCell::new(None) };
    /// Set while a script's command runs on this thread (see [`calling`]).
    static CALLING: Cell<bool> = const { Cell::new(false) };
}

/// True while the command running on this thread was called by a script (Redis's
/// `CLIENT_SCRIPT` flag on the caller): SORT then orders a set it would leave in
/// its own order, so that the script's result does not depend on it.
pub fn calling() -> bool {
    CALLING.get()
}

/// Run `f`, a script's command, on this thread, with [`calling`] true; then as it was
/// (a SORT over other shards serves other work while it waits, another script's
/// command among it, which must not clear the flag under it).
fn as_script_call<R>(f: impl FnOnce() -> R) -> R {
    let was = CALLING.replace(true);
    let r = f();
    CALLING.set(was);
    r
}

/// Clears this thread's running script even if the script's run unwinds, so that no
/// pointer to a shard outlives the job that lent it.
struct Clear;

impl Drop for Clear {
    fn drop(&mut self) {
        RUNNING.with(|r| r.borrow_mut().take());
    }
}

/// What runs: a script's body (EVAL), or a function from the registry (FCALL).
pub enum Kind {
    Eval(Bytes),
    Function,
}

/// What EVAL or FCALL was asked to run.
pub struct Script {
    /// The script's sha, or the function's name (error replies name it).
    pub name: String,
    pub kind: Kind,
    pub keys: Vec<Bytes>,
    pub args: Vec<Bytes>,
    pub read_only: bool,
    /// A script without flags started while the server was out of memory: its
    /// first `denyoom` command is refused (after a write it may go on).
    pub oom: bool,
    /// A script without flags started while the server refuses writes (a read-only
    /// replica, a failed save, too few good replicas): what its write commands get.
    pub writes_refused: Option<Reply>,
    /// For a function: the whole FCALL (FUNCTION STATS shows it).
    pub command: Vec<Bytes>,
    /// Cluster mode: what each command's keys are checked against ([`ClusterCheck`]);
    /// `None` outside cluster mode and for our master's and the AOF's scripts.
    pub cluster: Option<ClusterCheck>,
    /// Where the MONITOR lines of the commands it runs go, while a monitor is to see
    /// them (set by [`eval`]).
    pub monitor: Option<Lines>,
    /// The caller, if client-side caching tracks its reads now: when the script runs
    /// a read command, the script's declared keys are remembered for it, as Redis 7.0
    /// does (its `call()` remembers the keys of the caller's command, EVAL's or
    /// FCALL's, not the read's). Set by [`eval`].
    pub tracker: Option<u64>,
    /// The caller's ACL user, if it is refused anything, and the caller's CLIENT LIST
    /// line for the ACL LOG entries of refused calls. Set by [`eval`].
    pub acl: Option<(Arc<crate::acl::User>, String)>,
}

/// MONITOR lines a script's commands made, shared with the core that runs it.
pub type Lines = Arc<std::sync::Mutex<Vec<u8>>>;

/// Cluster mode (Redis's `scriptVerifyClusterState`): every key a script's commands
/// touch must be served here, and, for a script with a shebang line or a function
/// that lacks `allow-cross-slot-keys`, in one slot: the declared keys' slot, or else
/// the first one touched (a script without a shebang line may cross slots, as
/// before 7.0).
#[derive(Clone, Debug)]
pub struct ClusterCheck {
    pub slot: Option<u16>,
    pub cross_slot: bool,
    pub readonly_client: bool,
    pub asking: bool,
}

impl ClusterCheck {
    /// The check for a script called by `c` with `keys` declared; `None` where none
    /// applies.
    pub fn for_caller(c: &ClientRef, keys: &[Bytes], cross_slot: bool) -> Option<ClusterCheck> {
        let c = c.borrow();
        if !crate::cluster::enabled() || c.replicated() {
            return None;
        }
        Some(ClusterCheck {
            slot: keys.first().map(|k| crate::runtime::slots::key_slot(k)),
            cross_slot,
            readonly_client: c.cluster_readonly,
            asking: c.asking,
        })
    }

    /// Redis's refusal of `cmd` with `argv` inside the script, if any.
    fn refuse(&mut self, cmd: &Command, argv: &[Bytes]) -> Option<Reply> {
        use crate::cluster::{route, Query, Route};
        let keys = cmd.key_indexes(argv);
        let first = crate::runtime::slots::key_slot(argv.get(*keys.first()?)?);
        let one_slot = keys
            .iter()
            .all(|&i| crate::runtime::slots::key_slot(&argv[i]) == first);
        let multiple_keys = keys.iter().any(|&i| argv[i] != argv[keys[0]]);
        let q = Query {
            first,
            one_slot,
            multiple_keys,
            write: cmd.is_write(),
            readonly_client: self.readonly_client,
            asking: self.asking,
            migrate: false,
            pubsub_shard: false,
        };
        if let Route::Refuse(e) = route(&q) {
            let text = e.error_text().unwrap_or_default();
            let why = if text.starts_with("CLUSTERDOWN The cluster is down and only accepts read") {
                "ERR Script attempted to execute a write command while the cluster is down and readonly"
            } else if text.starts_with("CLUSTERDOWN The cluster is down") {
                "ERR Script attempted to execute a command while the cluster is down"
            } else {
                "ERR Script attempted to access a non local key in a cluster node"
            };
            return Some(Reply::err(why));
        }
        if !self.cross_slot {
            match self.slot {
                None => self.slot = Some(first),
                Some(s) if s != first => {
                    return Some(Reply::err(
                        "ERR Script attempted to access keys that do not hash to the same slot",
                    ))
                }
                Some(_) => {}
            }
        }
        None
    }
}

impl Script {
    /// Drop the MONITOR lines of an abandoned run (it runs again, and shows them again).
    fn forget_lines(&self) {
        if let Some(lines) = &self.monitor {
            lines.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// Its key in `seen`.
    fn seen_key(&self) -> std::borrow::Cow<'_, str> {
        match self.kind {
            Kind::Eval(_) => self.name.as_str().into(),
            Kind::Function => format!("{FUNCTION_PREFIX}{}", self.name.to_ascii_lowercase()).into(),
        }
    }

    /// The reply to a script that did not compile; an EVAL's body leaves the cache.
    fn did_not_compile(&self, msg: &str) -> Reply {
        if let Kind::Eval(_) = self.kind {
            cache::forget(&self.name);
        }
        convert::error_line(msg)
    }

    /// Its compiled function in this thread's interpreter.
    fn compiled(&self) -> Result<engine::Compiled, String> {
        match &self.kind {
            Kind::Eval(body) => engine::with(|e| e.function(&self.name, body)),
            Kind::Function => engine::with_functions(|e| e.named(&self.name))
                .ok_or_else(|| "ERR Function not found".to_string()),
        }
    }
}

/// How a script run on one shard ended.
enum OnShard {
    Done(Reply),
    /// It reached beyond the shard before any effect: run it holding every shard.
    Move(Box<Script>),
    /// It passed `busy-reply-threshold` and is suspended on its shard's thread,
    /// holding this claim on the shard: resume it with [`resume_on_shard`], as work of
    /// that claim.
    Paused(u64),
    /// The shard's thread is in the middle of another script, waiting for another
    /// core's answer (see `hop::block_serving`): send it again after a turn.
    Again(Box<Script>),
    /// A script (an EVAL if true) is suspended on the shard's thread, past
    /// `busy-reply-threshold`: `-BUSY`, as Redis answers during a busy script (the
    /// master's link and the AOF wait and send it again).
    Busy(Box<Script>, bool),
}

/// Run `script` atomically and return its reply. (Boxed: every level of the run's
/// future, and every hop, would otherwise hold and copy the 256-byte `Script`.)
pub async fn eval(client: &ClientRef, shards: &Shards, mut script: Box<Script>) -> Reply {
    let (watched, tracker) = {
        let c = client.borrow();
        let tracked = crate::tracking::active() && crate::runtime::tracking::reads_tracked(&c);
        (c.script_lines.is_some(), tracked.then_some(c.id))
    };
    let lines: Option<Lines> = watched.then(Lines::default);
    script.monitor = lines.clone();
    script.tracker = tracker;
    script.acl = {
        let c = client.borrow();
        let restricted = !c.user.unrestricted() && !c.replicated();
        restricted.then(|| (c.user.clone(), c.info_line(crate::clock::now_ms())))
    };
    let reply = run_script(client, shards, script).await;
    if let Some(lines) = lines {
        let block = std::mem::take(&mut *lines.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(blocks) = client.borrow_mut().script_lines.as_mut() {
            blocks.push_back(block);
        }
    }
    reply
}

/// Run a script command's handler so that a monitor watching it gets exactly one
/// block of lines for it (see `Client::script_lines`), empty if it ran no script (an
/// EVALSHA of an unknown script, a bad key count): EXEC's queued commands and their
/// blocks then pair up.
async fn shown_once(
    client: &ClientRef,
    handler: impl std::future::Future<Output = Reply>,
) -> Reply {
    let before = client.borrow().script_lines.as_ref().map(|b| b.len());
    let reply = handler.await;
    if let (Some(n), Some(blocks)) = (before, client.borrow_mut().script_lines.as_mut()) {
        if blocks.len() == n {
            blocks.push_back(Vec::new());
        }
    }
    reply
}

/// [`eval`]'s work.
async fn run_script(client: &ClientRef, shards: &Shards, script: Box<Script>) -> Reply {
    if let Some(busy) = busy_here(client).await {
        return busy;
    }
    let declared = declared_shard(shards, &script);
    let known = seen_as(&script);
    if let (Some(sid), Some(Seen::Local), None) = (declared, known, shards.tx) {
        let (db, id, no_touch) = {
            let c = client.borrow();
            (c.db, c.id, c.no_touch)
        };
        let slots = shards.slots.clone();
        let ran = shards
            .on(sid, move |s: &mut Shard| {
                run_on_shard(s, slots, script, db, id, no_touch)
            })
            .await;
        return on_shard_outcome(client, shards, sid, ran).await;
    }
    // Boxed: the paths that hold several shards keep two `run_holding` futures and a
    // claim's; inline, every script command's future was ~10 KB, moved on each call.
    Box::pin(run_holding_shards(
        client, shards, script, false, declared, known,
    ))
    .await
}

/// Where `script` has been seen to run, if it has.
fn seen_as(script: &Script) -> Option<Seen> {
    seen()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(script.seen_key().as_ref())
        .copied()
}

/// Carry a script sent to its declared keys' shard `sid` through to its reply: what
/// its run there came to (`ran`), then its further slices, its retries while that
/// shard's interpreter is in use, or its run holding every shard if it had to move.
async fn on_shard_outcome(
    client: &ClientRef,
    shards: &Shards,
    sid: usize,
    mut ran: OnShard,
) -> Reply {
    let (db, id, no_touch) = {
        let c = client.borrow();
        (c.db, c.id, c.no_touch)
    };
    let send = |script: Box<Script>| {
        let slots = shards.slots.clone();
        shards.on(sid, move |s: &mut Shard| {
            run_on_shard(s, slots, script, db, id, no_touch)
        })
    };
    let mut again = 0;
    let script = loop {
        match ran {
            OnShard::Done(reply) => {
                crate::runtime::dispatch::ran_alone_on(sid);
                return reply;
            }
            OnShard::Move(back) => break back,
            OnShard::Busy(_, eval) if !client.borrow().replicated() => {
                return Reply::err(busy_error(eval));
            }
            OnShard::Again(back) | OnShard::Busy(back, _) => {
                // Usually a wait of microseconds; a longer one (a script there
                // computing for a while) is not worth a round trip per loop turn.
                again += 1;
                if again < 8 {
                    slices::pause().await;
                } else {
                    crate::runtime::backend::sleep(std::time::Duration::from_millis(1)).await;
                }
                ran = send(back).await;
            }
            OnShard::Paused(claim) => {
                // Let the shard's core serve its other clients, then go on.
                slices::pause().await;
                ran = shards
                    .passing(claim)
                    .on(sid, move |s: &mut Shard| resume_on_shard(s, claim))
                    .await;
            }
        }
    };
    // It had to move: Wide from now on, whatever this run shows.
    script.forget_lines();
    Box::pin(run_holding_shards(
        client,
        shards,
        script,
        true,
        Some(sid),
        Some(Seen::Local),
    ))
    .await
}

/// A script command of a pipeline whose declared keys all live on another core's
/// shard may join that shard's batch (see `runtime::dispatch`) when it comes from a
/// plain client (no MONITOR watching, no client-side caching, no ACL restriction,
/// not in a transaction), no script is suspended on this core, and the script
/// (`build` makes it) is known to keep to that shard. The script if so; `None` for
/// any other, which runs on its own (errors included: its handler gives them).
pub fn batchable(
    client: &ClientRef,
    shards: &Shards,
    build: crate::commands::ScriptOf,
    argv: &[Bytes],
) -> Option<Box<Script>> {
    if shards.tx.is_some() || slices::suspended_here() {
        return None;
    }
    {
        let c = client.borrow();
        let tracked = crate::tracking::active() && crate::runtime::tracking::reads_tracked(&c);
        if c.script_lines.is_some() || tracked || !c.user.unrestricted() || c.replicated() {
            return None;
        }
    }
    let script = build(client, shards, argv).ok()?;
    (seen_as(&script) == Some(Seen::Local)).then_some(script)
}

/// What a script command's builder (`Command::script`) gives: the script its request
/// runs, or the error it gets instead.
pub type Built = Result<Box<Script>, Reply>;

/// A script command's handler, once its builder has run: the script run, or the
/// error answered, shown once to a monitor (see [`shown_once`]).
pub fn handle<'a>(
    client: &'a ClientRef,
    shards: &'a Shards,
    script: Built,
) -> crate::commands::LocalBoxFuture<'a, Reply> {
    Box::pin(shown_once(client, async move {
        match script {
            Ok(script) => eval(client, shards, script).await,
            Err(e) => e,
        }
    }))
}

/// A batched script (see [`batchable`]) on its shard: its reply, or, when it did not
/// end there at once (it must move, wait for the interpreter, or goes on in slices),
/// what to carry on with on the caller's core ([`finish_batched`]).
pub fn run_batched(
    s: &mut Shard,
    slots: Arc<SlotTable>,
    script: Box<Script>,
    db: usize,
    client_id: u64,
    no_touch: bool,
) -> Result<Reply, Unfinished> {
    match run_on_shard(s, slots, script, db, client_id, no_touch) {
        OnShard::Done(reply) => Ok(reply),
        other => Err(Unfinished(other)),
    }
}

/// A batched script that did not end on its shard at once.
pub struct Unfinished(OnShard);

/// Carry an [`Unfinished`] batched script for shard `sid` through to its reply.
pub async fn finish_batched(
    client: &ClientRef,
    shards: &Shards,
    sid: usize,
    unfinished: Unfinished,
) -> Reply {
    on_shard_outcome(client, shards, sid, unfinished.0).await
}

/// [`run_script`] for a script not known to keep to its one shard: claim what it may
/// touch (its declared keys, or every shard) and run it on this core.
async fn run_holding_shards(
    client: &ClientRef,
    shards: &Shards,
    script: Box<Script>,
    mut moved: bool,
    declared: Option<usize>,
    known: Option<Seen>,
) -> Reply {
    let mut script = *script;
    // Compile before holding anything: a script that does not compile runs nowhere.
    // (The one-shard path above compiles where it runs.) Not while a script waits in
    // the middle of this core's interpreter (see `slices`).
    slices::interpreter_free().await;
    let f = match script.compiled() {
        Ok(f) => f,
        Err(msg) => return script.did_not_compile(&msg),
    };
    // Its declared keys, sorted: whether a run keeps to them is what it is learnt
    // from (a script reaching undeclared keys that happen to share its shard is
    // `Wide`: the next run's may not).
    let declared_keys = (!script.keys.is_empty()).then(|| {
        let mut keys = script.keys.clone();
        keys.sort_unstable();
        keys.dedup();
        keys
    });
    let spread_keys = declared_keys.clone().filter(|_| declared.is_none());
    if let (Some(keys), Some(Seen::Keys), None) = (&spread_keys, known, shards.tx) {
        if let Some(busy) = busy_anywhere(&shards.server) {
            return Reply::err(busy);
        }
        let claims = shards
            .group_by_shard(keys.iter().cloned(), |k| k)
            .into_iter()
            .map(|(sid, keys)| (sid, Footprint::Keys(keys)))
            .collect();
        let Some(tx) = Tx::claiming_unless(shards, claims, slices::suspended_here).await else {
            return Reply::err(busy_anywhere(&shards.server).unwrap_or(busy_error(true)));
        };
        // Its keys do not make it wait for a script suspended on this core (another
        // script on other keys, past the threshold meanwhile), whose interpreter is
        // in use: Redis answers `-BUSY` (the master's link and the AOF wait).
        if let Some(busy) = busy_here(client).await {
            return busy;
        }
        let hold = Hold {
            target: Target::Held {
                shards: tx.shards.for_tx(tx.id, tx.log.clone()),
                own: Some(tx),
            },
            declared,
            declared_keys: spread_keys.clone(),
            keyed: true,
        };
        let (reply, back, running) = run_holding(client, shards, f.clone(), script, hold).await;
        script = back;
        if running.as_ref().is_some_and(|r| r.strayed) {
            // Do not bet on the keys it may reach being free next time. (A run that
            // reached beyond its keys before any effect also moves: see `stray`.)
            remember(&script.seen_key(), Seen::Wide);
        }
        if !running.as_ref().is_some_and(|r| r.moving) {
            return reply;
        }
        // Again, holding every shard.
        script.forget_lines();
        moved = true;
    }
    // Inside EXEC the transaction already holds every shard (a queued EVAL makes it
    // server-wide); asking again would wait for itself.
    let (handle, own) = match (shards.tx, &shards.tx_log) {
        (Some(id), Some(log)) => (shards.for_tx(id, log.clone()), None),
        _ => {
            // A script busy on one shard holds it: Redis answers `-BUSY` rather than
            // wait.
            if let Some(busy) = busy_anywhere(&shards.server) {
                return Reply::err(busy);
            }
            // One that became busy while this one queued refuses it too.
            let all: Vec<usize> = (0..shards.count()).collect();
            let Some(tx) = Tx::begin_unless(shards, &all, slices::suspended_here).await else {
                let server = &shards.server;
                let text = busy(server).or_else(|| busy_anywhere(server));
                return Reply::err(text.unwrap_or(busy_error(true)));
            };
            (tx.shards.for_tx(tx.id, tx.log.clone()), Some(tx))
        }
    };
    let hold = Hold {
        target: Target::Held {
            shards: handle,
            own,
        },
        declared,
        declared_keys,
        keyed: false,
    };
    let (reply, script, running) = run_holding(client, shards, f, script, hold).await;
    if let Some(run) = &running {
        if !moved {
            let how = match (run.declared, &run.declared_keys) {
                (Some(_), _) if run.stayed && run.kept => Some(Seen::Local),
                (None, Some(_)) if run.kept => Some(Seen::Keys),
                (Some(_), _) | (None, Some(_)) => Some(Seen::Wide),
                (None, None) => None,
            };
            if let Some(how) = how {
                remember(&script.seen_key(), how);
            }
        }
    }
    reply
}

/// What a script run on this core holds, and what its declared keys say.
struct Hold {
    /// Every shard, or (`keyed`) the declared keys.
    target: Target,
    /// The shard of its declared keys, if they share one.
    declared: Option<usize>,
    /// Its declared keys, sorted.
    declared_keys: Option<Vec<Bytes>>,
    keyed: bool,
}

/// Run `f` (`script`'s) on this core holding what `hold` says, then conclude and
/// release its own transaction, if it has one. Its reply, the script, and its state
/// at the end.
async fn run_holding(
    client: &ClientRef,
    shards: &Shards,
    f: engine::Compiled,
    script: Script,
    hold: Hold,
) -> (Reply, Script, Option<Running>) {
    let keyed = hold.keyed;
    let (caller_db, client_id, no_touch) = {
        let c = client.borrow();
        (c.db, c.id, c.no_touch)
    };
    let slot = shards.local_id;
    // From here to the run's first slice nothing awaits: the interpreter is taken in
    // this turn (see `slices::interpreter_free`).
    slices::interpreter_free().await;
    let mut running = Running::new(hold.target, &script, (caller_db, client_id, no_touch), slot);
    running.client = Some(client.clone());
    running.declared = hold.declared;
    running.declared_keys = hold.declared_keys;
    running.keyed = keyed;
    RUNNING.with(|r| *r.borrow_mut() = Some(running));
    let clear = Clear;
    // A script on its keys counts as one running on a shard: it makes `-BUSY` only
    // the commands on its core's shard.
    core_begin(slot, !keyed, &script, &shards.server.config);
    // What it holds stays held while the script is suspended: the core's other work
    // on it parks, and past the threshold its clients are answered `-BUSY`. Its
    // `redis.call`s for other cores' shards suspend it until they are answered
    // ([`answer_of`]).
    let run = Slices::awaitable(move || (run_compiled(&f, &script), script));
    let (reply, script) = run.finish().await;
    core_end(slot);
    let mut running = RUNNING.with(|r| r.borrow_mut().take());
    drop(clear);
    client.borrow_mut().db = caller_db;
    if let Some(Running {
        target: Target::Held { own, .. },
        ..
    }) = &mut running
    {
        if let Some(tx) = own.take() {
            tx.finish().await;
        }
    }
    (reply, script, running)
}

/// The shard all of a script's declared keys live on (any, with one shard).
fn declared_shard(shards: &Shards, script: &Script) -> Option<usize> {
    if shards.count() == 1 {
        return Some(0);
    }
    let first = shards.shard_of(script.keys.first()?);
    script
        .keys
        .iter()
        .all(|k| shards.shard_of(k) == first)
        .then_some(first)
}

/// The script, run on shard `s`'s thread with `s` in hand (a job of `s`, or inline
/// when `s` is this core's and free).
fn run_on_shard(
    s: &mut Shard,
    slots: Arc<SlotTable>,
    script: Box<Script>,
    db: usize,
    client_id: u64,
    no_touch: bool,
) -> OnShard {
    // This thread's interpreter is in use: by a busy script suspended here, which
    // Redis answers `-BUSY` for; or by a script waiting, in the middle of a
    // `redis.call`, for another core's answer, while this thread serves its shard.
    if slices::suspended_here() {
        let eval = core(s.id).eval.load(Ordering::Relaxed);
        return OnShard::Busy(script, eval);
    }
    if RUNNING.with(|r| r.try_borrow().map_or(true, |r| r.is_some())) {
        return OnShard::Again(script);
    }
    let f = match script.compiled() {
        Ok(f) => f,
        Err(msg) => return OnShard::Done(script.did_not_compile(&msg)),
    };
    let slot = s.id;
    // As EXEC on one shard: effects leave as one block, blocked clients are served
    // after the script.
    s.propagate_expired();
    s.propagation.begin_block();
    let was_busy = std::mem::replace(&mut s.blocking.busy, true);
    let target = Target::Direct {
        shard: std::ptr::null_mut(),
        slots,
    };
    let running = Running::new(target, &script, (db, client_id, no_touch), slot);
    core_begin(slot, false, &script, &s.config_handle);
    let run = Slices::new(move || (run_compiled(&f, &script), script));
    advance(
        s,
        OnShardRun {
            run,
            running,
            was_busy,
        },
    )
}

/// A script on one shard, between two slices of its run (see `slices`).
struct OnShardRun {
    run: Slices<(Reply, Box<Script>)>,
    running: Running,
    was_busy: bool,
}

thread_local! {
    /// This thread's shard's suspended script, by the claim it holds on the shard.
    static PAUSED: RefCell<HashMap<u64, OnShardRun>> = RefCell::new(HashMap::new());
}

/// Resume the script suspended on `s` holding `claim` (a job of that claim).
fn resume_on_shard(s: &mut Shard, claim: u64) -> OnShard {
    match PAUSED.with(|p| p.borrow_mut().remove(&claim)) {
        Some(run) => advance(s, run),
        None => OnShard::Done(Reply::err("ERR the suspended script is gone")),
    }
}

/// Run the script's next slice with `s` in hand: its reply, or it is suspended again.
fn advance(s: &mut Shard, on: OnShardRun) -> OnShard {
    let OnShardRun {
        mut run,
        mut running,
        was_busy,
    } = on;
    if let Target::Direct { shard, .. } = &mut running.target {
        *shard = s;
    }
    RUNNING.with(|r| *r.borrow_mut() = Some(running));
    let clear = Clear;
    let ended = run.resume();
    let running = RUNNING.with(|r| r.borrow_mut().take());
    drop(clear);
    // The pointer is gone: `s` is ours again.
    let Some(mut running) = running else {
        return OnShard::Done(Reply::err("ERR the script's state is gone"));
    };
    let Some((reply, script)) = ended else {
        // Suspended: hold the shard whole until it ends (granted at once: see
        // `due_for_pause`), so that what reaches the shard meanwhile parks.
        let claim = *running.claim.get_or_insert_with(|| {
            let id = transaction::next_id();
            s.request(id, Footprint::Shard, Box::new(|_: &mut Shard| ()));
            id
        });
        PAUSED.with(|p| {
            p.borrow_mut().insert(
                claim,
                OnShardRun {
                    run,
                    running,
                    was_busy,
                },
            )
        });
        return OnShard::Paused(claim);
    };
    core_end(running.slot);
    if !running.stayed {
        remember(&script.seen_key(), Seen::Wide);
    }
    s.propagation.end_block();
    s.blocking.busy = was_busy;
    if let Some(claim) = running.claim {
        // What parked behind the script runs now, after its block.
        s.release(claim);
    }
    crate::runtime::blocking::after_command(s);
    if running.moving {
        OnShard::Move(script)
    } else {
        OnShard::Done(reply)
    }
}

/// Run the compiled script with this thread's `Running` in place; its reply.
fn run_compiled(f: &engine::Compiled, script: &Script) -> Reply {
    let run = |e: &mut engine::Engine| match e.call(f, &script.keys, &script.args) {
        Ok(Outcome::Replied(reply)) => reply,
        // Booleans follow the script's protocol (`redis.setresp`), as in Redis.
        Ok(Outcome::Returned(v)) => convert::lua_to_reply(&v, script_resp()),
        Ok(Outcome::Failed(err)) => engine::failure_reply(&err, &script.name),
        Err(e) => convert::error_line(&format!("ERR {e}")),
    };
    match script.kind {
        Kind::Eval(_) => engine::with(run),
        Kind::Function => engine::with_functions(run),
    }
}

/// The protocol the running script chose with `redis.setresp` (2 by default).
pub(super) fn script_resp() -> u8 {
    RUNNING.with(|r| r.borrow().as_ref().map_or(2, |run| run.resp))
}

/// `redis.setresp`: the protocol later replies reach the script in.
pub fn set_resp(v: u8) {
    RUNNING.with(|r| {
        if let Some(run) = r.borrow_mut().as_mut() {
            run.resp = v;
        }
    });
}

/// `redis.set_repl`: where the records of the script's next commands go.
/// `redis.acl_check_cmd`: may the script's caller run `argv`? `None` if no such
/// command.
pub fn acl_check(argv: &[Bytes]) -> Option<bool> {
    let mut cmd = crate::commands::lookup_named(argv.first()?)?;
    if !cmd.subcommands.is_empty() && argv.len() >= 2 {
        cmd = crate::commands::lookup_sub(cmd, &argv[1])?;
    }
    Some(RUNNING.with(|r| {
        let run = r.borrow();
        match run.as_ref().and_then(|run| run.acl.as_ref()) {
            Some((user, _)) => crate::acl::check(user, cmd, argv).is_ok(),
            None => true,
        }
    }))
}

pub fn set_repl(to: u8) {
    RUNNING.with(|r| {
        if let Some(run) = r.borrow_mut().as_mut() {
            run.repl = to;
        }
    });
}

/// `redis.call` (`pcall` false) and `redis.pcall`, as C functions of the
/// interpreter: they read their arguments from the Lua stack and push the reply
/// there themselves. Through mlua's callbacks every argument and every reply took a
/// registry reference, and the call its own protected frame: a third of a short
/// script's instructions (`benches/README.md`, "EVALSHA's own costs").
///
/// An error reply is a table `{err = <text>}`, raised by `redis.call`, returned by
/// `redis.pcall`, as Redis 7.0 does (bad arguments too; an earlier version raised
/// those under `pcall` as well).
///
/// # Safety
/// `state` is the state of a running Lua C function (the script's thread), with its
/// arguments on the stack and LUA_MINSTACK free slots. `lua_error` is only reached
/// from this frame once every Rust value of the call has been dropped (`lua_call` of
/// the converter likewise: it may raise), so a raised error unwinds through no frame
/// that owns anything; a panic is caught before it reaches the interpreter's C frames.
pub unsafe fn call_from_lua(state: *mut ffi::lua_State, pcall: bool) -> std::ffi::c_int {
    let pushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: as this function's.
        unsafe { push_reply(state, run_from_lua(state)) }
    }))
    .unwrap_or_else(|_| {
        // An error reply, as a command handler's panic gets (`call::guarded`).
        // SAFETY: as this function's.
        unsafe { push_command_error(state, b"ERR internal error while running the command") };
        Pushed::Error { hard: false }
    });
    let raise = match pushed {
        Pushed::Value => false,
        Pushed::Error { hard } => hard || !pcall,
        Pushed::Pending => {
            ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, CONVERTER.as_ptr());
            ffi::lua_call(state, 0, 1);
            // Raised if it converted to an error table, whatever the reply's kind.
            !pcall && is_error_table(state)
        }
    };
    if raise {
        ffi::lua_error(state);
    }
    1
}

/// Where `call_from_lua` finds the converter of replies it does not push itself
/// ([`convert_pending`]) in the interpreter's registry.
pub const CONVERTER: &std::ffi::CStr = c"shardis.convert_pending";

thread_local! {
    /// A reply `call_from_lua` leaves to the converter, with the script's protocol.
    static PENDING: RefCell<Option<(Reply, u8)>> = const { RefCell::new(None) };
}

/// The converter (an mlua function in the registry, see [`CONVERTER`]): the pending
/// reply as the Lua value a script gets, by the general conversion.
pub fn convert_pending(lua: &mlua::Lua) -> mlua::Result<mlua::Value> {
    match PENDING.with(|p| p.borrow_mut().take()) {
        Some((reply, resp)) => convert::reply_to_lua(lua, &reply, resp),
        None => Ok(mlua::Value::Nil),
    }
}

/// What `call_from_lua` got: a reply in the script's protocol, or an error of its own:
/// bad arguments (returned by `pcall`, as Redis 7.0 does), or no script running (raised
/// even by `pcall`).
enum Got {
    Reply(Reply, u8),
    BadArguments(&'static str),
    Hard(&'static str),
}

/// What `push_reply` left on the stack.
enum Pushed {
    /// The reply's value.
    Value,
    /// An error table (`hard`: raised even by `pcall`).
    Error { hard: bool },
    /// Nothing yet: the reply waits in `PENDING` for the converter.
    Pending,
}

/// Whether the value on top of the stack is an error table (`err` a string).
///
/// # Safety
/// As [`push_reply`]'s; the value is one the converter made (a table without a
/// metatable, so reading its field runs no metamethod). Leaves the stack as it was.
unsafe fn is_error_table(state: *mut ffi::lua_State) -> bool {
    if ffi::lua_type(state, -1) != ffi::LUA_TTABLE {
        return false;
    }
    ffi::lua_getfield(state, -1, c"err".as_ptr());
    let error = ffi::lua_type(state, -1) == ffi::LUA_TSTRING;
    ffi::lua_pop(state, 1);
    error
}

/// Read the command from the stack and run it.
///
/// # Safety
/// As [`call_from_lua`]'s; this calls no Lua function that can raise.
unsafe fn run_from_lua(state: *mut ffi::lua_State) -> Got {
    let n = ffi::lua_gettop(state);
    if n <= 0 {
        return Got::BadArguments(
            "ERR Please specify at least one argument for this redis lib call",
        );
    }
    let mut argv = Vec::with_capacity(n as usize);
    for i in 1..=n {
        match ffi::lua_type(state, i) {
            ffi::LUA_TSTRING => {
                let mut len = 0;
                let p = ffi::lua_tolstring(state, i, &mut len);
                argv.push(Bytes::copy_from_slice(std::slice::from_raw_parts(
                    p.cast::<u8>(),
                    len,
                )));
            }
            // `%.17g`, as Redis formats a number argument.
            ffi::LUA_TNUMBER => argv.push(Bytes::from(number_arg(ffi::lua_tonumber(state, i)))),
            _ => {
                return Got::BadArguments(
                    "ERR Lua redis lib command arguments must be strings or integers",
                )
            }
        }
    }
    RUNNING.with(|r| match r.borrow_mut().as_mut() {
        Some(run) => Got::Reply(execute(run, argv), run.resp),
        None => Got::Hard("ERR redis.call/pcall can only be called inside a script invocation"),
    })
}

/// Push what `got` stands for: the common single values directly (as their encoding
/// would decode; a status or error line with a newline is left to the converter,
/// whose encoder blanks it), anything else through the converter.
///
/// # Safety
/// As [`call_from_lua`]'s: at most two values are pushed, by calls that cannot raise
/// while two invariants hold (`engine::push_arrays` names them): no memory limit is
/// set on the interpreter, so mlua's allocator aborts rather than fail an
/// allocation; and no finalizer (`__gc`, which Lua 5.1 runs unprotected from any
/// allocating call) can raise. `reply`, which owns memory, is alive meanwhile, so a
/// raise here would skip its destructor: that is why both invariants matter.
unsafe fn push_reply(state: *mut ffi::lua_State, got: Got) -> Pushed {
    let (reply, resp) = match got {
        Got::Reply(reply, resp) => (reply, resp),
        Got::BadArguments(msg) => {
            push_error(state, msg.as_bytes());
            return Pushed::Error { hard: false };
        }
        Got::Hard(msg) => {
            push_error(state, msg.as_bytes());
            return Pushed::Error { hard: true };
        }
    };
    let plain = |s: &str| !s.bytes().any(|c| c == b'\r' || c == b'\n');
    match &reply {
        Reply::Status(s) if plain(s) => push_tagged(state, c"ok", s.as_bytes()),
        Reply::Error(s) if plain(s) => {
            push_command_error(state, s.as_bytes());
            return Pushed::Error { hard: false };
        }
        Reply::Int(n) => ffi::lua_pushnumber(state, *n as f64),
        Reply::Bulk(b) => {
            ffi::lua_pushlstring(state, b.as_ptr().cast(), b.len());
        }
        Reply::Null if resp == 2 => ffi::lua_pushboolean(state, 0),
        _ => {
            PENDING.with(|p| *p.borrow_mut() = Some((reply, resp)));
            return Pushed::Pending;
        }
    }
    Pushed::Value
}

/// Push `{err = <msg>}`.
///
/// # Safety
/// As [`push_reply`]'s.
unsafe fn push_error(state: *mut ffi::lua_State, msg: &[u8]) {
    push_tagged(state, c"err", msg)
}

/// Push the error table of a command's error reply: `{err = <msg>,
/// ignore_error_stats_update = true}`, as Redis 7.0's: the error was counted in the
/// error stats when the command failed, and the field says so to whoever looks.
///
/// # Safety
/// As [`push_reply`]'s.
unsafe fn push_command_error(state: *mut ffi::lua_State, msg: &[u8]) {
    push_tagged(state, c"err", msg);
    ffi::lua_pushboolean(state, 1);
    ffi::lua_setfield(state, -2, c"ignore_error_stats_update".as_ptr());
}

/// Push `{<field> = <text>}`.
///
/// # Safety
/// As [`push_reply`]'s.
unsafe fn push_tagged(state: *mut ffi::lua_State, field: &std::ffi::CStr, text: &[u8]) {
    ffi::lua_createtable(state, 0, 1);
    ffi::lua_pushlstring(state, text.as_ptr().cast(), text.len());
    ffi::lua_setfield(state, -2, field.as_ptr());
}

/// A Lua number as a command argument: C's `%.17g`, as Redis formats it.
pub fn number_arg(n: f64) -> String {
    format_g(n, 17)
}

/// C's `%.<digits>g` (Lua's own `tostring` is `%.14g`).
pub fn format_g(n: f64, digits: i32) -> String {
    if !n.is_finite() {
        // glibc prints a NaN's sign: Lua's 0/0 is "-nan" on x86, as in Redis.
        return if n.is_nan() {
            if n.is_sign_negative() { "-nan" } else { "nan" }.into()
        } else if n > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{n:.prec$e}", prec = (digits - 1) as usize);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..digits).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        let decimals = (digits - 1 - exp).max(0) as usize;
        trim(&format!("{n:.decimals$}"))
    }
}

/// Run one command of a script, as EXEC runs a queued command.
fn execute(run: &mut Running, argv: Vec<Bytes>) -> Reply {
    let mut rejected = None;
    let reply = execute_command(run, argv, &mut rejected);
    if reply.is_error() {
        with_shard(run, |s| {
            let stats = &mut s.stats;
            reply.each_uncounted_error(&mut |e| stats.record_error(e));
            if let Some(cmd) = rejected {
                stats.record_rejected(Some(cmd.name));
            }
        });
    }
    reply
}

/// The shard whose thread runs the script: where a `redis.call`'s error is counted
/// when it is made, as Redis counts it (the script may go on, or return it marked as
/// counted: `ignore_error_stats_update`), and its commands' slow log entries go.
fn with_shard(run: &Running, f: impl FnOnce(&mut Shard)) {
    match &run.target {
        Target::Direct { shard, .. } => {
            // SAFETY: as in `on_shard`: the job's shard, on its own thread, referenced
            // nowhere else while `execute` runs (the command that used it returned).
            f(unsafe { &mut **shard })
        }
        Target::Held { shards, .. } => {
            if let Ok(mut local) = shards.local.try_borrow_mut() {
                f(&mut local)
            }
        }
    }
}

/// `DEBUG SET-DISABLE-DENY-SCRIPTS 1`: scripts may call `no-script` commands (Redis's
/// tests use it to reach DEBUG from a script). Server-wide, off at start.
pub static NOSCRIPT_ALLOWED: AtomicBool = AtomicBool::new(false);

/// Run a script's command; `rejected` is set to a command refused before it ran
/// (its `rejected_calls`, as Redis's `scriptCall` counts them).
fn execute_command(
    run: &mut Running,
    argv: Vec<Bytes>,
    rejected: &mut Option<&'static Command>,
) -> Reply {
    let cmd: &'static Command = match admission::resolve(&argv) {
        Ok(cmd) => cmd,
        Err((_, Some(cmd))) if !cmd.arity_ok(argv.len()) => {
            *rejected = Some(cmd);
            return Reply::err("ERR Wrong number of args calling Redis command from script");
        }
        Err(_) => return Reply::err("ERR Unknown Redis command called from script"),
    };
    *rejected = Some(cmd);
    if cmd.has_flag(crate::commands::flag::NOSCRIPT) && !NOSCRIPT_ALLOWED.load(Ordering::Relaxed) {
        return Reply::err("ERR This Redis command is not allowed from script");
    }
    if let Some((user, info)) = &run.acl {
        if let Err(d) = crate::acl::check(user, cmd, &argv) {
            let object = d.object(cmd, &argv);
            let context = crate::acl::Context::Lua;
            let entry = crate::acl::entry(d, context, object, &user.name, info.clone());
            crate::acl::registry().log(entry);
            return Reply::error(format!(
                "ERR The user executing the script {}",
                d.script_text()
            ));
        }
        // SORT's BY and GET, as the caller's SORT (Redis's script client has the
        // caller's user).
        if let Some(e) = crate::acl::sort_refusal(user, cmd, &argv) {
            return Reply::err(e);
        }
    }
    // XREAD / XREADGROUP: a script may not ask to block (the other blocking commands
    // just do not block).
    if cmd
        .blocking
        .is_some_and(|b| b.timeout == crate::commands::TimeoutArg::BlockOption)
        && crate::runtime::blocking::may_block(cmd, &argv)
    {
        return Reply::error(format!(
            "ERR {} command is not allowed with BLOCK option from scripts",
            String::from_utf8_lossy(&argv[0])
        ));
    }
    if let Some(refusal) = run.cluster.as_mut().and_then(|c| c.refuse(cmd, &argv)) {
        return refusal;
    }
    // (Redis counts a command that may replicate, such as PFCOUNT, as a write here.)
    if run.read_only && (cmd.is_write() || cmd.has_trait(traits::MAY_REPLICATE)) {
        return Reply::err("ERR Write commands are not allowed from read-only scripts.");
    }
    if let Some(refused) = run.writes_refused.as_ref().filter(|_| cmd.is_write()) {
        return refused.clone();
    }
    if run.oom {
        if cmd.has_flag(crate::commands::flag::DENYOOM) {
            return Reply::err(crate::commands::errors::OOM);
        }
        // Once it has written it must be let finish (Redis cannot stop it midway).
        run.oom = !cmd.is_write();
    }
    *rejected = None;
    if run.tracker.is_some() && cmd.has_flag(crate::commands::flag::READONLY) {
        if let Some((id, keys)) = run.tracker.take() {
            crate::tracking::remember(id, keys.iter());
        }
    }
    let to = run.repl;
    crate::shard::propagation::with_targets(to, || match &run.target {
        Target::Direct { shard, slots } => {
            let (shard, slots) = (*shard, slots.clone());
            on_shard(run, shard, &slots, cmd, argv)
        }
        Target::Held { .. } => {
            if let Some(refused) = keep_to_keys(run, cmd, &argv) {
                return refused;
            }
            if cmd.is_write() && !mark_dirty(run.slot) {
                return killed_reply();
            }
            let start = std::time::Instant::now();
            let reply = held(run, cmd, argv.clone(), start);
            run.ran(cmd, &argv, start.elapsed().as_micros() as u64);
            reply
        }
    })
}

/// True if `cmd` changes something others can see (a write, a publish), so that a
/// script that ran it can no longer be run again elsewhere.
fn is_effect(cmd: &Command) -> bool {
    cmd.is_write()
        || cmd.has_flag(crate::commands::flag::PUBSUB)
        || cmd.has_flag(crate::commands::flag::MAY_REPLICATE)
}

/// The reply to a command of an abandoned run (see `Running::moving`): reads may go
/// on (thrown away), nothing may change.
fn while_moving(cmd: &Command) -> Reply {
    if is_effect(cmd) {
        Reply::err("ERR the script is moving to every shard")
    } else {
        Reply::Null
    }
}

/// A command that reaches beyond what the script holds: the run is abandoned (the
/// script runs again holding every shard) unless it has had an effect, when the
/// command is refused.
fn stray(run: &mut Running, what: &str) -> Reply {
    if run.had_effect {
        return Reply::error(format!(
            "ERR Script attempted to access {what} after writing: declare every key it \
             uses in KEYS, or give them one hash tag"
        ));
    }
    run.moving = true;
    Reply::err("ERR the script is moving to every shard")
}

/// The positions of `cmd`'s keys in `argv` if it is a keyed command that runs where
/// its keys live (not one spread over every shard, not one without keys).
fn command_keys(cmd: &Command, argv: &[Bytes]) -> Option<Vec<usize>> {
    let at = match cmd.exec {
        Exec::Shard(_) if cmd.spread.is_none() => cmd.key_indexes(argv),
        _ => return None,
    };
    (!at.is_empty()).then_some(at)
}

/// For a script with declared keys: notes whether `cmd` keeps to them
/// (a keyed command on declared keys only, or a connection command); and when the
/// script holds only those keys, the refusal of a command that does not.
fn keep_to_keys(run: &mut Running, cmd: &'static Command, argv: &[Bytes]) -> Option<Reply> {
    let keys = run.declared_keys.as_ref()?;
    let at = command_keys(cmd, argv);
    let fits = match &at {
        Some(at) => at.iter().all(|&i| keys.binary_search(&argv[i]).is_ok()),
        None => matches!(cmd.exec, Exec::Conn(_)),
    };
    run.kept &= fits;
    if !run.keyed {
        return None;
    }
    if run.moving {
        return Some(while_moving(cmd));
    }
    if !fits {
        run.strayed = true;
        let claimed = at.is_some_and(|at| claim_more(run, &at, argv));
        if !claimed {
            return Some(stray(run, "an undeclared key"));
        }
    }
    run.had_effect |= is_effect(cmd);
    None
}

/// A script holding its keys reached the keys at `at` in `argv` too: claim them where
/// that needs no wait (see `Tx::claim_more`). True if they are all held now.
fn claim_more(run: &mut Running, at: &[usize], argv: &[Bytes]) -> bool {
    let Target::Held { own: Some(tx), .. } = &mut run.target else {
        return false;
    };
    let wanted: Vec<Bytes> = at.iter().map(|&i| argv[i].clone()).collect();
    let by_shard = tx.shards.group_by_shard(wanted.iter().cloned(), |k| k);
    // (What one shard granted before another refused is released with the rest.)
    let held = by_shard
        .into_iter()
        .all(|(sid, keys)| tx.claim_more(sid, keys));
    if held {
        if let Some(keys) = run.declared_keys.as_mut() {
            keys.extend(wanted);
            keys.sort_unstable();
            keys.dedup();
        }
    }
    held
}

/// A command of a script running on one shard, with that shard in hand.
fn on_shard(
    run: &mut Running,
    shard: *mut Shard,
    slots: &SlotTable,
    cmd: &'static Command,
    argv: Vec<Bytes>,
) -> Reply {
    let effect = is_effect(cmd);
    if run.moving {
        return while_moving(cmd);
    }
    let here = match command_keys(cmd, &argv) {
        Some(at) => {
            // SAFETY: see the dereference below; only the shard's id is read here.
            let sid = unsafe { (*shard).id };
            at.iter().all(|&i| slots.shard_of(&argv[i]) == sid)
        }
        None => matches!(cmd.exec, Exec::Conn(_)),
    };
    if !here {
        run.stayed = false;
        return stray(run, "a key on another shard");
    }
    if effect {
        if !mark_dirty(run.slot) {
            return killed_reply();
        }
        run.had_effect = true;
    }
    match cmd.exec {
        Exec::Shard(_) => {
            // SAFETY: `shard` was made by `advance` from the `&mut Shard` its job
            // holds, and stays valid until that function returns. That reference is
            // not used while the script's slice runs (the job waits in `resume` on
            // this same thread, which is the only one that touches the shard); the
            // pointer leaves `RUNNING` (the `Clear` guard, even on unwinding) before
            // the job uses `s` again, and a suspended script's next slice gets the
            // next job's shard; and `execute` is never re-entered (a script cannot
            // run EVAL). So this is the only reference to the shard while it lives.
            let s = unsafe { &mut *shard };
            crate::tracking::set_writer(run.client_id);
            let (reply, us) = as_script_call(|| {
                crate::runtime::call::call_queued(s, cmd, run.db, &argv, run.no_touch, run.now_ms)
            });
            crate::tracking::set_writer(0);
            run.ran(cmd, &argv, us);
            reply
        }
        Exec::Conn(f) => {
            let id = run.client_id;
            let c = run
                .stand_in
                .get_or_insert_with(|| Box::new(Client::detached(id)));
            c.db = run.db;
            let start = std::time::Instant::now();
            let reply = f(c, &argv);
            run.db = c.db;
            run.ran(cmd, &argv, start.elapsed().as_micros() as u64);
            reply
        }
        _ => errors::syntax(),
    }
}

/// A script's command's answer from the shard that ran it. One from another core's
/// shard is awaited by the script's task where its run can wait so (see `slices`),
/// the core serving its other clients meanwhile, with the propagation targets of
/// their commands, not this script's (`redis.set_repl`); otherwise, and if the run is
/// dropped meanwhile, this thread waits for it ([`Answer::wait`]).
fn answer_of(answer: Answer<Reply>) -> Reply {
    let Answer::Remote(rx) = answer else {
        return answer.wait();
    };
    let waiting = rx.clone();
    let got = crate::shard::propagation::with_targets(crate::shard::propagation::TO_ALL, || {
        slices::suspend_until(move || waiting.into_recv_async())
    });
    match got {
        Some(Ok(reply)) => reply,
        _ => Answer::Remote(rx).wait(),
    }
}

/// A command of a script holding every shard, started at `start` (its stats' time).
fn held(
    run: &mut Running,
    cmd: &'static Command,
    argv: Vec<Bytes>,
    start: std::time::Instant,
) -> Reply {
    let Target::Held { shards: t, .. } = &run.target else {
        return errors::syntax();
    };
    let Some(client) = run.client.clone() else {
        return errors::syntax();
    };
    // The shards a keyed command reaches: where it runs, and whether the script stayed
    // on its declared keys' shard.
    let target = match cmd.exec {
        Exec::Shard(_) => transaction::shards_of(t, cmd, &argv),
        _ => None,
    };
    let stays = match cmd.exec {
        Exec::Shard(_) => {
            cmd.spread.is_none()
                && target
                    .as_ref()
                    .is_some_and(|v| !v.is_empty() && v.iter().all(|&s| Some(s) == run.declared))
        }
        Exec::Conn(_) => true,
        _ => false,
    };
    run.stayed &= stays;
    let reply = match cmd.exec {
        Exec::Shard(_) => {
            let (db, no_touch, id, now) = (run.db, run.no_touch, run.client_id, run.now_ms);
            // A SORT whose patterns name keys of other shards: its own path, over the
            // shards this script holds (all of them: such a command never keeps a
            // script on one shard or on its keys).
            if let Some(spread) = cmd.spread_over(t, &argv) {
                let f = (spread.run)(t, cmd, db, &argv);
                let reply = as_script_call(|| {
                    crate::clock::frozen_at(now, || crate::runtime::hop::block_serving(f))
                });
                crate::runtime::call::record_stats(&mut t.local.borrow_mut(), cmd, start, &reply);
                return reply;
            }
            match target {
                Some(v) if v.len() > 1 => {
                    let f = multishard::run(t, cmd, db, &argv, no_touch, id, Some(now));
                    return crate::runtime::hop::block_serving(f);
                }
                v => {
                    let sid = v.and_then(|v| v.first().copied()).unwrap_or(t.local_id);
                    // `redis.set_repl` reaches the shard that runs the command.
                    let to = run.repl;
                    let job = move |s: &mut Shard| {
                        crate::shard::propagation::with_targets(to, || {
                            as_script_call(|| {
                                transaction::run_in_tx(s, db, cmd, argv, no_touch, id, now)
                            })
                        })
                    };
                    return answer_of(t.send_or_local(sid, job));
                }
            }
        }
        Exec::Conn(f) => {
            let mut c = client.borrow_mut();
            c.db = run.db;
            let reply = f(&mut c, &argv);
            if cmd.has_trait(traits::SELECTS_DB) {
                run.db = c.db;
            }
            reply
        }
        Exec::Server(f) => {
            let now = run.now_ms;
            let reply = crate::clock::frozen_at(now, || {
                crate::runtime::hop::block_serving(f(&client, t, &argv))
            });
            if cmd.is_write() && !reply.is_error() && crate::runtime::call::propagating(&t.server) {
                let all: Vec<usize> = (0..t.count()).collect();
                let effect = Effect {
                    db: run.db,
                    argv: argv.clone(),
                    to: run.repl,
                };
                if let Some(log) = &t.tx_log {
                    log.push(&all, [effect]);
                }
            }
            reply
        }
        Exec::Container => errors::syntax(),
    };
    crate::runtime::call::record_stats(&mut t.local.borrow_mut(), cmd, start, &reply);
    reply
}

#[cfg(test)]
mod tests {
    use super::{
        convert, ffi, is_error_table, number_arg, push_reply, Got, Pushed, Reply, PENDING,
    };
    use bytes::Bytes;

    /// What `redis.call` pushes itself is what the general conversion makes.
    #[test]
    fn replies_pushed_directly_match_the_general_conversion() {
        let lua = mlua::Lua::new();
        let cases = [
            Reply::ok(),
            Reply::status("QUEUED"),
            Reply::Status("a\r\nb".into()),
            Reply::err("ERR x"),
            Reply::Error("ERR a\nb".into()),
            Reply::ErrorBytes(Bytes::from_static(b"ERR raw")),
            Reply::Int(-7),
            Reply::Int(i64::MAX),
            Reply::Bulk(Bytes::from_static(b"a\r\nb")),
            Reply::Bulk(Bytes::new()),
            Reply::Null,
            Reply::Array(vec![Reply::Int(1), Reply::Null]),
        ];
        for resp in [2, 3] {
            for r in &cases {
                let mut pushed = None;
                // SAFETY: the closure runs as a C function under exec_raw, with its
                // LUA_MINSTACK slots; push_reply pushes at most one value (a table
                // takes two slots while it is filled) and raises nothing.
                let direct: mlua::Value = unsafe {
                    lua.exec_raw((), |state| {
                        pushed = Some(push_reply(state, Got::Reply(r.clone(), resp)));
                        if matches!(pushed, Some(Pushed::Pending)) {
                            ffi::lua_pushnil(state);
                        }
                    })
                }
                .unwrap();
                let general = convert::reply_to_lua(&lua, r, resp).unwrap();
                let is_error = matches!(r, Reply::Error(_) | Reply::ErrorBytes(_));
                match pushed.unwrap() {
                    Pushed::Pending => {
                        // Left to the converter, which raises what converts to an
                        // error table.
                        let (left, _) = PENDING.with(|p| p.borrow_mut().take()).unwrap();
                        assert_eq!(&left, r);
                        // SAFETY: as above; the converter's table is pushed and
                        // popped again around the check.
                        let error: bool = unsafe {
                            let mut error = false;
                            lua.exec_raw::<()>(&general, |state| error = is_error_table(state))
                                .unwrap();
                            error
                        };
                        assert_eq!(error, is_error, "{r:?}");
                    }
                    Pushed::Error { hard } => {
                        assert!(is_error && !hard, "{r:?}");
                        assert_eq!(
                            convert::lua_to_reply(&direct, resp),
                            convert::lua_to_reply(&general, resp),
                            "{r:?} in RESP{resp}"
                        );
                    }
                    Pushed::Value => {
                        assert_eq!(
                            convert::lua_to_reply(&direct, resp),
                            convert::lua_to_reply(&general, resp),
                            "{r:?} in RESP{resp}"
                        );
                        // (Lua 5.1 has one number type; mlua reads an integral one
                        // off the stack as an Integer.)
                        let lua_type = |v: &mlua::Value| match v.type_name() {
                            "integer" => "number",
                            other => other,
                        };
                        assert_eq!(lua_type(&direct), lua_type(&general), "{r:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn numbers_are_formatted_as_printf_17g() {
        for (n, want) in [
            (3.0, "3"),
            (3.5, "3.5"),
            (0.1, "0.10000000000000001"),
            (100.0, "100"),
            (1e17, "1e+17"),
            (1e16, "10000000000000000"),
            (-2.5e-5, "-2.5000000000000001e-05"),
            (0.0001, "0.0001"),
            (1.0 / 3.0, "0.33333333333333331"),
        ] {
            assert_eq!(number_arg(n), want, "{n}");
        }
        assert_eq!(number_arg(f64::NAN), "nan");
        assert_eq!(number_arg(-f64::NAN), "-nan");
        assert_eq!(super::format_g(0.1, 14), "0.1");
        assert_eq!(super::format_g(1e15, 14), "1e+15");
    }
}
