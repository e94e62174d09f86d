//! MEMORY: USAGE, STATS, DOCTOR, MALLOC-STATS, PURGE, HELP (Redis's `memoryCommand`).
//!
//! USAGE reports what Shardis holds for a key, not what Redis would: its dict node
//! (name, entry and link in one allocation), its share of the bucket array, the name's
//! bytes beyond the inline ones, and the value (`Value::memory_usage`), each rounded
//! to mimalloc's size classes; collections are sampled and extrapolated as Redis
//! does. STATS and DOCTOR read the same figures as INFO memory
//! ([`MemoryFigures`]).

use super::config::help_reply;
use super::info::{snapshot, MemoryFigures, ShardSnapshot};
use super::{args, errors, Command, Ctx, Exec, LocalBoxFuture};
use crate::client::ClientRef;
use crate::protocol::Reply;
use crate::runtime::Shards;
use crate::storage::db::Entry;
use crate::storage::{alloc_size, CompactBytes};
use bytes::Bytes;

static SUBCOMMANDS: &[Command] = &[
    Command::new(
        "memory|usage",
        -3,
        "readonly",
        "read slow",
        Exec::Shard(usage),
    )
    .keys(2, 2, 1),
    Command::new("memory|stats", 2, "", "slow", Exec::Server(stats)),
    Command::new("memory|doctor", 2, "", "slow", Exec::Server(doctor)),
    Command::new(
        "memory|malloc-stats",
        2,
        "",
        "slow",
        Exec::Server(malloc_stats),
    ),
    Command::new("memory|purge", 2, "", "slow", Exec::Server(purge)),
    Command::new(
        "memory|help",
        2,
        "loading stale",
        "slow",
        Exec::Server(help),
    ),
];

pub static COMMANDS: &[Command] =
    &[Command::new("memory", -2, "", "slow", Exec::Container).subcommands(SUBCOMMANDS)];

/// Redis's default number of nested elements sampled (`OBJ_COMPUTE_SIZE_DEF_SAMPLES`).
const DEFAULT_SAMPLES: usize = 5;

/// MEMORY USAGE key [SAMPLES count]
fn usage(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let mut samples = DEFAULT_SAMPLES;
    let mut j = 3;
    while j < argv.len() {
        if !(args::eq(&argv[j], "samples") && j + 1 < argv.len()) {
            return errors::syntax();
        }
        match args::int(&argv[j + 1]) {
            Err(e) => return e,
            Ok(n) if n < 0 => return errors::syntax(),
            Ok(0) => samples = 0,
            Ok(n) => samples = n as usize,
        }
        j += 2;
    }
    // As Redis: the entry as stored, expired or not, and no access recorded.
    match ctx.db().keys.get_key_value(&argv[2][..]) {
        Some((key, entry)) => Reply::Int(entry_usage(key, entry, samples) as i64),
        None => Reply::Null,
    }
}

/// The bytes an entry costs (see the module comment).
pub fn entry_usage(key: &CompactBytes, entry: &Entry, samples: usize) -> usize {
    let node = alloc_size(std::mem::size_of::<(CompactBytes, Entry, usize)>());
    node + std::mem::size_of::<usize>()
        + alloc_size(key.heap_size())
        + entry.value.memory_usage(samples)
}

/// Every shard's figures, as INFO takes them.
async fn snapshots(s: &Shards) -> Vec<ShardSnapshot> {
    s.all(|sh| snapshot(sh, false, false)).await
}

/// Redis's float ratios are single precision, printed as doubles.
fn ratio(a: u64, b: u64) -> Reply {
    Reply::Double((a as f32 / b.max(1) as f32) as f64)
}

