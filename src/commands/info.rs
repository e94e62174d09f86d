//! INFO (Redis's `server.c` genRedisInfoString): Redis 7.0's sections and field names,
//! summed over shards, plus a `shards` section with per-core figures.
//!
//! The one idea to hold: INFO takes one snapshot of every shard with a single
//! `shards.all(...)` (owned copies of the counters, never references), then formats
//! from the snapshots alone, so it never holds a shard while it writes text. A field is
//! printed only when Shardis can give its true value; fields for features that do not
//! exist yet (fork and COW figures, replication sync counters...) are
//! left out rather than invented, and a tool that reads them sees them missing.
//!
//! Measures that differ from Redis, and how they are taken:
//! - `used_memory` is the process's resident set size (from `/proc/self/statm`), like
//!   `used_memory_rss`: mimalloc's per-allocation statistics are not enabled, so the
//!   allocator's own count is not available. `used_memory_peak` is the highest value
//!   INFO has seen.
//! - `instantaneous_ops_per_sec` and the `_kbps` rates are Redis's means of 16
//!   samples taken by the cron about every 100 ms, each shard sampling its own totals
//!   (`shard::stats::Rates`), added over shards. An idle shard's cron runs less often,
//!   so its samples cover up to a second each.
//! - `used_cpu_*` come from `/proc/self/stat` (10 ms resolution); per-shard CPU comes
//!   from each shard's thread, sampled by its cron.
//! - `avg_ttl` in the keyspace section is estimated from up to 64 random keys with a TTL
//!   per database, sampled at INFO time.

use super::{Command, Exec, LocalBoxFuture};
use crate::client::{ClientRef, Subscription};
use crate::config::Config;
use crate::protocol::Reply;
use crate::runtime::Shards;
use crate::shard::stats::Metric;
use crate::shard::{Shard, ShardStats};
use bytes::Bytes;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

pub static COMMANDS: &[Command] = &[Command::new(
    "info",
    -1,
    "loading stale",
    "slow dangerous",
    Exec::Server(info),
)];

/// Sections in Redis's order; `default` marks those INFO without arguments shows.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("commandstats", false),
    ("errorstats", true),
    ("latencystats", false),
    ("cluster", true),
    ("keyspace", true),
    ("shards", true),
];

/// One database's counts on one shard.
#[derive(Clone, Debug, Default)]
pub struct DbSnapshot {
    pub keys: usize,
    pub expires: usize,
    /// Bytes of the key and expires tables' structure (MEMORY STATS `db.N`).
    pub main_overhead: usize,
    pub expires_overhead: usize,
    /// Sum and number of sampled remaining TTLs (ms), for `avg_ttl`.
    pub ttl_sum: u64,
    pub ttl_samples: u64,
}

/// What INFO needs from one shard, copied out on the shard's own thread.
#[derive(Clone)]
pub struct ShardSnapshot {
    pub id: usize,
    /// The shard's counters, without the per-command table (see the two fields below).
    pub stats: ShardStats,
    /// Per command: calls, usec, rejected, failed (when commandstats is asked for).
    pub command_counts: BTreeMap<String, [u64; 4]>,
    /// Per command latency histograms (only when latencystats is asked for: they are
    /// the costly part of a snapshot).
    pub command_latency: BTreeMap<String, Histogram<u64>>,
    pub dbs: Vec<DbSnapshot>,
    pub expired: u64,
    pub stale_perc: f64,
    pub time_cap_reached: u64,
    pub cpu_user: f64,
    pub cpu_sys: f64,
    pub clients: usize,
    /// Memory of the core's normal and Pub/Sub clients (see `runtime::output`).
    pub clients_mem: u64,
    /// The core's largest input and output buffers of the last seconds.
    pub recent_max_buffers: (u64, u64),
    /// Bytes of keyspace table structure (see `Dict::overhead_bytes`).
    pub dict_overhead: u64,
    /// The core's Pub/Sub channels, patterns and shard channels (counted distinct
    /// over cores).
    pub pubsub: [Vec<Bytes>; 3],
}

const TTL_SAMPLES: usize = 64;

