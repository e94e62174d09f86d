//! The runtime: one executor per shard, accepting on the shared port.
//!
//! The parts of a request's way through a core, in order: [`connection`] (read, parse,
//! write), [`admission`] (may it run now), [`dispatch`] (route and batch by shard),
//! [`call`] (run it on its shard: WATCH, propagation, stats), [`multishard`] and
//! [`transaction`] (work over several shards, atomically), [`blocking`], [`pause`]
//! (CLIENT PAUSE: commands held at admission until the pause ends).
//!
//! The runtime sits below persistence: it never names it. What a request needs of
//! durability (MISCONF, replies held until the AOF has them, the cron's part) it asks
//! through the [`durability`] hooks installed in [`ServerInfo`]; the orchestration
//! (what is loaded at start, the save and rewrite tasks, signals, shutdown) is
//! `crate::server`'s, which hands [`run`] a hook that starts each shard's tasks.
//!
//! The event loop is [`backend`]'s (io_uring via glommio, or our epoll executor): the
//! rest of the runtime, `crate::server` and persistence's background tasks spawn, time
//! and do socket I/O only through it. Start-up ([`run`]): choose the backend (option
//! `runtime`), build the slot table, start `threads` executors (pinned to the allowed
//! cores or not: [`pinned_cores`]), each with its shard, its inbox loop, its cron, the
//! caller's start hook, and a listener on every `bind` address (SO_REUSEADDR and
//! SO_REUSEPORT: the kernel spreads connections over the cores; [`listen`]). Before
//! any core binds, each address is bound once without SO_REUSEPORT, so that a port
//! another server listens on stops the start as it stops Redis's, instead of being
//! shared with it.

pub mod admission;
pub mod backend;
pub mod blocking;
pub mod call;
pub mod client_eviction;
pub mod clients;
pub mod connection;
pub mod dispatch;
pub mod durability;
pub mod hop;
pub mod listen;
pub mod monitor;
pub mod multishard;
pub mod open_files;
pub mod output;
pub mod pause;
pub mod pubsub;
pub mod slots;
pub mod sort;
pub mod tracking;
pub mod transaction;

pub use hop::{ServerInfo, Shards};

use crate::log::log;
use crate::shard::{expire, Shard};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest uninterrupted stretch of active expiry.
const EXPIRE_SLICE: Duration = Duration::from_millis(1);
/// Pause between slices, during which connections are served.
const EXPIRE_PAUSE: Duration = Duration::from_micros(200);

/// The core each shard is pinned to, by the `pin-threads` option; None: not pinned.
///
/// `yes` pins shard `i` to the `i`-th allowed core, when there are enough of them.
/// `auto` (the default) does so only when some allowed core is left without a shard
/// and no CPU quota (`quota`) caps the process below its cores (it then gets CPU time
/// on every core, shared with whatever else runs there, not cores of its own):
/// a pinned shard cannot move off a core that something else (a client on the same
/// machine, a snapshot, the AOF's fsync thread) also needs, even while another core is
/// idle. With a shard on every core, whatever else runs shares a shard's core; then the
/// kernel places the shards better than fixed cores do. Measured on 2 vCPUs with
/// redis-benchmark beside 2 shards (benches/README.md, "Pinned or not"), unpinned
/// shards served unpipelined GETs 7-29% faster on epoll and 17-22% on io_uring, at
/// 13-17% less CPU per request, and PING 28-48% faster on epoll; pipelined loads moved
/// within the rounds' noise.
fn pinned_cores(
    option: &str,
    nshards: usize,
    cores: &[core_affinity::CoreId],
    quota: bool,
) -> Option<Vec<usize>> {
    let pin = match option {
        "yes" => nshards <= cores.len(),
        "no" => false,
        _ => nshards < cores.len() && !quota,
    };
    pin.then(|| cores[..nshards].iter().map(|c| c.id).collect())
}

