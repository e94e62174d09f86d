//! Sentinel mode: `shardis sentinel.conf --sentinel`, the same process as a data server
//! with another command set, watching masters and failing them over as redis-sentinel
//! 7.0 does, so it can stand in a quorum beside real redis-sentinel processes.
//!
//! # The plan
//!
//! **What runs where.** Sentinel mode runs the ordinary runtime with one core (a
//! Sentinel is a control plane: a few links per instance, a timer every 100 ms) and no
//! persistence. Clients connect as to any Shardis, but the command table holds only
//! what redis-sentinel serves (`commands::sentinel`): SENTINEL, and PING, INFO, ROLE,
//! CLIENT, AUTH, HELLO, ACL, COMMAND, SHUTDOWN and Pub/Sub, where INFO, ROLE and
//! PUBLISH answer as a Sentinel does. Events go out on the Sentinel's own Pub/Sub
//! (`+sdown`, `+switch-master` ...) through the runtime's ordinary PUBLISH, so a
//! client subscribed to `+switch-master` or `*` gets them as from redis-sentinel.
//!
//! **State.** Everything the Sentinel knows is one [`State`] behind one mutex:
//! [`Globals`] (our id, the current epoch, the timing parameters, announce options,
//! TILT) and the monitored [`instance::Master`]s, each with its replicas and the other
//! Sentinels that watch it. Three kinds of step change it, each under the lock and
//! none waiting on the network while holding it: the timer's tick (`monitor::tick`),
//! a reply arriving on a link (`link`), and a SENTINEL command. A step does not act on
//! the outside world itself: it records [`Effects`] (events to publish and log, links
//! to open, a config file to rewrite, scripts to run) that [`with`] carries out once
//! the lock is released. Commands to instances go into the link's queue under the lock
//! (a non-blocking send), so their order is the order the steps decided them.
//!
//! **Links.** Each master and replica has a command link and a Pub/Sub link (listening
//! on `__sentinel__:hello`); each other Sentinel a command link. A link is a task on
//! the Sentinel's core that owns the socket and a queue; the instance holds the
//! queue's sending end. Dropping that end closes the link; a link that fails clears
//! itself from the instance (if the instance still holds that link: each has an id),
//! and the next tick reconnects it. Replies are matched to the commands in order, as
//! hiredis's callbacks are, and each is handed to the rule that asked for it.
//!
//! **The algorithm is Redis's** (`sentinel.c`), step for step, because other
//! Sentinels rely on its timing and its replies: PING every second, INFO every 10
//! seconds (every second for replicas of a master in failover), a hello every 2
//! seconds to each master, replica and Sentinel (`ip,port,runid,epoch,name,ip,port,
//! config-epoch`); SDOWN after `down-after-milliseconds` without a valid reply; ODOWN
//! when `quorum` Sentinels (us included) say SDOWN through `SENTINEL
//! is-master-down-by-addr`; a failover starts at a new epoch, asks the others for
//! their vote with the same command, and goes on only with a majority of all known
//! Sentinels and at least `quorum` votes; each Sentinel votes once per epoch. The
//! replica to promote is chosen by priority, then replication offset, then run id;
//! it gets `MULTI / SLAVEOF NO ONE / CONFIG REWRITE / CLIENT KILL ... / EXEC`, the
//! others the same with the new address, `parallel-syncs` at a time; the new
//! configuration epoch reaches the other Sentinels in hellos, and every Sentinel that
//! sees a higher epoch switches to the new master. The timing constants are
//! Redis's and `SENTINEL DEBUG` changes them, as in Redis.
//!
//! **Config file.** The state that must survive a restart (our id, epochs, known
//! replicas and Sentinels) is written back to the config file after each change, in
//! Redis's `sentinel ...` lines, so redis-sentinel can read a Shardis Sentinel's file
//! and the other way round.

pub mod config;
pub mod failover;
pub mod instance;
pub mod link;
pub mod monitor;
pub mod scripts;

use crate::clock::now_ms;
use crate::runtime::Shards;
use bytes::Bytes;
use instance::{Instance, Master};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The Pub/Sub channel of hello messages.
pub const HELLO_CHANNEL: &str = "__sentinel__:hello";
/// Sentinel's default port.
pub const DEFAULT_PORT: u16 = 26379;
/// How far apart Sentinels start their failovers, at most (ms).
pub const MAX_DESYNC: u64 = 1000;
/// No more commands are queued on a link with this many unanswered.
pub const MAX_PENDING_COMMANDS: i64 = 100;

static MODE: AtomicBool = AtomicBool::new(false);

/// True when this process runs as a Sentinel.
pub fn enabled() -> bool {
    MODE.load(Ordering::Relaxed)
}

/// Enter sentinel mode: called once, before the configuration is read.
pub fn enable() {
    MODE.store(true, Ordering::Relaxed);
}

/// True if the command line asks for sentinel mode (`--sentinel` anywhere, or a
/// binary named like `redis-sentinel`), as redis-server's `checkForSentinelMode`.
pub fn requested(exe: &str, args: &[String]) -> bool {
    exe.rsplit('/')
        .next()
        .is_some_and(|n| n.contains("sentinel"))
        || args.iter().any(|a| a == "--sentinel")
}