/// Copy a shard's figures; `counts` / `latency` say whether to copy the per-command
/// counters / histograms.
pub fn snapshot(shard: &mut Shard, counts: bool, latency: bool) -> ShardSnapshot {
    let now = crate::clock::now_ms();
    let Shard { dbs, rng, .. } = shard;
    let dbs = dbs
        .iter_mut()
        .map(|d| {
            let mut snap = DbSnapshot {
                keys: d.len(),
                expires: d.expires.len(),
                main_overhead: d.keys.overhead_bytes(),
                expires_overhead: d.expires.overhead_bytes(),
                ..Default::default()
            };
            for _ in 0..TTL_SAMPLES.min(d.expires.len()) {
                if let Some((_, &at)) = d.expires.random_entry(rng) {
                    snap.ttl_sum += at.saturating_sub(now);
                    snap.ttl_samples += 1;
                }
            }
            snap
        })
        .collect();
    // Copy every counter but the per-command table.
    let commands = std::mem::take(&mut shard.stats.commands);
    let stats = shard.stats.clone();
    shard.stats.commands = commands;
    let cmds = &shard.stats.commands;
    let command_counts = if counts {
        cmds.iter()
            .map(|(n, c)| {
                (
                    n.clone(),
                    [c.calls, c.usec, c.rejected_calls, c.failed_calls],
                )
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    let command_latency = if latency {
        cmds.iter()
            .filter(|(_, c)| !c.latency.is_empty())
            .map(|(n, c)| (n.clone(), c.latency.clone()))
            .collect()
    } else {
        BTreeMap::new()
    };
    let dict_overhead = shard
        .dbs
        .iter()
        .map(|d| d.keys.overhead_bytes() + d.expires.overhead_bytes())
        .sum::<usize>() as u64;
    // Taken on the shard's own thread, so this is its thread's CPU time right now.
    let (cpu_user, cpu_sys) = crate::runtime::thread_cpu();
    ShardSnapshot {
        id: shard.id,
        stats,
        command_counts,
        command_latency,
        dbs,
        expired: shard.expired_keys(),
        stale_perc: shard.expire.stale_perc,
        time_cap_reached: shard.expire.time_cap_reached,
        cpu_user,
        cpu_sys,
        clients: crate::runtime::clients::count(),
        clients_mem: crate::runtime::output::clients_memory(),
        recent_max_buffers: crate::runtime::output::recent_max(),
        dict_overhead,
        pubsub: Subscription::ALL.map(|k| crate::runtime::pubsub::local_names(k, None)),
    }
}

pub fn info<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let wanted = requested_sections(&argv[1..]);
        let counts = wanted.contains(&"commandstats");
        let latency = wanted.contains(&"latencystats");
        let server = s.server.clone();
        let snaps = s
            .all(move |sh| {
                // Publish the change counters now, so rdb_changes_since_last_save is exact.
                crate::persistence::of(&server)
                    .save
                    .publish_dirty(sh.id, sh.nshards, sh.dirty());
                snapshot(sh, counts, latency)
            })
            .await;
        let _ = c;
        let mut persistence = crate::persistence::save::info_fields(&s.server);
        persistence.extend(crate::persistence::aof::info_fields(&s.server));
        // No modules, so no module fork: Redis prints these two whatever.
        persistence.push(("module_fork_in_progress", "0".into()));
        persistence.push(("module_fork_last_cow_size", "0".into()));
        let r = crate::replication::of(&s.server);
        let facts = ServerFacts {
            run_id: s.server.run_id.clone(),
            started_ms: s.server.started_ms,
            executable: s.server.executable.clone(),
            tcp_port: s.server.tcp_port,
            // Redis counts its replicas apart (`connected_slaves`).
            connected_clients: s
                .server
                .connected_clients
                .load(Ordering::Relaxed)
                .saturating_sub(crate::replication::replica_count(&s.server)),
            persistence,
            aof_buffer: crate::persistence::aof::buffer_memory(&s.server),
            replication: crate::replication::info_fields(&s.server),
            syncs: [&r.sync_full, &r.sync_partial_ok, &r.sync_partial_err]
                .map(|c| c.load(Ordering::Relaxed)),
            repl_bytes: [&r.repl_input_bytes, &r.repl_output_bytes]
                .map(|c| c.load(Ordering::Relaxed)),
            shutdown_in_ms: crate::persistence::of(&s.server).shutdown.waiting_ms(),
        };
        let text = render(&wanted, &s.server.config.current(), &facts, &snaps);
        Reply::Verbatim("txt", Bytes::from(text))
    })
}

/// A Sentinel's sections: all shown by default.
const SENTINEL_SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("cpu", true),
    ("stats", true),
    ("sentinel", true),
];

/// The section names INFO's arguments select, in Redis's order.
pub fn requested_sections(args: &[Bytes]) -> Vec<&'static str> {
    let sections = if crate::sentinel::enabled() {
        SENTINEL_SECTIONS
    } else {
        SECTIONS
    };
    let lower: Vec<String> = args
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = lower.iter().any(|a| a == "all" || a == "everything");
    let default = lower.is_empty() || lower.iter().any(|a| a == "default");
    sections
        .iter()
        .filter(|(name, dflt)| all || (default && *dflt) || lower.iter().any(|a| a == name))
        .map(|(name, _)| *name)
        .collect()
}