/// Start all shards and block until they exit (SHUTDOWN or a signal ends the process).
/// `on_start` runs on each shard's thread once its shard, inbox loop and cron are up,
/// before it accepts connections: where the caller starts the shard's other tasks.
pub fn run<F>(server: Arc<ServerInfo>, on_start: F) -> Result<(), String>
where
    F: Fn(Rc<Shards>) + Send + Sync + 'static,
{
    let config = server.config.clone();
    let cfg = config.current();
    let (kind, why) = backend::choose(cfg.get("runtime").unwrap_or("auto"))?;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let ncores = cores.len().max(1);
    // The CPU time the process may use, in CPUs: fewer than its cores under a cgroup
    // CPU quota (`docker run --cpus`, a Kubernetes CPU limit), which std reads. One
    // shard per core there would have the kernel throttle them all in turn.
    let cpus = std::thread::available_parallelism()
        .map_or(ncores, |n| n.get())
        .min(ncores);
    let nshards = if cfg.threads == 0 { cpus } else { cfg.threads };
    let maxclients = open_files::at_start(cfg.maxclients, nshards)?;
    if maxclients != cfg.maxclients {
        config.update(|c| c.set_option("maxclients", &maxclients.to_string()))?;
    }
    let slots = Arc::new(slots::SlotTable::new(nshards));
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..nshards).map(|_| flume::unbounded::<hop::Job>()).unzip();
    let inboxes = Arc::new(senders);
    let quiet: hop::QuietFlags = Arc::new((0..nshards).map(|_| AtomicBool::new(true)).collect());
    let on_start = Arc::new(on_start);
    let quota = cpus < ncores;
    let quota_text = if quota {
        format!(" with a CPU quota of {cpus}")
    } else {
        String::new()
    };
    log(&format!(
        "Shardis {} starting: {} shard(s) on {} core(s){quota_text}, port {}, {} event loop ({why})",
        env!("CARGO_PKG_VERSION"),
        nshards,
        ncores,
        cfg.port,
        kind.name(),
    ));
    let pin = cfg.get("pin-threads").unwrap_or("auto");
    let pins = pinned_cores(pin, nshards, &cores, quota);
    log(&match &pins {
        Some(_) => "Shards pinned one per core".to_string(),
        None => "Shards not pinned: the kernel places them".to_string(),
    });
    let addrs = Arc::new(listen::addresses(&cfg, true)?);
    let unix = listen::unix_socket(&cfg)?.map(Arc::new);
    if addrs.is_empty() && unix.is_none() {
        return Err("Configured to not listen anywhere, exiting.".into());
    }
    let mut handles = Vec::new();
    for (id, inbox) in receivers.into_iter().enumerate() {
        let core = pins.as_ref().map(|p| p[id]);
        let (inboxes, slots, server, config, on_start, addrs, unix) = (
            inboxes.clone(),
            slots.clone(),
            server.clone(),
            config.clone(),
            on_start.clone(),
            addrs.clone(),
            unix.clone(),
        );
        let quiet = quiet.clone();
        let h = backend::start(kind, &format!("shard-{id}"), core, move || async move {
            let shard = Rc::new(RefCell::new(Shard::new(id, nshards, config)));
            refresh_config(&mut shard.borrow_mut());
            let shards = Rc::new(Shards::new(
                id,
                shard.clone(),
                inboxes,
                slots,
                server.clone(),
                quiet.clone(),
            ));
            // The claims granted on this shard: the idle loop watches while any is.
            let held = Arc::new(AtomicUsize::new(0));
            backend::set_spin_hint(held.clone());
            shard.borrow_mut().intents.set_hint(held);
            shard.borrow_mut().intents.publish_to(quiet, id);
            pubsub::install(&shards);
            backend::spawn(hop::serve_inbox(shard.clone(), inbox)).detach();
            backend::spawn(cron(shard.clone(), server)).detach();
            connection::install(&shards);
            on_start(shards.clone());
            listen::accept_loop(shards, addrs, unix).await
        })
        .map_err(|e| format!("cannot start shard {id}: {e}"))?;
        handles.push(h);
    }
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(format!("shard failed: {e}")),
        }
    }
    Ok(())
}