/// Timing parameters in ms, Redis's defaults; SENTINEL DEBUG changes them.
#[derive(Clone, Debug)]
pub struct Timing {
    pub info_period: u64,
    pub ping_period: u64,
    pub ask_period: u64,
    pub publish_period: u64,
    pub default_down_after: u64,
    pub default_failover_timeout: u64,
    pub tilt_trigger: u64,
    pub tilt_period: u64,
    pub slave_reconf_timeout: u64,
    pub min_link_reconnect_period: u64,
    pub election_timeout: u64,
    pub script_max_runtime: u64,
    pub script_retry_delay: u64,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            info_period: 10_000,
            ping_period: 1000,
            ask_period: 1000,
            publish_period: 2000,
            default_down_after: 30_000,
            default_failover_timeout: 180_000,
            tilt_trigger: 2000,
            tilt_period: 30_000,
            slave_reconf_timeout: 10_000,
            min_link_reconnect_period: 15_000,
            election_timeout: 10_000,
            script_max_runtime: 60_000,
            script_retry_delay: 30_000,
        }
    }
}

impl Timing {
    /// `SENTINEL DEBUG`'s names, in its order, with a handle on each field.
    pub fn fields(&mut self) -> [(&'static str, &mut u64); 13] {
        [
            ("info-period", &mut self.info_period),
            ("ping-period", &mut self.ping_period),
            ("ask-period", &mut self.ask_period),
            ("publish-period", &mut self.publish_period),
            ("default-down-after", &mut self.default_down_after),
            (
                "default-failover-timeout",
                &mut self.default_failover_timeout,
            ),
            ("tilt-trigger", &mut self.tilt_trigger),
            ("tilt-period", &mut self.tilt_period),
            ("slave-reconf-timeout", &mut self.slave_reconf_timeout),
            (
                "min-link-reconnect-period",
                &mut self.min_link_reconnect_period,
            ),
            ("election-timeout", &mut self.election_timeout),
            ("script-max-runtime", &mut self.script_max_runtime),
            ("script-retry-delay", &mut self.script_retry_delay),
        ]
    }
}

/// What the Sentinel knows besides its masters.
pub struct Globals {
    pub myid: String,
    pub current_epoch: u64,
    pub timing: Timing,
    pub announce_ip: String,
    pub announce_port: u16,
    pub announce_hostnames: bool,
    pub resolve_hostnames: bool,
    pub deny_scripts_reconfig: bool,
    pub sentinel_user: String,
    pub sentinel_pass: String,
    /// `requirepass`: used to authenticate to other Sentinels without `sentinel-pass`.
    pub requirepass: Option<String>,
    /// The port hellos announce.
    pub port: u16,
    pub tilt: bool,
    pub tilt_start: u64,
    pub previous_time: u64,
    /// SENTINEL SIMULATE-FAILURE flags: 1 crash after election, 2 after promotion.
    pub simfailure: u8,
    pub next_link_id: u64,
    pub config_file: String,
}

/// How important an event is: what Redis logs it at. Debug events are only logged,
/// Warning events also run the master's notification script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Verbose,
    Notice,
    Warning,
}

/// What a step decided to do once the lock is released.
#[derive(Default)]
pub struct Effects {
    /// (channel, message) to publish, in order.
    pub events: Vec<(String, String)>,
    pub connect: Vec<link::Connect>,
    pub flush_config: bool,
    pub scripts: Vec<Vec<String>>,
    /// SIMULATE-FAILURE: exit once the step's effects are out.
    pub crash: bool,
}

impl Effects {
    /// Log, publish and (for warnings) notify: Redis's `sentinelEvent`. `script` is the
    /// master's notification script, when the event concerns an instance.
    pub fn event(&mut self, level: Level, kind: &str, msg: String, script: Option<&String>) {
        match level {
            Level::Warning => crate::log::warning(&format!("{kind} {msg}")),
            Level::Notice => crate::log::log(&format!("{kind} {msg}")),
            _ => {}
        }
        if level != Level::Debug {
            self.events.push((kind.to_string(), msg.clone()));
        }
        if level == Level::Warning {
            if let Some(path) = script {
                self.scripts.push(vec![path.clone(), kind.to_string(), msg]);
            }
        }
    }
}

/// The Sentinel's whole state (see the module doc).
pub struct State {
    pub g: Globals,
    pub masters: BTreeMap<String, Master>,
    pub fx: Effects,
    pub scripts: scripts::Queue,
}

/// `<type> <name> <ip> <port>`, and for a replica or Sentinel ` @ <master> <ip> <port>`:
/// how events name an instance (Redis's `%@`).
pub fn describe(g: &Globals, m: &Master, i: Option<&Instance>) -> String {
    let mi = &m.inst;
    let own = |x: &Instance| {
        format!(
            "{} {} {} {}",
            x.kind.word(),
            x.name,
            x.addr.announced(g.announce_hostnames),
            x.addr.port
        )
    };
    match i {
        None => own(mi),
        Some(x) => format!(
            "{} @ {} {} {}",
            own(x),
            mi.name,
            mi.addr.announced(g.announce_hostnames),
            mi.addr.port
        ),
    }
}