/// Process-wide facts INFO prints (from `ServerInfo`), separate so tests can build them.
pub struct ServerFacts {
    pub run_id: String,
    pub started_ms: u64,
    pub executable: String,
    pub tcp_port: u16,
    pub connected_clients: usize,
    /// INFO persistence's fields, from the RDB and AOF modules, in order.
    pub persistence: Vec<(&'static str, String)>,
    /// Bytes waiting for the AOF writers (INFO memory `mem_aof_buffer`).
    pub aof_buffer: u64,
    /// INFO replication's fields (`crate::replication::info_fields`), in order.
    pub replication: Vec<(String, String)>,
    /// INFO stats' sync_full, sync_partial_ok, sync_partial_err.
    pub syncs: [u64; 3],
    /// INFO stats' total_net_repl_input_bytes, total_net_repl_output_bytes.
    pub repl_bytes: [u64; 2],
    /// While a shutdown waits for replicas: the milliseconds left.
    pub shutdown_in_ms: Option<i64>,
}

/// Format the requested sections, Redis's layout: `# Name` headers, `field:value`
/// lines, `\r\n` line ends, a blank line between sections.
pub fn render(
    sections: &[&str],
    cfg: &Config,
    facts: &ServerFacts,
    snaps: &[ShardSnapshot],
) -> String {
    let mut total = ShardStats::default();
    let mut counts: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    let mut latency: BTreeMap<&str, Histogram<u64>> = BTreeMap::new();
    for sn in snaps {
        total.merge(&sn.stats);
        for (n, c) in &sn.command_counts {
            let t = counts.entry(n).or_default();
            for k in 0..4 {
                t[k] += c[k];
            }
        }
        for (n, h) in &sn.command_latency {
            match latency.get_mut(n.as_str()) {
                Some(t) => {
                    let _ = t.add(h);
                }
                None => {
                    latency.insert(n, h.clone());
                }
            }
        }
    }
    let mut out = String::new();
    for (i, name) in sections.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let mut w = Section(String::new());
        match *name {
            "server" => server(&mut w, cfg, facts),
            "sentinel" => w.0.push_str(&crate::commands::sentinel::info_section()),
            "clients" => {
                w.header("Clients");
                w.field("connected_clients", facts.connected_clients);
                w.field("cluster_connections", 0);
                w.field("maxclients", cfg.maxclients);
                let (input, output) = snaps.iter().fold((0, 0), |(i, o), s| {
                    (i.max(s.recent_max_buffers.0), o.max(s.recent_max_buffers.1))
                });
                w.field("client_recent_max_input_buffer", input);
                w.field("client_recent_max_output_buffer", output);
                // Postponed by CLIENT PAUSE counts as blocked (without a timeout).
                w.field(
                    "blocked_clients",
                    total.blocked_clients + total.paused_clients,
                );
                w.field("tracking_clients", crate::tracking::stats().0);
                w.field("clients_in_timeout_table", total.blocked_clients);
            }
            "memory" => memory(&mut w, cfg, snaps, facts.aof_buffer),
            "persistence" => persistence(&mut w, facts),
            "stats" => stats(&mut w, &total, snaps, facts),
            "replication" => replication(&mut w, facts),
            "cpu" => cpu(&mut w, snaps),
            "modules" => w.header("Modules"),
            "commandstats" => {
                w.header("Commandstats");
                for (n, &[calls, usec, rejected, failed]) in &counts {
                    if calls == 0 && failed == 0 && rejected == 0 {
                        continue;
                    }
                    let per = if calls > 0 {
                        usec as f64 / calls as f64
                    } else {
                        0.0
                    };
                    w.field(
                        &format!("cmdstat_{n}"),
                        format!(
                            "calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={rejected},failed_calls={failed}"
                        ),
                    );
                }
            }
            "errorstats" => {
                w.header("Errorstats");
                let mut codes: Vec<(&String, &u64)> = total.errors.iter().collect();
                codes.sort();
                for (code, n) in codes {
                    w.field(&format!("errorstat_{code}"), format!("count={n}"));
                }
            }
            "latencystats" => {
                w.header("Latencystats");
                for (n, h) in &latency {
                    let ps: Vec<String> = cfg
                        .latency_tracking_info_percentiles
                        .iter()
                        .map(|p| format!("p{p}={:.3}", h.value_at_percentile(*p) as f64))
                        .collect();
                    w.field(&format!("latency_percentiles_usec_{n}"), ps.join(","));
                }
            }
            "cluster" => {
                w.header("Cluster");
                w.field("cluster_enabled", u8::from(cfg.get_bool("cluster-enabled")));
            }
            "keyspace" => keyspace(&mut w, cfg, snaps),
            "shards" => {
                w.header("Shards");
                w.field("shards", snaps.len());
                for sn in snaps {
                    let keys: usize = sn.dbs.iter().map(|d| d.keys).sum();
                    let expires: usize = sn.dbs.iter().map(|d| d.expires).sum();
                    w.field(
                        &format!("shard{}", sn.id),
                        format!(
                            "keys={keys},expires={expires},ops={},hops_sent={},hops_served={},moved_in={},clients={},cpu_user={:.6},cpu_sys={:.6}",
                            sn.stats.commands_processed,
                            sn.stats.hops_sent,
                            sn.stats.hops_served,
                            sn.stats.connections_moved_in,
                            sn.clients,
                            sn.cpu_user,
                            sn.cpu_sys
                        ),
                    );
                }
            }
            _ => {}
        }
        out.push_str(&w.0);
    }
    out
}