fn stats<'a>(_c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let snaps = snapshots(s).await;
        let m = MemoryFigures::of(&snaps);
        let int = |n: u64| Reply::Int(n as i64);
        let key = |k: &str| Reply::bulk_str(k);
        let lua = crate::scripting::engine::lua_memory() as u64;
        let (_, _, functions_bytes) = crate::scripting::functions::stats();
        let functions_bytes = functions_bytes as u64;
        let repl = crate::replication::stream::buffer_memory();
        let mut out = vec![
            (key("peak.allocated"), int(m.peak)),
            (key("total.allocated"), int(m.used)),
            (key("startup.allocated"), int(m.startup)),
            (key("replication.backlog"), int(repl.backlog)),
            (key("clients.slaves"), int(repl.replicas)),
            (key("clients.normal"), int(m.clients)),
            (key("cluster.links"), int(0)),
            (
                key("aof.buffer"),
                int(crate::persistence::aof::buffer_memory(&s.server)),
            ),
            (key("lua.caches"), int(lua)),
            (key("functions.caches"), int(functions_bytes)),
        ];
        // Databases with keys, their tables' structure summed over shards.
        let ndbs = snaps.iter().map(|s| s.dbs.len()).max().unwrap_or(0);
        for db in 0..ndbs {
            let per = |f: fn(&super::info::DbSnapshot) -> usize| -> u64 {
                snaps
                    .iter()
                    .filter_map(|s| s.dbs.get(db))
                    .map(|d| f(d) as u64)
                    .sum()
            };
            if per(|d| d.keys) == 0 {
                continue;
            }
            out.push((
                Reply::bulk_str(&format!("db.{db}")),
                Reply::Map(vec![
                    (
                        key("overhead.hashtable.main"),
                        int(per(|d| d.main_overhead)),
                    ),
                    (
                        key("overhead.hashtable.expires"),
                        int(per(|d| d.expires_overhead)),
                    ),
                    (key("overhead.hashtable.slot-to-keys"), int(0)),
                ]),
            ));
        }
        let net = m.used.saturating_sub(m.startup);
        out.extend([
            (key("overhead.total"), int(m.overhead)),
            (key("keys.count"), int(m.keys)),
            (
                key("keys.bytes-per-key"),
                int(net.checked_div(m.keys).unwrap_or(0)),
            ),
            (key("dataset.bytes"), int(m.dataset)),
            (
                key("dataset.percentage"),
                Reply::Double(m.dataset_perc() as f32 as f64),
            ),
            (
                key("peak.percentage"),
                Reply::Double(m.peak_perc() as f32 as f64),
            ),
            (key("allocator.allocated"), int(m.allocated)),
            (key("allocator.active"), int(m.active)),
            (key("allocator.resident"), int(m.resident)),
            (
                key("allocator-fragmentation.ratio"),
                ratio(m.active, m.allocated),
            ),
            (
                key("allocator-fragmentation.bytes"),
                Reply::Int(m.active as i64 - m.allocated as i64),
            ),
            (key("allocator-rss.ratio"), ratio(m.resident, m.active)),
            (
                key("allocator-rss.bytes"),
                Reply::Int(m.resident as i64 - m.active as i64),
            ),
            (key("rss-overhead.ratio"), ratio(m.rss, m.resident)),
            (
                key("rss-overhead.bytes"),
                Reply::Int(m.rss as i64 - m.resident as i64),
            ),
            (key("fragmentation"), ratio(m.rss, m.used)),
            (
                key("fragmentation.bytes"),
                Reply::Int(m.rss as i64 - m.used as i64),
            ),
        ]);
        Reply::Map(out)
    })
}

/// The findings of MEMORY DOCTOR, in Redis's order and words (`getMemoryDoctorReport`).
fn doctor<'a>(_c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let snaps = snapshots(s).await;
        let m = MemoryFigures::of(&snaps);
        let clients: u64 = snaps.iter().map(|s| s.clients as u64).sum();
        let (scripts, _) = crate::scripting::cache::stats();
        Reply::Verbatim(
            "txt",
            Bytes::from(doctor_report(&m, clients, scripts as u64)),
        )
    })
}