/// Periodic shard work, `hz` times a second: active expiry (skipped while CLIENT PAUSE
/// holds expiry, see `pause`), incremental rehash, config refresh, the clients' output
/// buffer limits (`output::cron`).
async fn cron(shard: Rc<RefCell<Shard>>, server: Arc<ServerInfo>) {
    let mut tidy = Tidy::default();
    let mut tick = std::time::Instant::now();
    loop {
        let period = cron_period(&shard.borrow().config);
        // An idle shard (see `idle`) sleeps IDLE_PERIODS periods: each wake-up of a
        // core costs CPU (about 0.2 ms with glommio's park: ~9 io_uring_enter), and an
        // idle server should cost what an idle Redis costs. Shard 0 keeps `hz` (it also
        // checks the save points and refreshes the LRU clock). What an idle shard
        // delays: the cron's retry of a deferred blocked-client serve (see
        // `blocking::serve_ready`); a key given a TTL wakes it (`nudge_idle_cron`).
        // Ticks come every period, as Redis's timer: the time the last tick's work took
        // (expiry may take most of a period) is not added to it.
        let idle = idle(&shard.borrow());
        let wait = if idle { period * IDLE_PERIODS } else { period };
        let sleep = crate::runtime::backend::sleep(wait.saturating_sub(tick.elapsed()));
        if idle {
            // A key given a TTL meanwhile ends the long sleep (`nudge_idle_cron`).
            futures_lite::future::or(sleep, IdleSleep { armed: false }).await;
            IDLE_CRON.take();
        } else {
            sleep.await;
        }
        tick = std::time::Instant::now();
        refresh_config(&mut shard.borrow_mut());
        sample_rates(&mut shard.borrow_mut(), &server);
        output::cron();
        client_eviction::cron(&shard);
        tidy.tick(shard.borrow().stats.commands_processed);
        crate::storage::db::refresh_lru_clock();
        // Redis spends up to 25% of a cron period (more with `active-expire-effort`)
        // on the slow expire cycle in one go; we spend the same budget in slices of at
        // most EXPIRE_SLICE, letting the connections run between slices, so reclaiming
        // a mass of expired keys never stalls the shard for more than a slice. When
        // the budget runs out with expired keys still found, Redis runs its fast cycle
        // before each sleep of its event loop: `fast_duration` of work at most every
        // two `fast_duration`s, while cycles keep running out of time; so do we, until
        // the next tick's slow cycle (`expire::Effort`).
        let effort = expire::Effort::of(shard.borrow().config.get_int("active-expire-effort"));
        let budget = period * effort.time_perc / 100;
        let started = std::time::Instant::now();
        let mut fast = false;
        loop {
            let slice = if fast {
                effort.fast_duration
            } else {
                EXPIRE_SLICE.min(budget)
            };
            let capped = {
                let mut s = shard.borrow_mut();
                let before = s.expire.time_cap_reached;
                let slice_started = std::time::Instant::now();
                expire::active_expire_cycle(&mut s, crate::clock::now_ms(), effort, slice);
                let us = slice_started.elapsed().as_micros() as u64;
                s.stats.expire_cycle_us += us;
                let ms = us / 1000;
                let threshold = s.config.latency_monitor_threshold;
                s.latency.add_if_needed(threshold, "expire-cycle", ms);
                pubsub::publish_events(crate::notify::take());
                // A stream that expired ends its group readers' wait.
                crate::runtime::blocking::after_command(&mut s);
                s.expire.time_cap_reached != before
            };
            if !capped {
                break;
            }
            fast |= started.elapsed() >= budget;
            if fast && started.elapsed() + effort.fast_duration * 2 > period {
                break;
            }
            // A short sleep, not a yield: glommio polls the socket completions only
            // when no task is runnable, so on that backend a yielding loop would
            // starve connections for the whole budget.
            let pause = if fast {
                effort.fast_duration
            } else {
                EXPIRE_PAUSE
            };
            crate::runtime::backend::sleep(pause).await;
        }
        let mut s = shard.borrow_mut();
        // Every shard gives up keys while the process is over `maxmemory`, not only
        // the ones receiving writes (see `shard::evict`); loading never evicts, nor
        // does a shard a transaction or a suspended script holds (it could take a key
        // from under them; Redis evicts before commands, never inside a script).
        if s.config.maxmemory != 0 && !server.loading.load(std::sync::atomic::Ordering::Relaxed) {
            if s.intents.is_quiet() && !s.propagation.in_transaction() {
                crate::shard::evict::perform(&mut s);
                pubsub::publish_events(crate::notify::take());
            }
        } else {
            crate::shard::evict::note_under();
        }
        server.durability.cron(&mut s);
        if !s.propagation.in_transaction() {
            s.propagate_expired();
        }
        s.published_dirty = s.dirty();
        for db in s.dbs.iter_mut() {
            // A snapshot's cursor needs the table not to shrink under it.
            if db.snapshot.is_none() {
                db.keys.shrink_if_needed();
                db.expires.shrink_if_needed();
            }
            if db.keys.is_rehashing() {
                db.keys.rehash_for(Duration::from_millis(1));
            }
            if db.expires.is_rehashing() {
                db.expires.rehash_for(Duration::from_millis(1));
            }
        }
        blocking::serve_ready(&mut s);
        s.stats.blocking_keys = s.blocking.keys() as u64;
    }
}