struct Section(String);

impl Section {
    fn header(&mut self, name: &str) {
        let _ = write!(self.0, "# {name}\r\n");
    }
    fn field(&mut self, name: &str, v: impl std::fmt::Display) {
        let _ = write!(self.0, "{name}:{v}\r\n");
    }
}

fn server(w: &mut Section, cfg: &Config, f: &ServerFacts) {
    let now_us = crate::clock::now_us();
    let uptime = (now_us / 1000).saturating_sub(f.started_ms) / 1000;
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    w.header("Server");
    w.field("redis_version", "7.0.15");
    w.field("shardis_version", env!("CARGO_PKG_VERSION"));
    w.field("redis_git_sha1", "00000000");
    w.field("redis_git_dirty", 0);
    w.field("redis_build_id", build_id());
    let mode = if crate::sentinel::enabled() {
        "sentinel"
    } else {
        "standalone"
    };
    w.field("redis_mode", mode);
    w.field(
        "os",
        format!(
            "{} {} {}",
            read("/proc/sys/kernel/ostype"),
            read("/proc/sys/kernel/osrelease"),
            std::env::consts::ARCH
        ),
    );
    w.field("arch_bits", usize::BITS);
    // std's Instant reads clock_gettime(CLOCK_MONOTONIC).
    w.field("monotonic_clock", "POSIX clock_gettime");
    w.field(
        "multiplexing_api",
        crate::runtime::backend::running().name(),
    );
    // Rust's atomics are C11's memory model, compiled to the same instructions.
    w.field("atomicvar_api", "c11-builtin");
    // Not built by GCC: Redis prints 0.0.0 then.
    w.field("gcc_version", "0.0.0");
    w.field("process_id", std::process::id());
    w.field("process_supervised", crate::supervise::info_value());
    w.field("run_id", &f.run_id);
    w.field("tcp_port", f.tcp_port);
    w.field("server_time_usec", now_us);
    w.field("uptime_in_seconds", uptime);
    w.field("uptime_in_days", uptime / 86400);
    w.field("hz", cfg.hz);
    w.field("configured_hz", cfg.hz);
    w.field("lru_clock", crate::storage::db::lru_clock() & 0xFF_FFFF);
    w.field("executable", &f.executable);
    w.field("config_file", cfg.config_file.as_deref().unwrap_or(""));
    w.field("io_threads_active", 0);
    if let Some(ms) = f.shutdown_in_ms {
        w.field("shutdown_in_milliseconds", ms);
    }
}

/// Redis's `bytesToHuman`.
pub fn bytes_to_human(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut d = n as f64 / 1024.0;
    for u in UNITS {
        if d < 1024.0 {
            return format!("{d:.2}{u}");
        }
        d /= 1024.0;
    }
    format!("{n}B")
}

/// Resident set size of this process, in bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn total_system_memory() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

static PEAK_MEMORY: AtomicU64 = AtomicU64::new(0);

/// Redis's `build_id`: a hex digest of what the binary is (name, version, target).
fn build_id() -> String {
    let text = format!(
        "{} {} {} {}",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    );
    format!(
        "{:016x}",
        std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::with_seed(0), text)
    )
}