fn doctor_report(m: &MemoryFigures, clients: u64, scripts: u64) -> String {
    const MB10: i64 = 10 << 20;
    let over =
        |a: u64, b: u64, r: f32| a as f32 / b.max(1) as f32 > r && a as i64 - b as i64 > MB10;
    // Redis compares its whole allocation with 5 MiB; a fresh Shardis allocates more
    // than that before any data (per-core buffers and tables), so what counts here
    // is what was allocated since start-up.
    if m.used.saturating_sub(m.startup) < 5 << 20 {
        return "Hi Sam, this instance is empty or is using very little memory, my issues \
                detector can't be used in these conditions. Please, leave for your mission \
                on Earth and fill it with some data. The new Sam and I will be back to our \
                programming as soon as I finished rebooting.\n"
            .into();
    }
    let mut found = Vec::new();
    if m.peak as f32 / m.used.max(1) as f32 > 1.5 {
        found.push(" * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.".to_string());
    }
    if over(m.rss, m.used, 1.4) {
        found.push(" * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"mimalloc\".".to_string());
    }
    if over(m.active, m.allocated, 1.1) {
        found.push(" * High allocator fragmentation: This instance has an allocator external fragmentation greater than 1.1. This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. You can try enabling 'activedefrag' config option.".to_string());
    }
    if over(m.resident, m.active, 1.1) {
        found.push(" * High allocator RSS overhead: This instance has an RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the allocator is much larger than the sum what the allocator actually holds). This problem is usually due to a large peak memory (check if there is a peak memory entry above in the report), you can try the MEMORY PURGE command to reclaim it.".to_string());
    }
    if over(m.rss, m.resident, 1.1) {
        found.push(" * High process RSS overhead: This instance has non-allocator RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the Redis process is much larger than the RSS the allocator holds). This problem may be due to Lua scripts or Modules.".to_string());
    }
    if m.clients / clients.max(1) > 200 * 1024 {
        found.push(" * Big client buffers: The clients output buffers in this instance are greater than 200K per client (on average). This may result from different causes, like Pub/Sub clients subscribed to channels bot not receiving data fast enough, so that data piles on the Redis instance output buffer, or clients sending commands with large replies or very large sequences of commands in the same pipeline. Please use the CLIENT LIST command in order to investigate the issue if it causes problems in your instance, or to understand better why certain clients are using a big amount of memory.".to_string());
    }
    if scripts > 1000 {
        found.push(" * Many scripts: There seem to be many cached scripts in this instance (more than 1000). This may be because scripts are generated and `EVAL`ed, instead of being parameterized (with KEYS and ARGV), `SCRIPT LOAD`ed and `EVALSHA`ed. Unless `SCRIPT FLUSH` is called periodically, the scripts' caches may end up consuming most of your memory.".to_string());
    }
    if found.is_empty() {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account \
                for what occurs on this base.\n"
            .into();
    }
    let mut s =
        "Sam, I detected a few issues in this Redis instance memory implants:\n\n".to_string();
    for f in found {
        s.push_str(&f);
        s.push_str("\n\n");
    }
    s.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
    s
}

/// What Redis built without jemalloc answers: mimalloc's statistics are compiled out
/// of a release build (see `crate::memory`).
fn malloc_stats<'a>(
    _c: &'a ClientRef,
    _s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        Reply::Verbatim(
            "txt",
            Bytes::from_static(b"Stats not supported for the current allocator"),
        )
    })
}

/// Every shard's thread gives its free pages back (mimalloc's `mi_collect`).
fn purge<'a>(_c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        s.all(|_| crate::memory::purge_thread()).await;
        Reply::ok()
    })
}

fn help<'a>(_c: &'a ClientRef, _s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        help_reply(
            "MEMORY",
            &[
                "DOCTOR",
                "    Return memory problems reports.",
                "MALLOC-STATS",
                "    Return internal statistics report from the memory allocator.",
                "PURGE",
                "    Attempt to purge dirty pages for reclamation by the allocator.",
                "STATS",
                "    Return information about the memory usage of the server.",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value. Nested values are",
                "    sampled up to <count> times (default: 5, 0 means sample all).",
            ],
        )
    })
}