/// Raise an event about master `m` (or one of its instances).
pub fn event(
    g: &Globals,
    fx: &mut Effects,
    level: Level,
    kind: &str,
    m: &Master,
    i: Option<&Instance>,
    tail: &str,
) {
    let mut msg = describe(g, m, i);
    msg.push_str(tail);
    fx.event(level, kind, msg, m.notification_script.as_ref());
}

/// Raise an event about the replica of `m` at `key`.
pub fn replica_event(
    g: &Globals,
    fx: &mut Effects,
    level: Level,
    kind: &str,
    m: &Master,
    key: &str,
) {
    event(g, fx, level, kind, m, m.replicas.get(key), "");
}

static SENTINEL: OnceLock<Mutex<State>> = OnceLock::new();

fn lock() -> Option<MutexGuard<'static, State>> {
    SENTINEL
        .get()
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Run one step on the state, then carry out its effects (see the module doc). None
/// if this process is not a Sentinel.
pub fn with<R>(shards: &Shards, f: impl FnOnce(&mut State) -> R) -> Option<R> {
    let (r, fx, flush) = {
        let mut st = lock()?;
        let r = f(&mut st);
        let fx = std::mem::take(&mut st.fx);
        let flush = fx.flush_config.then(|| config::render_file(&st));
        for argv in &fx.scripts {
            st.scripts.schedule(argv.clone());
        }
        (r, fx, flush)
    };
    if let Some((path, text)) = flush {
        if let Err(e) = config::write_file(&path, &text) {
            crate::log::warning(&format!(
                "WARNING: Sentinel was not able to save the new configuration on disk!!!: {e}"
            ));
        }
    }
    for (channel, msg) in fx.events {
        crate::runtime::pubsub::publish(
            shards,
            crate::client::Subscription::Channel,
            &Bytes::from(channel),
            &Bytes::from(msg),
        );
    }
    for c in fx.connect {
        link::spawn(shards.detached(), c);
    }
    if fx.crash {
        crate::log::warning("Sentinel CRASH because of SENTINEL simulate-failure");
        crate::runtime::backend::exit(99);
    }
    Some(r)
}

/// Read-only access for replies that change nothing (SENTINEL MASTERS, INFO).
pub fn read<R>(f: impl FnOnce(&State) -> R) -> Option<R> {
    lock().map(|st| f(&st))
}

/// Build the Sentinel from the configuration's `sentinel` lines: the errors are
/// reported as the config loader reports a bad line. Called once, before the runtime.
pub fn init(cfg: &crate::config::Config) -> Result<(), String> {
    let Some(file) = cfg.config_file.clone() else {
        return Err("Sentinel needs config file on disk to save state. Exiting...".into());
    };
    if let Err(e) = std::fs::OpenOptions::new().append(true).open(&file) {
        return Err(format!(
            "Sentinel config file {file} is not writable: {e}. Exiting..."
        ));
    }
    let now = now_ms();
    let mut st = State {
        g: Globals {
            myid: String::new(),
            current_epoch: 0,
            timing: Timing::default(),
            announce_ip: String::new(),
            announce_port: 0,
            announce_hostnames: false,
            resolve_hostnames: false,
            deny_scripts_reconfig: true,
            sentinel_user: String::new(),
            sentinel_pass: String::new(),
            requirepass: cfg.requirepass.clone(),
            port: cfg.port,
            tilt: false,
            tilt_start: 0,
            previous_time: now,
            simfailure: 0,
            next_link_id: 1,
            config_file: file,
        },
        masters: BTreeMap::new(),
        fx: Effects::default(),
        scripts: scripts::Queue::default(),
    };
    config::load(&mut st, &cfg.sentinel_lines)?;
    if st.g.myid.is_empty() {
        st.g.myid = (0..40)
            .map(|_| format!("{:x}", rand::random::<u8>() & 15))
            .collect();
    }
    SENTINEL
        .set(Mutex::new(st))
        .map_err(|_| "Sentinel started twice".to_string())
}

/// Started on the Sentinel's core: save the configuration (with our id), announce the
/// masters, then run the timer for as long as the process lives.
pub async fn run(shards: Rc<Shards>) {
    with(&shards, |st| {
        crate::log::log("Sentinel new configuration saved on disk");
        crate::log::warning(&format!("Sentinel ID is {}", st.g.myid));
        st.fx.flush_config = true;
        let State { g, masters, fx, .. } = st;
        for m in masters.values() {
            event(
                g,
                fx,
                Level::Warning,
                "+monitor",
                m,
                None,
                &format!(" quorum {}", m.quorum),
            );
        }
    });
    loop {
        // Redis runs the Sentinel timer at a random hz of 10..19, so that Sentinels
        // started together do not act in lockstep.
        let period = 1000 / (10 + rand::random::<u64>() % 10);
        crate::runtime::backend::sleep(std::time::Duration::from_millis(period)).await;
        with(&shards, |st| {
            let now = now_ms();
            monitor::tick(st, now);
            scripts::run_due(st, now);
        });
    }
}