/// Redis's `getMemoryOverheadData` in our terms, shared by INFO memory and MEMORY
/// STATS: the start-up footprint, the clients (`mem_clients_normal`: normal and
/// Pub/Sub clients with their buffers) and the keyspace tables' structure. The
/// replication buffer is shown apart (`replication::stream::buffer_memory`) but
/// counted in the data figure, as is the AOF buffer.
pub struct MemoryFigures {
    pub used: u64,
    pub rss: u64,
    pub peak: u64,
    pub startup: u64,
    pub clients: u64,
    pub overhead: u64,
    pub dataset: u64,
    /// `used` less the start-up footprint (at least 1: a divisor).
    pub net: u64,
    /// What the allocator holds: mimalloc's committed segment memory, both as the
    /// pages it keeps for allocations (jemalloc's "active") and as what it has
    /// mapped resident; it has no finer split.
    pub allocated: u64,
    pub active: u64,
    pub resident: u64,
    pub keys: u64,
}

impl MemoryFigures {
    pub fn of(snaps: &[ShardSnapshot]) -> MemoryFigures {
        let used = crate::memory::used_memory();
        let (committed, _) = crate::memory::allocator();
        let startup = crate::memory::startup_memory();
        let clients: u64 = snaps.iter().map(|s| s.clients_mem).sum();
        let overhead = startup + clients + snaps.iter().map(|s| s.dict_overhead).sum::<u64>();
        MemoryFigures {
            used,
            rss: rss_bytes(),
            peak: PEAK_MEMORY.fetch_max(used, Ordering::Relaxed).max(used),
            startup,
            clients,
            overhead,
            dataset: used.saturating_sub(overhead),
            net: used.saturating_sub(startup).max(1),
            allocated: used,
            active: committed.max(used),
            resident: committed.max(used),
            keys: snaps
                .iter()
                .flat_map(|s| &s.dbs)
                .map(|d| d.keys as u64)
                .sum(),
        }
    }
    pub fn dataset_perc(&self) -> f64 {
        self.dataset as f64 * 100.0 / self.net as f64
    }
    pub fn peak_perc(&self) -> f64 {
        self.used as f64 * 100.0 / self.peak.max(1) as f64
    }
}

fn memory(w: &mut Section, cfg: &Config, snaps: &[ShardSnapshot], aof_buffer: u64) {
    let m = MemoryFigures::of(snaps);
    let MemoryFigures {
        used,
        rss,
        peak,
        startup,
        clients,
        overhead,
        dataset,
        allocated,
        active,
        resident,
        ..
    } = m;
    let system = total_system_memory();
    let ratio = |a: u64, b: u64| format!("{:.2}", a as f64 / b.max(1) as f64);
    let diff = |a: u64, b: u64| a as i64 - b as i64;
    w.header("Memory");
    w.field("used_memory", used);
    w.field("used_memory_human", bytes_to_human(used));
    w.field("used_memory_rss", rss);
    w.field("used_memory_rss_human", bytes_to_human(rss));
    w.field("used_memory_peak", peak);
    w.field("used_memory_peak_human", bytes_to_human(peak));
    w.field("used_memory_peak_perc", format!("{:.2}%", m.peak_perc()));
    w.field("used_memory_overhead", overhead);
    w.field("used_memory_startup", startup);
    w.field("used_memory_dataset", dataset);
    w.field(
        "used_memory_dataset_perc",
        format!("{:.2}%", m.dataset_perc()),
    );
    w.field("allocator_allocated", allocated);
    w.field("allocator_active", active);
    w.field("allocator_resident", resident);
    w.field("total_system_memory", system);
    w.field("total_system_memory_human", bytes_to_human(system));
    // Every core's Lua interpreters (EVAL's and the functions'), the script cache and
    // the function registry.
    let lua = crate::scripting::engine::lua_memory() as u64;
    let vm_functions = crate::scripting::engine::functions_memory() as u64;
    let (scripts, scripts_bytes) = crate::scripting::cache::stats();
    let (libraries, functions, functions_bytes) = crate::scripting::functions::stats();
    let scripts_total = (scripts_bytes + functions_bytes) as u64;
    w.field("used_memory_lua", lua);
    w.field("used_memory_vm_eval", lua);
    w.field("used_memory_lua_human", bytes_to_human(lua));
    w.field("used_memory_scripts_eval", scripts_bytes);
    w.field("number_of_cached_scripts", scripts);
    w.field("number_of_functions", functions);
    w.field("number_of_libraries", libraries);
    w.field("used_memory_vm_functions", vm_functions);
    w.field("used_memory_vm_total", lua + vm_functions);
    w.field(
        "used_memory_vm_total_human",
        bytes_to_human(lua + vm_functions),
    );
    w.field("used_memory_functions", functions_bytes);
    w.field("used_memory_scripts", scripts_total);
    w.field("used_memory_scripts_human", bytes_to_human(scripts_total));
    w.field("maxmemory", cfg.maxmemory);
    w.field("maxmemory_human", bytes_to_human(cfg.maxmemory));
    w.field("maxmemory_policy", &cfg.maxmemory_policy);
    w.field("allocator_frag_ratio", ratio(active, allocated));
    w.field("allocator_frag_bytes", diff(active, allocated));
    w.field("allocator_rss_ratio", ratio(resident, active));
    w.field("allocator_rss_bytes", diff(resident, active));
    w.field("rss_overhead_ratio", ratio(rss, resident));
    w.field("rss_overhead_bytes", diff(rss, resident));
    w.field("mem_fragmentation_ratio", ratio(rss, used));
    w.field("mem_fragmentation_bytes", diff(rss, used));
    let repl = crate::replication::stream::buffer_memory();
    let not_counted = crate::replication::stream::not_counted_for_evict();
    w.field("mem_not_counted_for_evict", not_counted);
    w.field("mem_replication_backlog", repl.backlog);
    w.field("mem_total_replication_buffers", repl.total);
    w.field("mem_clients_slaves", repl.replicas);
    w.field("mem_clients_normal", clients);
    w.field("mem_cluster_links", 0);
    w.field("mem_aof_buffer", aof_buffer);
    w.field("mem_allocator", "mimalloc");
    w.field("active_defrag_running", 0);
    w.field("lazyfree_pending_objects", crate::lazyfree::pending());
    w.field("lazyfreed_objects", crate::lazyfree::freed());
}