/// Refresh the shard's copy of the configuration, and what this core's connections
/// read from it (the output buffer limits; see `output`). On the shard's own thread.
pub fn refresh_config(shard: &mut Shard) {
    shard.refresh_config();
    crate::client::set_output_limits(shard.config.client_output_buffer_limit);
    let clients = shard.config.get("maxmemory-clients").unwrap_or("0");
    client_eviction::set_limit(shard.id, clients, shard.config.maxmemory);
}

/// Gives a quiet shard's freed memory back to the system (`memory::tidy_thread`):
/// once the shard has run no command for [`Tidy::QUIET_MS`], and once per quiet
/// spell, so that a busy shard never pays for it and a quiet one pays once.
/// Measured: after loading 100k small hashes, RSS grows by 36.3 MiB before and 31.9
/// after (used_memory: 28.3; Redis's RSS: 28.8).
#[derive(Default)]
struct Tidy {
    commands: u64,
    since_ms: u64,
    done: bool,
}

impl Tidy {
    const QUIET_MS: u64 = 1000;

    fn tick(&mut self, commands: u64) {
        let now = crate::clock::now_ms();
        if commands != self.commands {
            self.commands = commands;
            self.since_ms = now;
            self.done = false;
        } else if !self.done && now.saturating_sub(self.since_ms) >= Self::QUIET_MS {
            self.done = true;
            crate::memory::tidy_thread();
        }
    }
}

/// How many cron periods an idle shard sleeps.
const IDLE_PERIODS: u32 = 10;

thread_local! {
    /// While this core's cron sleeps as idle: its waker, taken by `nudge_idle_cron`.
    static IDLE_CRON: std::cell::Cell<Option<std::task::Waker>> = const { std::cell::Cell::new(None) };
}

/// A key of this core's shard got a TTL: an idle cron, asleep for `IDLE_PERIODS`
/// periods, ticks now, so that the key is expired actively within a period or two of
/// its deadline, as at Redis's `hz` (Redis's own `latency-monitor` test gives a
/// 50 ms TTL 500 ms to be reclaimed; an idle shard took up to a second).
pub fn nudge_idle_cron() {
    if let Some(w) = IDLE_CRON.take() {
        w.wake();
    }
}

/// Ends when `nudge_idle_cron` is called: once it has left its waker, finding it
/// taken.
struct IdleSleep {
    armed: bool,
}