fn persistence(w: &mut Section, f: &ServerFacts) {
    w.header("Persistence");
    for (name, value) in &f.persistence {
        w.field(name, value);
    }
}

fn stats(w: &mut Section, t: &ShardStats, snaps: &[ShardSnapshot], f: &ServerFacts) {
    let expired: u64 = snaps.iter().map(|s| s.expired).sum();
    let stale = if snaps.is_empty() {
        0.0
    } else {
        snaps.iter().map(|s| s.stale_perc).sum::<f64>() / snaps.len() as f64
    };
    let cap: u64 = snaps.iter().map(|s| s.time_cap_reached).sum();
    w.header("Stats");
    w.field("total_connections_received", t.connections_received);
    w.field("total_commands_processed", t.commands_processed);
    w.field("instantaneous_ops_per_sec", t.rates.get(Metric::Commands));
    w.field("total_net_input_bytes", t.net_input_bytes);
    w.field("total_net_output_bytes", t.net_output_bytes);
    // No defragmentation, client eviction or I/O threads: their counters are zero,
    // as Redis's are when unused.
    w.field("total_net_repl_input_bytes", f.repl_bytes[0]);
    w.field("total_net_repl_output_bytes", f.repl_bytes[1]);
    let kbps = |m| format!("{:.2}", t.rates.get(m) as f64 / 1024.0);
    w.field("instantaneous_input_kbps", kbps(Metric::NetInput));
    w.field("instantaneous_output_kbps", kbps(Metric::NetOutput));
    w.field("instantaneous_input_repl_kbps", kbps(Metric::ReplInput));
    w.field("instantaneous_output_repl_kbps", kbps(Metric::ReplOutput));
    w.field("rejected_connections", t.rejected_connections);
    w.field("sync_full", f.syncs[0]);
    w.field("sync_partial_ok", f.syncs[1]);
    w.field("sync_partial_err", f.syncs[2]);
    w.field("expired_keys", expired);
    w.field("expired_stale_perc", format!("{:.2}", stale * 100.0));
    w.field("expired_time_cap_reached_count", cap);
    w.field("expire_cycle_cpu_milliseconds", t.expire_cycle_us / 1000);
    w.field("evicted_keys", t.evicted_keys);
    w.field("evicted_clients", t.evicted_clients);
    let (exceeded_total, exceeded_now) = crate::shard::evict::exceeded_time();
    w.field("total_eviction_exceeded_time", exceeded_total);
    w.field("current_eviction_exceeded_time", exceeded_now);
    w.field("keyspace_hits", t.keyspace_hits);
    w.field("keyspace_misses", t.keyspace_misses);
    let distinct = |k: Subscription| {
        let per_core = snaps.iter().map(|s| s.pubsub[k as usize].clone()).collect();
        crate::runtime::pubsub::distinct(per_core).len()
    };
    w.field("pubsub_channels", distinct(Subscription::Channel));
    w.field("pubsub_patterns", distinct(Subscription::Pattern));
    w.field("pubsubshard_channels", distinct(Subscription::ShardChannel));
    w.field("latest_fork_usec", 0);
    w.field("total_forks", 0);
    w.field("migrate_cached_sockets", super::migrate::cached_sockets());
    w.field("slave_expires_tracked_keys", 0);
    w.field("active_defrag_hits", 0);
    w.field("active_defrag_misses", 0);
    w.field("active_defrag_key_hits", 0);
    w.field("active_defrag_key_misses", 0);
    w.field("total_active_defrag_time", 0);
    w.field("current_active_defrag_time", 0);
    let (_, keys, items, prefixes) = crate::tracking::stats();
    w.field("tracking_total_keys", keys);
    w.field("tracking_total_items", items);
    w.field("tracking_total_prefixes", prefixes);
    w.field("unexpected_error_replies", t.unexpected_error_replies);
    w.field("total_error_replies", t.total_error_replies);
    // sanitize-dump-payload is not implemented: no deep sanitization ever runs.
    w.field("dump_payload_sanitizations", 0);
    w.field("total_reads_processed", t.reads_processed);
    w.field("total_writes_processed", t.writes_processed);
    w.field("io_threaded_reads_processed", 0);
    w.field("io_threaded_writes_processed", 0);
    w.field("reply_buffer_shrinks", 0);
    w.field("reply_buffer_expands", 0);
}

fn replication(w: &mut Section, f: &ServerFacts) {
    w.header("Replication");
    for (k, v) in &f.replication {
        w.field(k, v);
    }
}

/// (user, system, children user, children system) CPU seconds of the process.
fn process_cpu() -> (f64, f64, f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime is field 14 of the file.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|v| v.parse::<f64>().unwrap_or(0.0) / 100.0)
        .collect();
    let g = |i: usize| f.get(i).copied().unwrap_or(0.0);
    (g(0), g(1), g(2), g(3))
}

/// The `_main_thread` figures are shard 0's thread (getrusage RUSAGE_THREAD, read on
/// that thread during this INFO): the thread that plays Redis's main thread (it loads
/// the data set and runs the save points), where the process figures sum all shards.
fn cpu(w: &mut Section, snaps: &[ShardSnapshot]) {
    let (user, sys, cuser, csys) = process_cpu();
    let main = snaps.iter().find(|s| s.id == 0);
    let (muser, msys) = main.map_or((0.0, 0.0), |s| (s.cpu_user, s.cpu_sys));
    w.header("CPU");
    w.field("used_cpu_sys", format!("{sys:.6}"));
    w.field("used_cpu_user", format!("{user:.6}"));
    w.field("used_cpu_sys_children", format!("{csys:.6}"));
    w.field("used_cpu_user_children", format!("{cuser:.6}"));
    w.field("used_cpu_sys_main_thread", format!("{msys:.6}"));
    w.field("used_cpu_user_main_thread", format!("{muser:.6}"));
}