impl std::future::Future for IdleSleep {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.armed && IDLE_CRON.take().is_none() {
            return std::task::Poll::Ready(());
        }
        IDLE_CRON.set(Some(cx.waker().clone()));
        self.armed = true;
        std::task::Poll::Pending
    }
}

/// True if the shard's cron has nothing to do now: not shard 0, not over `maxmemory`,
/// no key with a TTL, no table rehashing, no blocked client, no snapshot, nothing
/// propagated, no change since the last publication of its dirty counter, and an
/// `expired_stale_perc` INFO shows as 0.00 (each cycle moves it, as Redis's ten a
/// second do, until a mass of keys that expired no longer shows). (CONFIG SET
/// refreshes every shard itself; the LRU clock is refreshed by shard 0.)
fn idle(s: &Shard) -> bool {
    s.id != 0
        && s.expire.stale_perc < 0.00005
        && crate::shard::evict::excess(&s.config) == 0
        && s.blocking.is_empty()
        && s.snapshot.is_none()
        && !s.propagation.active()
        && s.dirty() == s.published_dirty
        && s.dbs
            .iter()
            .all(|d| d.expires.is_empty() && !d.keys.is_rehashing() && !d.expires.is_rehashing())
}

/// INFO's instantaneous rates: a sample every 100 ms or so, as Redis's cron takes
/// (an idle shard's cron comes less often: its samples then cover longer periods).
fn sample_rates(s: &mut Shard, server: &ServerInfo) {
    let now = crate::clock::now_ms();
    if !s.stats.rates.due(now) {
        return;
    }
    let repl = if s.id == 0 {
        let r = crate::replication::of(server);
        [&r.repl_input_bytes, &r.repl_output_bytes].map(|c| c.load(Ordering::Relaxed))
    } else {
        [0; 2]
    };
    let t = &s.stats;
    let totals = [
        t.commands_processed,
        t.net_input_bytes,
        t.net_output_bytes,
        repl[0],
        repl[1],
    ];
    s.stats.rates.track(now, totals);
}

/// The period of the `hz` timers (the shards' cron, shard 0's save-point and AOF
/// rewrite checks): Redis's serverCron period. Nothing else wakes an idle shard.
pub fn cron_period(cfg: &crate::config::Config) -> Duration {
    Duration::from_micros(1_000_000 / cfg.hz.clamp(1, 500) as u64)
}

/// User and system CPU seconds used by the calling thread.
pub fn thread_cpu() -> (f64, f64) {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `struct rusage` to the pointer, which points to
    // zero-initialised storage of exactly that type; we read it only on success.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr()) } == 0;
    if !ok {
        return (0.0, 0.0);
    }
    // SAFETY: getrusage returned 0, so the struct is initialised.
    let ru = unsafe { ru.assume_init() };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::pinned_cores;
    use core_affinity::CoreId;

    #[test]
    fn shards_are_pinned_by_the_option_and_the_cores_left() {
        let cores: Vec<CoreId> = [2, 3, 5].into_iter().map(|id| CoreId { id }).collect();
        // auto: pinned only while a core is left without a shard, and no CPU quota
        // caps the process below its cores.
        assert_eq!(pinned_cores("auto", 2, &cores, false), Some(vec![2, 3]));
        assert_eq!(pinned_cores("auto", 2, &cores, true), None);
        assert_eq!(pinned_cores("auto", 3, &cores, false), None);
        assert_eq!(pinned_cores("auto", 4, &cores, false), None);
        // yes: a shard on every core is pinned too, more shards than cores cannot be.
        assert_eq!(pinned_cores("yes", 3, &cores, false), Some(vec![2, 3, 5]));
        assert_eq!(pinned_cores("yes", 2, &cores, true), Some(vec![2, 3]));
        assert_eq!(pinned_cores("yes", 4, &cores, false), None);
        assert_eq!(pinned_cores("no", 1, &cores, false), None);
    }
}