fn keyspace(w: &mut Section, cfg: &Config, snaps: &[ShardSnapshot]) {
    w.header("Keyspace");
    let ndb = snaps
        .iter()
        .map(|s| s.dbs.len())
        .max()
        .unwrap_or(cfg.databases);
    for db in 0..ndb {
        let mut t = DbSnapshot::default();
        for s in snaps {
            if let Some(d) = s.dbs.get(db) {
                t.keys += d.keys;
                t.expires += d.expires;
                t.ttl_sum += d.ttl_sum;
                t.ttl_samples += d.ttl_samples;
            }
        }
        if t.keys == 0 {
            continue;
        }
        let avg_ttl = t.ttl_sum.checked_div(t.ttl_samples).unwrap_or(0);
        w.field(
            &format!("db{db}"),
            format!("keys={},expires={},avg_ttl={avg_ttl}", t.keys, t.expires),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigHandle;

    fn facts() -> ServerFacts {
        ServerFacts {
            run_id: "a".repeat(40),
            started_ms: crate::clock::now_ms(),
            executable: "/usr/bin/shardis".into(),
            tcp_port: 6379,
            connected_clients: 3,
            persistence: vec![("loading", "0".into()), ("aof_enabled", "0".into())],
            aof_buffer: 0,
            replication: vec![
                ("role".into(), "master".into()),
                ("master_replid".into(), "a".repeat(40)),
                ("master_replid2".into(), "0".repeat(40)),
            ],
            syncs: [0; 3],
            repl_bytes: [0; 2],
            shutdown_in_ms: None,
        }
    }

    fn b(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn section_selection() {
        assert_eq!(
            requested_sections(&[]),
            vec![
                "server",
                "clients",
                "memory",
                "persistence",
                "stats",
                "replication",
                "cpu",
                "modules",
                "errorstats",
                "cluster",
                "keyspace",
                "shards"
            ]
        );
        assert_eq!(
            requested_sections(&b(&["CLIENTS", "server"])),
            vec!["server", "clients"]
        );
        assert_eq!(
            requested_sections(&b(&["everything"])).len(),
            SECTIONS.len()
        );
        assert!(requested_sections(&b(&["default", "commandstats"])).contains(&"commandstats"));
        assert!(requested_sections(&b(&["nosuch"])).is_empty());
        assert_eq!(render(&[], &Config::default(), &facts(), &[]), "");
    }

    #[test]
    fn fields_present_and_formatted() {
        let mut shard = Shard::new(0, 1, ConfigHandle::new(Config::default()));
        shard.stats.record_call("get", 6, 0);
        shard.stats.record_call("config|get", 100, 0);
        shard.stats.record_error("ERR unknown command");
        shard.dbs[0].set(
            b"k",
            crate::storage::Value::Str(crate::storage::value::StrValue::from_bytes(b"v")),
            false,
        );
        shard.dbs[0].set_expire(b"k", crate::clock::now_ms() + 100_000);
        shard.dbs[3].set(
            b"x",
            crate::storage::Value::Str(crate::storage::value::StrValue::from_bytes(b"v")),
            false,
        );
        let snaps = vec![snapshot(&mut shard, true, true)];
        let text = render(
            &requested_sections(&b(&["everything"])),
            &Config::default(),
            &facts(),
            &snaps,
        );
        assert!(text.starts_with("# Server\r\nredis_version:7.0.15\r\n"));
        assert!(text.contains("\r\n\r\n# Clients\r\nconnected_clients:3\r\n"));
        for f in [
            "redis_mode:standalone\r\n",
            "tcp_port:6379\r\n",
            "run_id:aaaa",
            "executable:/usr/bin/shardis\r\n",
            "used_memory:",
            "used_memory_rss:",
            "maxmemory_policy:noeviction\r\n",
            "loading:0\r\n",
            "aof_enabled:0\r\n",
            "total_commands_processed:2\r\n",
            "instantaneous_ops_per_sec:",
            "keyspace_hits:0\r\n",
            "expired_stale_perc:0.00\r\n",
            "evicted_keys:0\r\n",
            "total_error_replies:1\r\n",
            "role:master\r\n",
            "master_replid2:0000000000000000000000000000000000000000\r\n",
            "used_cpu_sys:",
            "# Modules\r\n\r\n# Commandstats\r\n",
            "cmdstat_config|get:calls=1,usec=100,usec_per_call=100.00,rejected_calls=0,failed_calls=0\r\n",
            "cmdstat_get:calls=1,usec=6,usec_per_call=6.00,rejected_calls=0,failed_calls=0\r\n",
            "errorstat_ERR:count=1\r\n",
            "latency_percentiles_usec_get:p50=6.000,p99=6.000,p99.9=6.000\r\n",
            "cluster_enabled:0\r\n",
            "db0:keys=1,expires=1,avg_ttl=",
            "db3:keys=1,expires=0,avg_ttl=0\r\n",
            "# Shards\r\nshards:1\r\nshard0:keys=2,expires=1,ops=2,",
        ] {
            assert!(text.contains(f), "missing {f:?} in\n{text}");
        }
        assert!(!text.contains("db1:"));
        assert!(text.ends_with("\r\n"));
        let replid = text
            .lines()
            .find(|l| l.starts_with("master_replid:"))
            .unwrap();
        assert_eq!(replid.trim_end().len(), "master_replid:".len() + 40);
        // Without commandstats, the histograms are not copied.
        let light = snapshot(&mut shard, false, false);
        assert!(light.stats.commands.is_empty() && light.command_latency.is_empty());
        assert_eq!(shard.stats.commands.len(), 2);
        assert_eq!(light.stats.commands_processed, 2);
        assert_eq!(light.stats.errors.get("ERR"), Some(&1));
    }

    #[test]
    fn human_bytes() {
        assert_eq!(bytes_to_human(1000), "1000B");
        assert_eq!(bytes_to_human(990440), "967.23K");
        assert_eq!(bytes_to_human(6639616), "6.33M");
        assert_eq!(bytes_to_human(25276514304), "23.54G");
    }
}
