//! Configuration: `config.toml` defaults, a TOML or redis.conf file, `--name value` flags,
//! and the option table behind CONFIG GET / SET / REWRITE, all with Redis's option names.
//!
//! The live configuration is an immutable [`Config`] behind [`ConfigHandle`]; CONFIG SET
//! publishes a new one with a higher generation, and each shard refreshes its cached
//! `Arc<Config>` when it sees the generation change. So the data path reads its settings
//! without a lock or a shared cache line.
//!
//! The one idea to hold: every option is one [`OptDef`] row in [`OPTIONS`] (name, alias,
//! kind, default, flags), as in Redis's `standardConfig` table. A value enters only
//! through [`Config::set_option`], which checks it with the kind's rules and Redis's error
//! texts, stores its normalized text (what CONFIG GET shows) in `values`, and mirrors the
//! options the server acts on into typed fields (`port`, `hz`, ...). Options Redis 7.0
//! knows that Shardis does not implement yet are accepted and stored the same way, so an
//! existing redis.conf starts; an unknown name is refused as Redis refuses it.
//!
//! Command line as redis-server: `shardis [config-file] [--name value ...]`; the flags are
//! turned into redis.conf lines appended after the file (so the file's line count gives
//! the flags' line numbers in errors, as Redis reports them). A file ending in `.toml` is
//! read with the `toml` crate (keys are option names); any other file is redis.conf.

use crate::protocol::parse::{parse_i64, split_args};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// CONFIG SET refuses it ("can't set immutable config").
pub const IMMUTABLE: u8 = 1;
/// CONFIG SET refuses it unless `enable-protected-configs` is not `no`.
pub const PROTECTED: u8 = 2;
/// Left out of CONFIG GET with a glob pattern (debugging knobs), as Redis does.
pub const HIDDEN: u8 = 4;

/// How an option's value is checked and normalized.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// `yes` / `no`.
    Bool,
    /// A plain integer in `min..=max`.
    Int(i64, i64),
    /// An integer with an optional memory unit (`1gb`, `64mb`, `100k`), in bytes.
    Mem(i64, i64),
    /// A memory value or a percentage (`maxmemory-clients`).
    MemOrPercent,
    /// One of the names, case-insensitively.
    Enum(&'static [&'static str]),
    /// `shutdown-on-sigint` / `shutdown-on-sigterm`: `default`, or any of
    /// `save nosave now force` (Redis's multi-argument enum).
    SignalShutdown,
    /// Any string.
    Str,
    /// An octal integer (`unixsocketperm`).
    Octal,
    /// `save`: pairs of `seconds changes`, or empty.
    Save,
    /// `bind`: 1 to 16 addresses.
    Bind,
    /// `client-output-buffer-limit`: `class hard soft seconds` groups.
    ClientOutputBufferLimit,
    /// `notify-keyspace-events`: event class characters.
    NotifyEvents,
    /// `oom-score-adj-values`: three integers.
    OomValues,
    /// `latency-tracking-info-percentiles`: floats in 0..100.
    Percentiles,
    /// `replicaof`: `host port` or empty.
    ReplicaOf,
}

/// One row of the option table.
#[derive(Clone, Copy, Debug)]
pub struct OptDef {
    pub name: &'static str,
    /// Redis's old name (`slaveof`, `hash-max-ziplist-entries`), or "".
    pub alias: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub flags: u8,
}

const fn opt(name: &'static str, kind: Kind, default: &'static str, flags: u8) -> OptDef {
    OptDef {
        name,
        alias: "",
        kind,
        default,
        flags,
    }
}

const fn aka(
    name: &'static str,
    alias: &'static str,
    kind: Kind,
    default: &'static str,
    flags: u8,
) -> OptDef {
    OptDef {
        name,
        alias,
        kind,
        default,
        flags,
    }
}

use Kind::*;

const LL: i64 = i64::MAX;
const INT: i64 = i32::MAX as i64;
const YES_NO_LOCAL: &[&str] = &["no", "yes", "local"];

/// Every option Redis 7.0 knows, plus Shardis's own `threads`, `runtime` and
/// `pin-threads`. Defaults are Redis 7.0's except `bind` (loopback only).
pub static OPTIONS: &[OptDef] = &[
    // Shardis's own.
    opt("threads", Int(0, 1024), "0", IMMUTABLE),
    opt(
        "runtime",
        Enum(&["auto", "io_uring", "epoll"]),
        "auto",
        IMMUTABLE,
    ),
    opt(
        "pin-threads",
        Enum(&["auto", "yes", "no"]),
        "auto",
        IMMUTABLE,
    ),
    // Network and clients.
    opt("port", Int(0, 65535), "6379", 0),
    opt("bind", Bind, "127.0.0.1 -::1", 0),
    opt("bind-source-addr", Str, "", 0),
    opt("protected-mode", Bool, "yes", 0),
    opt("tcp-backlog", Int(0, INT), "511", IMMUTABLE),
    opt("tcp-keepalive", Int(0, INT), "300", 0),
    opt("timeout", Int(0, INT), "0", 0),
    opt("unixsocket", Str, "", IMMUTABLE),
    opt("unixsocketperm", Octal, "0", IMMUTABLE),
    opt("socket-mark-id", Int(0, u32::MAX as i64), "0", IMMUTABLE),
    opt("maxclients", Int(1, u32::MAX as i64), "10000", 0),
    opt("requirepass", Str, "", 0),
    opt("masterauth", Str, "", 0),
    opt("masteruser", Str, "", 0),
    opt("aclfile", Str, "", IMMUTABLE),
    opt("acllog-max-len", Int(0, LL), "128", 0),
    opt(
        "acl-pubsub-default",
        Enum(&["allchannels", "resetchannels"]),
        "resetchannels",
        0,
    ),
    opt(
        "client-query-buffer-limit",
        Mem(1024 * 1024, LL),
        "1073741824",
        0,
    ),
    opt("proto-max-bulk-len", Mem(1024 * 1024, LL), "536870912", 0),
    opt(
        "client-output-buffer-limit",
        ClientOutputBufferLimit,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        0,
    ),
    opt("maxmemory-clients", MemOrPercent, "0", 0),
    opt("tracking-table-max-keys", Int(0, LL), "1000000", 0),
    // General.
    opt("daemonize", Bool, "no", IMMUTABLE),
    opt(
        "supervised",
        Enum(&["upstart", "systemd", "auto", "no"]),
        "no",
        IMMUTABLE,
    ),
    opt("pidfile", Str, "", IMMUTABLE),
    opt(
        "loglevel",
        Enum(&["debug", "verbose", "notice", "warning"]),
        "notice",
        0,
    ),
    opt("logfile", Str, "", IMMUTABLE),
    opt("syslog-enabled", Bool, "no", IMMUTABLE),
    opt("syslog-ident", Str, "redis", IMMUTABLE),
    opt(
        "syslog-facility",
        Enum(&[
            "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
        ]),
        "local0",
        IMMUTABLE,
    ),
    opt("crash-log-enabled", Bool, "yes", 0),
    opt("crash-memcheck-enabled", Bool, "yes", 0),
    opt("databases", Int(1, INT), "16", IMMUTABLE),
    opt("always-show-logo", Bool, "no", IMMUTABLE),
    opt("set-proc-title", Bool, "yes", IMMUTABLE),
    opt(
        "proc-title-template",
        Str,
        "{title} {listen-addr} {server-mode}",
        0,
    ),
    opt(
        "enable-protected-configs",
        Enum(YES_NO_LOCAL),
        "no",
        IMMUTABLE,
    ),
    opt("enable-debug-command", Enum(YES_NO_LOCAL), "no", IMMUTABLE),
    opt("enable-module-command", Enum(YES_NO_LOCAL), "no", IMMUTABLE),
    opt("hz", Int(0, INT), "10", 0),
    opt("dynamic-hz", Bool, "yes", 0),
    opt("io-threads", Int(1, 128), "1", IMMUTABLE),
    opt("io-threads-do-reads", Bool, "no", IMMUTABLE),
    opt("server_cpulist", Str, "", IMMUTABLE),
    opt("bio_cpulist", Str, "", IMMUTABLE),
    opt("aof_rewrite_cpulist", Str, "", IMMUTABLE),
    opt("bgsave_cpulist", Str, "", IMMUTABLE),
    opt("ignore-warnings", Str, "", 0),
    opt("disable-thp", Bool, "yes", IMMUTABLE),
    opt("jemalloc-bg-thread", Bool, "yes", 0),
    opt(
        "oom-score-adj",
        Enum(&["no", "yes", "relative", "absolute"]),
        "no",
        0,
    ),
    opt("oom-score-adj-values", OomValues, "0 200 800", 0),
    opt("shutdown-on-sigint", SignalShutdown, "default", 0),
    opt("shutdown-on-sigterm", SignalShutdown, "default", 0),
    opt("shutdown-timeout", Int(0, INT), "10", 0),
    // Snapshotting.
    opt("save", Save, "3600 1 300 100 60 10000", 0),
    opt("stop-writes-on-bgsave-error", Bool, "yes", 0),
    opt("rdbcompression", Bool, "yes", 0),
    opt("rdbchecksum", Bool, "yes", IMMUTABLE),
    opt("dbfilename", Str, "dump.rdb", PROTECTED),
    opt("rdb-del-sync-files", Bool, "no", 0),
    opt("rdb-save-incremental-fsync", Bool, "yes", 0),
    opt("dir", Str, ".", PROTECTED),
    opt(
        "sanitize-dump-payload",
        Enum(&["no", "yes", "clients"]),
        "no",
        0,
    ),
    opt("rdb-key-save-delay", Int(i32::MIN as i64, INT), "0", HIDDEN),
    opt("key-load-delay", Int(i32::MIN as i64, INT), "0", HIDDEN),
    opt(
        "loading-process-events-interval-bytes",
        Mem(1024, INT),
        "2097152",
        HIDDEN,
    ),
    // Append only file.
    opt("appendonly", Bool, "no", 0),
    opt("appendfilename", Str, "appendonly.aof", IMMUTABLE),
    opt("appenddirname", Str, "appendonlydir", IMMUTABLE),
    opt(
        "appendfsync",
        Enum(&["everysec", "always", "no"]),
        "everysec",
        0,
    ),
    opt("no-appendfsync-on-rewrite", Bool, "no", 0),
    opt("auto-aof-rewrite-percentage", Int(0, INT), "100", 0),
    opt("auto-aof-rewrite-min-size", Mem(0, LL), "67108864", 0),
    opt("aof-load-truncated", Bool, "yes", 0),
    opt("aof-use-rdb-preamble", Bool, "yes", 0),
    opt("aof-rewrite-incremental-fsync", Bool, "yes", 0),
    opt("aof-timestamp-enabled", Bool, "no", 0),
    opt("aof-disable-auto-gc", Bool, "no", 0),
    // Replication.
    aka("replicaof", "slaveof", ReplicaOf, "", IMMUTABLE),
    aka(
        "replica-serve-stale-data",
        "slave-serve-stale-data",
        Bool,
        "yes",
        0,
    ),
    aka("replica-read-only", "slave-read-only", Bool, "yes", 0),
    opt("repl-diskless-sync", Bool, "yes", 0),
    opt("repl-diskless-sync-delay", Int(0, INT), "5", 0),
    opt("repl-diskless-sync-max-replicas", Int(0, INT), "0", 0),
    opt(
        "repl-diskless-load",
        Enum(&["disabled", "on-empty-db", "swapdb"]),
        "disabled",
        0,
    ),
    aka(
        "repl-ping-replica-period",
        "repl-ping-slave-period",
        Int(1, INT),
        "10",
        0,
    ),
    opt("repl-timeout", Int(1, INT), "60", 0),
    opt("repl-disable-tcp-nodelay", Bool, "no", 0),
    opt("repl-backlog-size", Mem(1, LL), "1048576", 0),
    opt("repl-backlog-ttl", Int(0, LL), "3600", 0),
    aka("replica-priority", "slave-priority", Int(0, INT), "100", 0),
    opt("replica-announced", Bool, "yes", 0),
    aka(
        "min-replicas-to-write",
        "min-slaves-to-write",
        Int(0, INT),
        "0",
        0,
    ),
    aka(
        "min-replicas-max-lag",
        "min-slaves-max-lag",
        Int(0, INT),
        "10",
        0,
    ),
    aka("replica-announce-ip", "slave-announce-ip", Str, "", 0),
    aka(
        "replica-announce-port",
        "slave-announce-port",
        Int(0, 65535),
        "0",
        0,
    ),
    aka(
        "replica-ignore-maxmemory",
        "slave-ignore-maxmemory",
        Bool,
        "yes",
        0,
    ),
    aka("replica-lazy-flush", "slave-lazy-flush", Bool, "no", 0),
    opt("replica-ignore-disk-write-errors", Bool, "no", 0),
    opt(
        "propagation-error-behavior",
        Enum(&["ignore", "panic", "panic-on-replicas"]),
        "ignore",
        0,
    ),
    // Memory management.
    opt("maxmemory", Mem(0, LL), "0", 0),
    opt(
        "maxmemory-policy",
        Enum(&[
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "noeviction",
        ]),
        "noeviction",
        0,
    ),
    opt("maxmemory-samples", Int(1, INT), "5", 0),
    opt("maxmemory-eviction-tenacity", Int(0, 100), "10", 0),
    opt("lfu-log-factor", Int(0, INT), "10", 0),
    opt("lfu-decay-time", Int(0, INT), "1", 0),
    opt("lazyfree-lazy-eviction", Bool, "no", 0),
    opt("lazyfree-lazy-expire", Bool, "no", 0),
    opt("lazyfree-lazy-server-del", Bool, "no", 0),
    opt("lazyfree-lazy-user-del", Bool, "no", 0),
    opt("lazyfree-lazy-user-flush", Bool, "no", 0),
    opt("active-expire-effort", Int(1, 10), "1", 0),
    opt("activerehashing", Bool, "yes", 0),
    opt("activedefrag", Bool, "no", 0),
    opt("active-defrag-ignore-bytes", Mem(1, LL), "104857600", 0),
    opt("active-defrag-threshold-lower", Int(0, 1000), "10", 0),
    opt("active-defrag-threshold-upper", Int(0, 1000), "100", 0),
    opt("active-defrag-cycle-min", Int(1, 99), "1", 0),
    opt("active-defrag-cycle-max", Int(1, 99), "25", 0),
    opt("active-defrag-max-scan-fields", Int(1, LL), "1000", 0),
    // Scripting, slow log, latency.
    aka(
        "busy-reply-threshold",
        "lua-time-limit",
        Int(0, LL),
        "5000",
        0,
    ),
    opt("slowlog-log-slower-than", Int(-1, LL), "10000", 0),
    opt("slowlog-max-len", Int(0, LL), "128", 0),
    opt("latency-monitor-threshold", Int(0, LL), "0", 0),
    opt("latency-tracking", Bool, "yes", 0),
    opt(
        "latency-tracking-info-percentiles",
        Percentiles,
        "50 99 99.9",
        0,
    ),
    opt("notify-keyspace-events", NotifyEvents, "", 0),
    // Encodings.
    aka(
        "hash-max-listpack-entries",
        "hash-max-ziplist-entries",
        Int(0, LL),
        "512",
        0,
    ),
    aka(
        "hash-max-listpack-value",
        "hash-max-ziplist-value",
        Mem(0, LL),
        "64",
        0,
    ),
    aka(
        "list-max-listpack-size",
        "list-max-ziplist-size",
        Int(i32::MIN as i64, INT),
        "-2",
        0,
    ),
    opt("list-compress-depth", Int(0, INT), "0", 0),
    opt("set-max-intset-entries", Int(0, LL), "512", 0),
    aka(
        "zset-max-listpack-entries",
        "zset-max-ziplist-entries",
        Int(0, LL),
        "128",
        0,
    ),
    aka(
        "zset-max-listpack-value",
        "zset-max-ziplist-value",
        Mem(0, LL),
        "64",
        0,
    ),
    opt("hll-sparse-max-bytes", Mem(0, LL), "3000", 0),
    opt("stream-node-max-bytes", Mem(0, LL), "4096", 0),
    opt("stream-node-max-entries", Int(0, LL), "100", 0),
    // Cluster.
    opt("cluster-enabled", Bool, "no", IMMUTABLE),
    opt("cluster-config-file", Str, "nodes.conf", IMMUTABLE),
    opt("cluster-node-timeout", Int(0, LL), "15000", 0),
    opt("cluster-port", Int(0, 65535), "0", IMMUTABLE),
    aka(
        "cluster-replica-validity-factor",
        "cluster-slave-validity-factor",
        Int(0, INT),
        "10",
        0,
    ),
    opt("cluster-migration-barrier", Int(0, INT), "1", 0),
    opt("cluster-allow-replica-migration", Bool, "yes", 0),
    opt("cluster-require-full-coverage", Bool, "yes", 0),
    aka(
        "cluster-replica-no-failover",
        "cluster-slave-no-failover",
        Bool,
        "no",
        0,
    ),
    opt("cluster-allow-reads-when-down", Bool, "no", 0),
    opt("cluster-allow-pubsubshard-when-down", Bool, "yes", 0),
    opt("cluster-announce-ip", Str, "", 0),
    opt("cluster-announce-hostname", Str, "", 0),
    opt("cluster-announce-port", Int(0, 65535), "0", 0),
    opt("cluster-announce-bus-port", Int(0, 65535), "0", 0),
    opt("cluster-announce-tls-port", Int(0, 65535), "0", 0),
    opt(
        "cluster-preferred-endpoint-type",
        Enum(&["ip", "hostname", "unknown-endpoint"]),
        "ip",
        0,
    ),
    opt("cluster-link-sendbuf-limit", Mem(0, LL), "0", 0),
    // TLS (not implemented: stored only).
    opt("tls-port", Int(0, 65535), "0", 0),
    opt("tls-cert-file", Str, "", 0),
    opt("tls-key-file", Str, "", 0),
    opt("tls-key-file-pass", Str, "", 0),
    opt("tls-client-cert-file", Str, "", 0),
    opt("tls-client-key-file", Str, "", 0),
    opt("tls-client-key-file-pass", Str, "", 0),
    opt("tls-dh-params-file", Str, "", 0),
    opt("tls-ca-cert-file", Str, "", 0),
    opt("tls-ca-cert-dir", Str, "", 0),
    opt(
        "tls-auth-clients",
        Enum(&["no", "yes", "optional"]),
        "yes",
        0,
    ),
    opt("tls-replication", Bool, "no", 0),
    opt("tls-cluster", Bool, "no", 0),
    opt("tls-protocols", Str, "", 0),
    opt("tls-ciphers", Str, "", 0),
    opt("tls-ciphersuites", Str, "", 0),
    opt("tls-prefer-server-ciphers", Bool, "no", 0),
    opt("tls-session-caching", Bool, "yes", 0),
    opt("tls-session-cache-size", Int(0, INT), "20480", 0),
    opt("tls-session-cache-timeout", Int(0, INT), "300", 0),
];

/// Options Redis 7.0 still accepts in a file and ignores.
const DEPRECATED: &[&str] = &[
    "list-max-ziplist-entries",
    "list-max-ziplist-value",
    "lua-replicate-commands",
];

/// Find an option by name or alias, case-insensitively.
pub fn find(name: &str) -> Option<&'static OptDef> {
    OPTIONS
        .iter()
        .find(|o| o.name.eq_ignore_ascii_case(name) || o.alias.eq_ignore_ascii_case(name))
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Bumped by every change; shards compare it to refresh their copy.
    pub generation: u64,
    pub port: u16,
    pub bind: Vec<String>,
    /// Number of shards (one per core); 0 = all cores.
    pub threads: usize,
    pub requirepass: Option<String>,
    pub protected_mode: bool,
    pub databases: usize,
    pub hz: u32,
    pub maxclients: usize,
    pub timeout: u64,
    /// `min-replicas-to-write` (0 = off), read on every write.
    pub min_replicas_to_write: i64,
    pub proto_max_bulk_len: usize,
    pub client_query_buffer_limit: usize,
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: usize,
    /// `latency-monitor-threshold` in milliseconds (0 = the latency monitor is off).
    pub latency_monitor_threshold: u64,
    pub latency_tracking: bool,
    pub latency_tracking_info_percentiles: Vec<f64>,
    /// `notify-keyspace-events` as `notify` flags.
    pub notify_keyspace_events: u32,
    /// `tracking-table-max-keys` (0: no limit).
    pub tracking_table_max_keys: u64,
    pub dir: String,
    pub dbfilename: String,
    pub logfile: String,
    pub loglevel: String,
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    /// The eviction settings, typed (`shard::evict` reads them on every command while
    /// `maxmemory` is set).
    pub eviction: Eviction,
    /// `lazyfree-lazy-user-del`, `lazyfree-lazy-user-flush`, `replica-lazy-flush`
    /// (see `crate::lazyfree`), and the server's own deletions'
    /// `lazyfree-lazy-expire`, `-eviction`, `-server-del`.
    pub lazyfree: crate::lazyfree::Switches,
    pub lazyfree_user_flush: bool,
    pub replica_lazy_flush: bool,
    /// `client-output-buffer-limit`, by client class (see [`OutputLimit`]).
    pub client_output_buffer_limit: [OutputLimit; 3],
    /// Thresholds at which collections convert from their compact encodings.
    pub encoding: EncodingLimits,
    /// The file the configuration was loaded from (CONFIG REWRITE target), absolute.
    pub config_file: Option<String>,
    /// Every option's normalized value (what CONFIG GET shows), by canonical name.
    pub values: BTreeMap<&'static str, String>,
    /// `rename-command old new` lines from the file (applied by the command table owner).
    pub renamed_commands: Vec<(String, String)>,
    /// Sentinel mode's `sentinel ...` lines, for `crate::sentinel` to read: (line
    /// number, line, the arguments after `sentinel`).
    pub sentinel_lines: Vec<(usize, String, Vec<String>)>,
    /// `user ...` ACL lines from the file, verbatim arguments.
    pub users: Vec<Vec<String>>,
}

/// One client class's `client-output-buffer-limit`: a client whose unwritten output
/// reaches `hard` bytes, or stays at or above `soft` bytes for more than
/// `soft_seconds`, is disconnected. 0 turns a limit off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

/// The classes of `client-output-buffer-limit`, in Redis's order (`CLIENT_TYPE_NORMAL`,
/// `_SLAVE`, `_PUBSUB`): the index of a class's limit. CONFIG GET names the replica
/// class `slave`, CONFIG REWRITE `replica`.
pub const OUTPUT_CLASSES: [&str; 3] = ["normal", "slave", "pubsub"];

/// Redis 7.0's defaults: normal clients unlimited, replicas 256mb / 64mb for 60 s,
/// Pub/Sub clients 32mb / 8mb for 60 s.
pub const DEFAULT_OUTPUT_LIMITS: [OutputLimit; 3] = [
    OutputLimit {
        hard: 0,
        soft: 0,
        soft_seconds: 0,
    },
    OutputLimit {
        hard: 256 << 20,
        soft: 64 << 20,
        soft_seconds: 60,
    },
    OutputLimit {
        hard: 32 << 20,
        soft: 8 << 20,
        soft_seconds: 60,
    },
];

/// The limits of a normalized `client-output-buffer-limit` value (all three classes).
fn output_limits_of(v: &str) -> [OutputLimit; 3] {
    let mut limits = DEFAULT_OUTPUT_LIMITS;
    let parts: Vec<&str> = v.split_whitespace().collect();
    for g in parts.chunks_exact(4) {
        if let Some(i) = OUTPUT_CLASSES.iter().position(|c| *c == g[0]) {
            let n = |s: &str| s.parse().unwrap_or(0);
            limits[i] = OutputLimit {
                hard: n(g[1]),
                soft: n(g[2]),
                soft_seconds: n(g[3]),
            };
        }
    }
    limits
}

/// `maxmemory-policy`: which keys may be evicted, and by which measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    NoEviction,
    AllKeysLru,
    VolatileLru,
    AllKeysLfu,
    VolatileLfu,
    AllKeysRandom,
    VolatileRandom,
    VolatileTtl,
}

impl Policy {
    pub fn parse(s: &str) -> Policy {
        match s {
            "allkeys-lru" => Policy::AllKeysLru,
            "volatile-lru" => Policy::VolatileLru,
            "allkeys-lfu" => Policy::AllKeysLfu,
            "volatile-lfu" => Policy::VolatileLfu,
            "allkeys-random" => Policy::AllKeysRandom,
            "volatile-random" => Policy::VolatileRandom,
            "volatile-ttl" => Policy::VolatileTtl,
            _ => Policy::NoEviction,
        }
    }
    /// Only keys with a TTL may be evicted.
    pub fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }
    pub fn lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }
}

/// The eviction options (`maxmemory-*`, `lfu-*`, `replica-ignore-maxmemory`).
#[derive(Clone, Debug)]
pub struct Eviction {
    pub policy: Policy,
    pub samples: usize,
    pub tenacity: u32,
    pub lfu_log_factor: u32,
    pub lfu_decay_time: u32,
    pub replica_ignores: bool,
}

impl Default for Eviction {
    fn default() -> Eviction {
        Eviction {
            policy: Policy::NoEviction,
            samples: 5,
            tenacity: 10,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            replica_ignores: true,
        }
    }
}

/// The collection encoding thresholds, by their Redis 7.0 names (`hash-max-listpack-entries`
/// ...; the old `ziplist` names are aliases). The defaults are redis-server 7.0's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EncodingLimits {
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    /// Positive: entries per quicklist node; -1..-5: node size 4, 8, 16, 32, 64 KiB.
    pub list_max_listpack_size: i64,
    /// Nodes at each end of a quicklist left uncompressed (0 = none compressed).
    pub list_compress_depth: usize,
    /// Largest stream node in bytes, and in entries (0 = no limit).
    pub stream_node_max_bytes: usize,
    pub stream_node_max_entries: i64,
}

impl Default for EncodingLimits {
    fn default() -> Self {
        EncodingLimits {
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
            list_compress_depth: 0,
            stream_node_max_bytes: 4096,
            stream_node_max_entries: 100,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut c = Config {
            generation: 0,
            port: 6379,
            bind: vec!["127.0.0.1".into(), "-::1".into()],
            threads: 0,
            requirepass: None,
            protected_mode: true,
            databases: 16,
            hz: 10,
            maxclients: 10000,
            timeout: 0,
            min_replicas_to_write: 0,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            slowlog_log_slower_than: 10000,
            slowlog_max_len: 128,
            latency_monitor_threshold: 0,
            notify_keyspace_events: 0,
            tracking_table_max_keys: 1_000_000,
            latency_tracking: true,
            latency_tracking_info_percentiles: vec![50.0, 99.0, 99.9],
            dir: ".".into(),
            dbfilename: "dump.rdb".into(),
            logfile: String::new(),
            loglevel: "notice".into(),
            maxmemory: 0,
            maxmemory_policy: "noeviction".into(),
            eviction: Eviction::default(),
            lazyfree: Default::default(),
            lazyfree_user_flush: false,
            replica_lazy_flush: false,
            client_output_buffer_limit: DEFAULT_OUTPUT_LIMITS,
            encoding: EncodingLimits::default(),
            config_file: None,
            values: BTreeMap::new(),
            renamed_commands: Vec::new(),
            sentinel_lines: Vec::new(),
            users: Vec::new(),
        };
        for o in OPTIONS {
            c.values.insert(o.name, o.default.to_string());
            c.apply_typed(o.name);
        }
        c
    }
}

impl Config {
    /// An option's normalized value, by name or alias.
    pub fn get(&self, name: &str) -> Option<&str> {
        let o = find(name)?;
        self.values.get(o.name).map(String::as_str)
    }
    /// An integer or memory option's value (0 if it is not one).
    pub fn get_int(&self, name: &str) -> i64 {
        self.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
    /// A yes/no option's value.
    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name) == Some("yes")
    }
    /// The `save` points as (seconds, changes).
    pub fn save_params(&self) -> Vec<(u64, u64)> {
        let nums: Vec<u64> = self
            .get("save")
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        nums.chunks_exact(2).map(|p| (p[0], p[1])).collect()
    }

    /// Check `value` against the option's kind and store it. `name` may be an alias.
    /// The error is Redis's text for the value (without the CONFIG SET prefix).
    pub fn set_option(&mut self, name: &str, value: &str) -> Result<(), String> {
        let def =
            find(name).ok_or_else(|| "Bad directive or wrong number of arguments".to_string())?;
        let current = self.values.get(def.name).map(String::as_str).unwrap_or("");
        let v = normalize(def, value, current)?;
        self.values.insert(def.name, v);
        self.apply_typed(def.name);
        if def.name == "notify-keyspace-events" {
            // From the value given, not the text shown: Redis prints `An` as `A` but
            // keeps `n` on.
            self.notify_keyspace_events = crate::notify::parse(value).unwrap_or(0);
        }
        Ok(())
    }

    /// Mirror an option into its typed field, if the server acts on it.
    fn apply_typed(&mut self, name: &'static str) {
        let v = self.values.get(name).cloned().unwrap_or_default();
        let int = || v.parse::<i64>().unwrap_or(0);
        match name {
            "port" => self.port = int() as u16,
            "bind" => self.bind = v.split_whitespace().map(String::from).collect(),
            "threads" => self.threads = int() as usize,
            "requirepass" => self.requirepass = if v.is_empty() { None } else { Some(v.clone()) },
            "protected-mode" => self.protected_mode = v == "yes",
            "databases" => self.databases = int() as usize,
            "hz" => self.hz = int() as u32,
            "maxclients" => self.maxclients = int() as usize,
            "timeout" => self.timeout = int() as u64,
            "min-replicas-to-write" => self.min_replicas_to_write = int(),
            "proto-max-bulk-len" => self.proto_max_bulk_len = int() as usize,
            "client-query-buffer-limit" => self.client_query_buffer_limit = int() as usize,
            "slowlog-log-slower-than" => self.slowlog_log_slower_than = int(),
            "slowlog-max-len" => self.slowlog_max_len = int() as usize,
            "latency-monitor-threshold" => self.latency_monitor_threshold = int().max(0) as u64,
            "latency-tracking" => self.latency_tracking = v == "yes",
            "tracking-table-max-keys" => self.tracking_table_max_keys = int().max(0) as u64,
            "latency-tracking-info-percentiles" => {
                self.latency_tracking_info_percentiles = v
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            }
            "dir" => self.dir = v,
            "dbfilename" => self.dbfilename = v,
            "logfile" => self.logfile = v,
            "loglevel" => self.loglevel = v,
            "maxmemory" => self.maxmemory = int() as u64,
            "maxmemory-policy" => {
                self.eviction.policy = Policy::parse(&v);
                self.maxmemory_policy = v;
            }
            "maxmemory-samples" => self.eviction.samples = int().max(1) as usize,
            "maxmemory-eviction-tenacity" => self.eviction.tenacity = int().clamp(0, 100) as u32,
            "lfu-log-factor" => self.eviction.lfu_log_factor = int().max(0) as u32,
            "lfu-decay-time" => self.eviction.lfu_decay_time = int().max(0) as u32,
            "replica-ignore-maxmemory" => self.eviction.replica_ignores = v == "yes",
            "lazyfree-lazy-user-del" => self.lazyfree.user_del = v == "yes",
            "lazyfree-lazy-expire" => self.lazyfree.expire = v == "yes",
            "lazyfree-lazy-eviction" => self.lazyfree.eviction = v == "yes",
            "lazyfree-lazy-server-del" => self.lazyfree.server_del = v == "yes",
            "lazyfree-lazy-user-flush" => self.lazyfree_user_flush = v == "yes",
            "replica-lazy-flush" => self.replica_lazy_flush = v == "yes",
            "client-output-buffer-limit" => {
                self.client_output_buffer_limit = output_limits_of(&v);
            }
            "hash-max-listpack-entries" => self.encoding.hash_max_listpack_entries = int() as usize,
            "hash-max-listpack-value" => self.encoding.hash_max_listpack_value = int() as usize,
            "set-max-intset-entries" => self.encoding.set_max_intset_entries = int() as usize,
            "zset-max-listpack-entries" => self.encoding.zset_max_listpack_entries = int() as usize,
            "zset-max-listpack-value" => self.encoding.zset_max_listpack_value = int() as usize,
            "list-max-listpack-size" => self.encoding.list_max_listpack_size = int(),
            "list-compress-depth" => self.encoding.list_compress_depth = int() as usize,
            "stream-node-max-bytes" => self.encoding.stream_node_max_bytes = int().max(0) as usize,
            "stream-node-max-entries" => self.encoding.stream_node_max_entries = int().max(0),
            _ => {}
        }
    }

    /// Apply one redis.conf directive (`argv[0]` is the name). Handles the directives
    /// that are not table options (`include`, `rename-command`, `user`...) and the
    /// file-only accumulation of `save` and `client-output-buffer-limit` lines.
    fn apply_directive(&mut self, argv: &[String], state: &mut LoadState) -> Result<(), String> {
        let name = argv[0].to_ascii_lowercase();
        let args = &argv[1..];
        match name.as_str() {
            "include" if args.len() == 1 => return self.include(&args[0], state),
            "loadmodule" => {
                return Err("Modules are not supported by Shardis ('loadmodule')".into())
            }
            "rename-command" if args.len() == 2 => {
                self.renamed_commands
                    .push((args[0].clone(), args[1].clone()));
                return crate::commands::check_renames(&self.renamed_commands);
            }
            "user" if !args.is_empty() => {
                self.users.push(args.to_vec());
                return Ok(());
            }
            n if DEPRECATED.contains(&n) && args.len() == 1 => return Ok(()),
            _ => {}
        }
        let Some(def) = find(&name) else {
            return Err("Bad directive or wrong number of arguments".into());
        };
        let multi = matches!(
            def.kind,
            Save | Bind | ClientOutputBufferLimit | OomValues | Percentiles | ReplicaOf
        );
        // A `save` line without arguments is zero pairs, as in Redis (whose test harness
        // writes `save ""` so): the first `save` line of a file still resets.
        if (args.is_empty() && def.kind != Save) || (!multi && args.len() != 1) {
            return Err("wrong number of arguments".into());
        }
        let mut value = args.join(" ");
        if def.kind == Save {
            // In a file, `save` lines accumulate; `save ""` clears.
            if args.is_empty() && state.save_seen {
                value = self.values.get("save").cloned().unwrap_or_default();
            } else if value.is_empty() {
                state.save_seen = true;
            } else if state.save_seen {
                let cur = self.values.get("save").cloned().unwrap_or_default();
                if !cur.is_empty() {
                    value = format!("{cur} {value}");
                }
            }
            state.save_seen = true;
        }
        // One empty argument: Redis hands it to the option as is (CONFIG SET splits
        // an empty value into no arguments, which changes nothing).
        if def.kind == ClientOutputBufferLimit && value.is_empty() {
            return Err("Wrong number of arguments in buffer limit configuration.".into());
        }
        if def.kind == ReplicaOf
            && args.len() == 2
            && args[0].eq_ignore_ascii_case("no")
            && args[1].eq_ignore_ascii_case("one")
        {
            value.clear();
        }
        self.set_option(def.name, &value)
    }

    /// `include FILE`: apply that redis.conf file here, as if its lines stood in place
    /// of this one, as Redis's `loadServerConfig`: a name with `*`, `?` or `[` is a
    /// glob pattern whose files, in glob's order, are read as one text, and which may
    /// match none (an empty `conf.d`); a plain name must open. Errors in the included
    /// text name its own lines.
    fn include(&mut self, name: &str, state: &mut LoadState) -> Result<(), String> {
        let files = if name.contains(['*', '?', '[']) {
            glob(name)
        } else {
            vec![name.to_string()]
        };
        let mut text = String::new();
        for f in files {
            let body = std::fs::read(&f).map_err(|e| {
                included(format!(
                    "Fatal error, can't open config file '{f}': {}",
                    crate::log::strerror(&e)
                ))
            })?;
            text.push_str(&String::from_utf8_lossy(&body));
        }
        apply_conf_text(self, &text, 1, state).map_err(included)?;
        Ok(())
    }

    /// The value CONFIG GET shows (`dir` as an absolute path, like Redis's getcwd).
    pub fn shown(&self, def: &OptDef) -> String {
        let v = self.values.get(def.name).cloned().unwrap_or_default();
        if def.name == "dir" {
            if let Ok(p) = std::fs::canonicalize(&v) {
                return p.display().to_string();
            }
        }
        v
    }
}

#[derive(Default)]
struct LoadState {
    save_seen: bool,
}

/// Parse a memory value as Redis's `memtoull`: digits and an optional unit.
pub fn parse_memory(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (digits, mul): (&str, u64) = if let Some(d) = lower.strip_suffix("gb") {
        (d, 1024 * 1024 * 1024)
    } else if let Some(d) = lower.strip_suffix("mb") {
        (d, 1024 * 1024)
    } else if let Some(d) = lower.strip_suffix("kb") {
        (d, 1024)
    } else if let Some(d) = lower.strip_suffix('g') {
        (d, 1000 * 1000 * 1000)
    } else if let Some(d) = lower.strip_suffix('m') {
        (d, 1000 * 1000)
    } else if let Some(d) = lower.strip_suffix('k') {
        (d, 1000)
    } else if let Some(d) = lower.strip_suffix('b') {
        (d, 1)
    } else {
        (lower.as_str(), 1)
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mul)
}

fn range_err(min: i64, max: i64) -> String {
    format!("argument must be between {min} and {max} inclusive")
}

/// Check `value` for option `def` and return its normalized text.
fn normalize(def: &OptDef, value: &str, current: &str) -> Result<String, String> {
    match def.kind {
        Bool => match value.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Int(min, max) => {
            let n = parse_i64(value.as_bytes())
                .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())?;
            if n < min || n > max {
                return Err(range_err(min, max));
            }
            // Redis clamps hz to its bounds rather than refusing.
            let n = if def.name == "hz" { n.clamp(1, 500) } else { n };
            Ok(n.to_string())
        }
        Mem(min, max) => {
            let n =
                parse_memory(value).ok_or_else(|| "argument must be a memory value".to_string())?;
            if n > max as u64 || (n as i64) < min {
                return Err(range_err(min, max));
            }
            Ok(n.to_string())
        }
        MemOrPercent => {
            if let Some(p) = value.strip_suffix('%') {
                match parse_i64(p.as_bytes()) {
                    // (Redis's one such option, `maxmemory-clients`, has -100 as its
                    // lower bound: percentages are kept negative.)
                    Some(n) if n > 100 => {
                        return Err("percentage argument must be less or equal to 100".into())
                    }
                    Some(n) if n >= 0 => return Ok(format!("{n}%")),
                    _ => return Err("argument must be a memory or percent value".into()),
                }
            }
            parse_memory(value)
                .map(|n| n.to_string())
                .ok_or_else(|| "argument must be a memory or percent value".into())
        }
        Enum(names) => names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(value))
            .map(|n| n.to_string())
            .ok_or_else(|| {
                format!(
                    "argument(s) must be one of the following: {}",
                    names.join(", ")
                )
            }),
        SignalShutdown => {
            const NAMES: [&str; 5] = ["default", "save", "nosave", "now", "force"];
            let mut set = [false; 5];
            let words: Vec<&str> = value.split_whitespace().collect();
            for w in words.iter().chain(words.is_empty().then_some(&"")) {
                match NAMES.iter().position(|n| n.eq_ignore_ascii_case(w)) {
                    Some(i) => set[i] = true,
                    None => {
                        return Err(format!(
                            "argument(s) must be one of the following: {}",
                            NAMES.join(", ")
                        ))
                    }
                }
            }
            if set[1] && set[2] {
                return Err("shutdown options SAVE and NOSAVE can't be used simultaneously".into());
            }
            let on: Vec<&str> = (1..NAMES.len())
                .filter(|&i| set[i])
                .map(|i| NAMES[i])
                .collect();
            Ok(if on.is_empty() {
                "default".into()
            } else {
                on.join(" ")
            })
        }
        Str => Ok(value.to_string()),
        Octal => {
            if !value.is_empty() && value.bytes().all(|c| (b'0'..=b'7').contains(&c)) {
                let n = i64::from_str_radix(value, 8).map_err(|_| range_err(0, 0o777))?;
                if n > 0o777 {
                    return Err(range_err(0, 0o777));
                }
                Ok(format!("{n:o}"))
            } else {
                Err("argument couldn't be parsed into an integer".into())
            }
        }
        Save => {
            let parts: Vec<&str> = value.split_whitespace().collect();
            if !parts.len().is_multiple_of(2) {
                return Err("Invalid save parameters".into());
            }
            let mut out = Vec::with_capacity(parts.len());
            // Seconds at least 1, changes at least 0 (Redis's `setConfigSaveOption`).
            for (i, p) in parts.into_iter().enumerate() {
                let least = if i % 2 == 0 { 1 } else { 0 };
                let n = parse_i64(p.as_bytes())
                    .filter(|n| *n >= least)
                    .ok_or_else(|| "Invalid save parameters".to_string())?;
                out.push(n.to_string());
            }
            Ok(out.join(" "))
        }
        Bind => {
            let addrs: Vec<&str> = value.split_whitespace().collect();
            if addrs.len() > 16 {
                return Err("Too many bind addresses specified.".into());
            }
            if addrs.is_empty() {
                return Err("Failed to bind to specified addresses.".into());
            }
            for a in &addrs {
                let host = a.strip_prefix('-').unwrap_or(a);
                let ok = host == "*"
                    || host == "::*"
                    || host.parse::<std::net::IpAddr>().is_ok()
                    || host == "localhost";
                if !ok {
                    return Err("Failed to bind to specified addresses.".into());
                }
            }
            Ok(addrs.join(" "))
        }
        ClientOutputBufferLimit => client_output_buffer_limit(value, current),
        NotifyEvents => notify_events(value),
        OomValues => {
            let parts: Vec<&str> = value.split_whitespace().collect();
            if parts.len() != 3 {
                return Err("wrong number of arguments".into());
            }
            let mut out = Vec::new();
            for p in parts {
                match parse_i64(p.as_bytes()) {
                    Some(n) if (-2000..=2000).contains(&n) => out.push(n.to_string()),
                    _ => return Err(
                        "Invalid oom-score-adj-values, elements must be between -2000 and 2000."
                            .into(),
                    ),
                }
            }
            Ok(out.join(" "))
        }
        Percentiles => {
            let mut out = Vec::new();
            for p in value.split_whitespace() {
                let f: f64 = p
                    .parse()
                    .ok()
                    .filter(|f: &f64| f.is_finite())
                    .ok_or_else(|| {
                        "Invalid latency-tracking-info-percentiles parameters".to_string()
                    })?;
                if !(0.0..=100.0).contains(&f) {
                    return Err(
                        "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
                            .into(),
                    );
                }
                out.push(format!("{f}"));
            }
            Ok(out.join(" "))
        }
        ReplicaOf => {
            let parts: Vec<&str> = value.split_whitespace().collect();
            match parts.as_slice() {
                [] => Ok(String::new()),
                [h, p] if h.eq_ignore_ascii_case("no") && p.eq_ignore_ascii_case("one") => {
                    Ok(String::new())
                }
                [h, p] => match parse_i64(p.as_bytes()) {
                    Some(n) if (0..=65535).contains(&n) => Ok(format!("{h} {n}")),
                    _ => Err("Invalid master port".into()),
                },
                _ => Err("wrong number of arguments".into()),
            }
        }
    }
}

/// `client-output-buffer-limit`: groups of `class hard soft seconds` merged into the
/// current three classes; the normalized form names all three, as CONFIG GET shows it.
/// As Redis's `updateClientOutputBufferLimit`: the value is split on single spaces (so
/// an empty value changes nothing, and a double space makes an empty argument), the
/// whole value is checked before any class changes, sizes are read by [`memtoull`] and
/// the seconds as C's `strtoll` stored in an `int`.
fn client_output_buffer_limit(value: &str, current: &str) -> Result<String, String> {
    let mut limits = output_limits_of(current);
    let parts: Vec<&str> = if value.is_empty() {
        Vec::new()
    } else {
        value.split(' ').collect()
    };
    if !parts.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    for g in parts.chunks_exact(4) {
        let class = match g[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into())
            }
        };
        match (memtoull(g[1]), memtoull(g[2]), c_int(g[3])) {
            (Some(hard), Some(soft), Some(secs)) if secs >= 0 => {
                limits[class] = OutputLimit {
                    hard,
                    soft,
                    soft_seconds: secs as u64,
                }
            }
            _ => {
                return Err(
                    "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                        .into(),
                )
            }
        }
    }
    Ok(OUTPUT_CLASSES
        .iter()
        .zip(limits.iter())
        .map(|(c, l)| format!("{c} {} {} {}", l.hard, l.soft, l.soft_seconds))
        .collect::<Vec<_>>()
        .join(" "))
}

/// Redis's `memtoull`, quirks included, for `client-output-buffer-limit`: digits (none
/// reads as 0) and an optional unit (`b`, `k`, `kb`, `m`, `mb`, `g`, `gb`, any case); a
/// number too large for 64 bits saturates, and the unit's product wraps. ([`parse_memory`],
/// which the other memory options use, refuses those cases instead.)
fn memtoull(s: &str) -> Option<u64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let mul: u64 = match s[digits..].to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    if digits >= 128 {
        return None;
    }
    let n = s[..digits]
        .bytes()
        .try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .unwrap_or(u64::MAX);
    Some(n.wrapping_mul(mul))
}

/// C's `strtoll` on a whole argument, stored in an `int` as Redis does with
/// `soft_seconds`: an optional sign and digits (an empty argument reads as 0), saturating at the
/// 64-bit bounds, then truncated to 32 bits; `None` if anything else follows.
fn c_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    // A lone sign converts nothing, so the end pointer stays on it: an error.
    if !digits.bytes().all(|c| c.is_ascii_digit()) || (digits.is_empty() && digits != s) {
        return None;
    }
    let magnitude = digits.bytes().try_fold(0i64, |n, d| {
        n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    });
    let n = match (magnitude, neg) {
        (Some(m), true) => -m,
        (Some(m), false) => m,
        (None, true) => i64::MIN,
        (None, false) => i64::MAX,
    };
    Some(i64::from(n as i32))
}

/// `notify-keyspace-events`: parse the class characters and print them back in Redis's
/// canonical order (see `notify::format`).
fn notify_events(value: &str) -> Result<String, String> {
    crate::notify::parse(value)
        .map(crate::notify::format)
        .ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into())
}

/// The shared, swappable configuration.
#[derive(Clone)]
pub struct ConfigHandle {
    inner: Arc<(RwLock<Arc<Config>>, AtomicU64)>,
}

impl ConfigHandle {
    pub fn new(c: Config) -> Self {
        let g = c.generation;
        ConfigHandle {
            inner: Arc::new((RwLock::new(Arc::new(c)), AtomicU64::new(g))),
        }
    }
    pub fn current(&self) -> Arc<Config> {
        self.inner
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn generation(&self) -> u64 {
        self.inner.1.load(Ordering::Acquire)
    }
    /// Apply `f` to a copy of the current config and publish it.
    pub fn update<R>(&self, f: impl FnOnce(&mut Config) -> R) -> R {
        let mut guard = self.inner.0.write().unwrap_or_else(|e| e.into_inner());
        let mut next = (**guard).clone();
        let r = f(&mut next);
        next.generation = guard.generation + 1;
        self.inner.1.store(next.generation, Ordering::Release);
        *guard = Arc::new(next);
        r
    }
}

/// Quote an argument as Redis's `sdscatrepr` does.
pub fn repr(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Turn the arguments after the config file into redis.conf text, as redis-server's
/// `main` does: `--name` starts a line, the following arguments are its quoted values
/// (even ones that start with `--`, until the name has one), and a bare `--save` means
/// `save ""`.
fn flags_to_text(args: &[String]) -> String {
    let mut options = String::new();
    let mut handled_last = true;
    for (j, a) in args.iter().enumerate() {
        if handled_last && a.starts_with("--") {
            if !options.is_empty() {
                options.push('\n');
            }
            options.push_str(&a[2..]);
            options.push(' ');
            let words = split_args(a.as_bytes()).map(|v| v.len()).unwrap_or(1);
            if words == 1 {
                handled_last = false;
                let last = j == args.len() - 1;
                let next_is_flag = !last && args[j + 1].starts_with("--");
                if a.eq_ignore_ascii_case("--save") && (last || next_is_flag) {
                    options.push_str("\"\"");
                    handled_last = !last;
                }
            } else {
                handled_last = true;
            }
        } else {
            options.push_str(&repr(a));
            options.push(' ');
            handled_last = true;
        }
    }
    options
}

/// `dir` must name a directory, as Redis's `chdir` to it requires: otherwise its
/// error's text. Before, a mistyped `dir` started a server that could save nothing, and
/// whose SIGTERM, failing to save, never ended it. Checked by CONFIG SET and, once the
/// whole configuration is read, at start (Redis checks each `dir` line as it reads
/// it, so a bad one later overridden still stops it; here only the value kept counts).
pub fn check_dir(path: &str) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err("Not a directory".into()),
        Err(e) => Err(crate::log::strerror(&e)),
    }
}

/// The error Redis prints for a bad line of the configuration.
fn line_error(line_no: usize, line: &str, msg: &str) -> String {
    if let Some(whole) = msg.strip_prefix(INCLUDED) {
        // Already told in the included file's terms.
        return whole.to_string();
    }
    format!("Reading the configuration file, at line {line_no}\n>>> '{line}'\n{msg}")
}

/// Marks an error from an included file, reported as it is (see `line_error`).
const INCLUDED: &str = "\u{1}";

fn included(e: String) -> String {
    format!("{INCLUDED}{e}")
}

/// The paths `pattern` matches, as the C library's glob(3) (Redis's `include` uses
/// it): sorted, none when nothing matches.
fn glob(pattern: &str) -> Vec<String> {
    let Ok(c_pattern) = std::ffi::CString::new(pattern) else {
        return Vec::new();
    };
    // SAFETY: glob_t is plain data that glob() fills in; zeroed is its documented
    // initial state.
    let mut found: libc::glob_t = unsafe { std::mem::zeroed() };
    // SAFETY: `c_pattern` is NUL-terminated and outlives the call; `found` is a valid
    // glob_t; no error callback.
    let r = unsafe { libc::glob(c_pattern.as_ptr(), 0, None, &mut found) };
    let mut out = Vec::new();
    if r == 0 {
        for i in 0..found.gl_pathc {
            // SAFETY: glob() succeeded, so gl_pathv holds gl_pathc pointers to
            // NUL-terminated strings, valid until globfree.
            let path = unsafe { std::ffi::CStr::from_ptr(*found.gl_pathv.add(i)) };
            out.push(path.to_string_lossy().into_owned());
        }
    }
    // SAFETY: `found` was filled in by glob() (or is still zeroed, which globfree
    // accepts); it is not used after.
    unsafe { libc::globfree(&mut found) };
    out
}

/// Apply redis.conf text; `first_line` is the number of its first line.
fn apply_conf_text(
    c: &mut Config,
    text: &str,
    first_line: usize,
    state: &mut LoadState,
) -> Result<(), String> {
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.trim_matches(|ch| matches!(ch, ' ' | '\t' | '\r' | '\n'));
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line_no = first_line + i;
        let Some(argv) = split_args(line.as_bytes()) else {
            return Err(line_error(
                line_no,
                line,
                "Unbalanced quotes in configuration line",
            ));
        };
        if argv.is_empty() {
            continue;
        }
        let argv: Vec<String> = argv
            .into_iter()
            .map(|a| String::from_utf8_lossy(&a).into_owned())
            .collect();
        if argv[0].eq_ignore_ascii_case("sentinel") {
            // A bare `sentinel` is `--sentinel` from the command line: the mode was
            // chosen before the file was read.
            if argv.len() > 1 {
                if !crate::sentinel::enabled() {
                    return Err(line_error(
                        line_no,
                        line,
                        "sentinel directive while not in sentinel mode",
                    ));
                }
                c.sentinel_lines
                    .push((line_no, line.to_string(), argv[1..].to_vec()));
            }
            continue;
        }
        c.apply_directive(&argv, state)
            .map_err(|e| line_error(line_no, line, &e))?;
    }
    Ok(())
}

/// The TOML value of a key as redis.conf argument lines: a string is one line (split as
/// redis.conf splits it, so `save = "3600 1 300 100"` works), a number or boolean one
/// argument, an array one line per element (or one joined line for list options).
fn toml_lines(key: &str, v: &toml::Value) -> Result<Vec<Vec<String>>, String> {
    fn scalar(v: &toml::Value) -> Result<String, String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(n) => Ok(n.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) => Ok(if *b { "yes" } else { "no" }.into()),
            _ => Err("nested tables and dates are not valid option values".into()),
        }
    }
    let split = |s: &str| -> Result<Vec<String>, String> {
        let parts = split_args(s.as_bytes()).ok_or("Unbalanced quotes in configuration line")?;
        Ok(parts
            .into_iter()
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .collect())
    };
    let line = |args: Vec<String>| {
        let mut l = vec![key.to_string()];
        if args.is_empty() {
            l.push(String::new());
        } else {
            l.extend(args);
        }
        l
    };
    let joined = matches!(
        find(key).map(|d| d.kind),
        Some(Bind | OomValues | Percentiles | ReplicaOf)
    );
    match v {
        toml::Value::String(s) => {
            let multi = matches!(
                find(key).map(|d| d.kind),
                Some(Save | Bind | ClientOutputBufferLimit | OomValues | Percentiles | ReplicaOf)
            ) || key == "rename-command"
                || key == "user";
            Ok(vec![line(if multi { split(s)? } else { vec![s.clone()] })])
        }
        toml::Value::Array(items) if joined => {
            let args = items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?;
            Ok(vec![line(args)])
        }
        toml::Value::Array(items) => items
            .iter()
            .map(|i| {
                let s = scalar(i)?;
                Ok(line(split(&s)?))
            })
            .collect(),
        other => Ok(vec![line(vec![scalar(other)?])]),
    }
}

/// Apply a TOML configuration file's text.
fn apply_toml_text(
    c: &mut Config,
    text: &str,
    path: &str,
    state: &mut LoadState,
) -> Result<(), String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("Reading the configuration file {path}: {e}"))?;
    for (key, v) in &table {
        for argv in toml_lines(key, v)
            .map_err(|e| format!("Reading the configuration file {path}, key '{key}'\n{e}"))?
        {
            c.apply_directive(&argv, state)
                .map_err(|e| match e.strip_prefix(INCLUDED) {
                    Some(whole) => whole.to_string(),
                    None => format!(
                    "Reading the configuration file {path}, key '{key}'\n>>> '{key} = {v}'\n{e}"
                ),
                })?;
        }
    }
    Ok(())
}

/// Absolute form of a path, for CONFIG REWRITE and INFO's `config_file`.
fn absolute(path: &str) -> String {
    std::fs::canonicalize(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.to_string())
}

/// Build the configuration from the command line: `[config-file] [--name value ...]`,
/// as redis-server reads it. Without a file argument, `config.toml` in the current
/// directory is read if present. Flags override the file.
pub fn load(args: &[String]) -> Result<Config, String> {
    load_with_default(args, Some("config.toml"))
}

/// [`load`] with the file read when none is named (`None`: none).
pub fn load_with_default(args: &[String], default_file: Option<&str>) -> Result<Config, String> {
    let mut c = Config::default();
    let mut state = LoadState::default();
    let sentinel = crate::sentinel::enabled();
    if sentinel {
        // A Sentinel's own defaults: its port, and reachable from other hosts.
        c.set_option("port", &crate::sentinel::DEFAULT_PORT.to_string())?;
        c.set_option("protected-mode", "no")?;
    }
    let (file, flags) = match args.first() {
        Some(a) if !a.starts_with('-') => (Some(a.clone()), &args[1..]),
        _ => match default_file {
            Some(f) if std::path::Path::new(f).is_file() => (Some(f.to_string()), args),
            _ => (None, args),
        },
    };
    let mut file_lines = 0;
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "Fatal error, can't open config file '{}': {e}",
                absolute(path)
            )
        })?;
        if path.ends_with(".toml") {
            apply_toml_text(&mut c, &text, path, &mut state)?;
        } else {
            apply_conf_text(&mut c, &text, 1, &mut state)?;
        }
        file_lines = text.split('\n').count();
        c.config_file = Some(absolute(path));
    }
    // Redis appends "\n" + options to the file text, so flags start one line later.
    let options = flags_to_text(flags);
    apply_conf_text(
        &mut c,
        &options,
        file_lines + 1 + usize::from(file.is_none()),
        &mut state,
    )?;
    if sentinel {
        if file.as_deref().is_some_and(|f| f.ends_with(".toml")) {
            return Err(
                "Sentinel mode reads a redis.conf-style file (sentinel.conf), not TOML".into(),
            );
        }
        // A Sentinel keeps no data set, and one core is plenty for its few links.
        c.set_option("threads", "1")?;
        c.set_option("save", "")?;
        c.set_option("appendonly", "no")?;
    }
    Ok(c)
}

/// CONFIG REWRITE: rewrite the loaded file in place, keeping its comments and layout.
/// An option that appears in the file gets its current value on its first line (later
/// duplicates are dropped); an option that differs from its default and is not in the
/// file is appended. TOML files are rewritten as TOML, others as redis.conf.
/// `users` are the ACL users as `user` lines say them (`name rules...`), or `None`
/// to leave the file's `user` lines as they are (with an ACL file, as Redis).
pub fn rewrite(c: &Config, users: Option<&[String]>) -> Result<(), String> {
    let Some(path) = &c.config_file else {
        return Err("The server is running without a config file".into());
    };
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let toml = path.ends_with(".toml");
    let mut text = rewrite_text(c, &old, toml);
    if let Some(users) = users {
        text = with_users(&text, toml, users);
    }
    let tmp = format!("{path}.tmp-{}", std::process::id());
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("Rewriting config file: {}", crate::log::strerror(&e))
        })
}

/// The lines that express option `def`'s current value.
fn option_lines(c: &Config, def: &OptDef, toml: bool) -> Vec<String> {
    let v = c.values.get(def.name).cloned().unwrap_or_default();
    if def.kind == ReplicaOf && v.is_empty() {
        // As Redis: a master's rewritten file has no `replicaof` line at all.
        return Vec::new();
    }
    if toml {
        let lit = match def.kind {
            Mem(..) if memory_text(&v) != v => toml::Value::String(memory_text(&v)).to_string(),
            Int(..) | Mem(..) if v.parse::<i64>().is_ok() => v,
            ClientOutputBufferLimit => {
                let groups: Vec<String> = (0..3).map(|i| output_limit_text(c, i)).collect();
                toml::Value::String(groups.join(" ")).to_string()
            }
            _ => toml::Value::String(v).to_string(),
        };
        return vec![format!("{} = {lit}", def.name)];
    }
    match def.kind {
        Save if !v.is_empty() => {
            let nums: Vec<&str> = v.split_whitespace().collect();
            nums.chunks(2)
                .map(|p| format!("save {}", p.join(" ")))
                .collect()
        }
        ClientOutputBufferLimit => (0..3).map(|i| output_limit_line(c, i)).collect(),
        Save | Bind | OomValues | Percentiles | ReplicaOf if !v.is_empty() => {
            vec![format!("{} {v}", def.name)]
        }
        Str | Save | Bind | OomValues | Percentiles | ReplicaOf | NotifyEvents => {
            vec![format!("{} {}", def.name, repr(&v))]
        }
        Mem(..) => vec![format!("{} {}", def.name, memory_text(&v))],
        _ => vec![format!("{} {v}", def.name)],
    }
}

/// One class's `client-output-buffer-limit` as Redis's CONFIG REWRITE writes it:
/// `replica` for the replica class, sizes in the largest exact unit.
fn output_limit_text(c: &Config, class: usize) -> String {
    let l = c.client_output_buffer_limit[class];
    let name = match OUTPUT_CLASSES[class] {
        "slave" => "replica",
        n => n,
    };
    let size = |n: u64| memory_text(&n.to_string());
    format!(
        "{name} {} {} {}",
        size(l.hard),
        size(l.soft),
        l.soft_seconds
    )
}

/// The redis.conf line of one class's `client-output-buffer-limit`.
fn output_limit_line(c: &Config, class: usize) -> String {
    format!("client-output-buffer-limit {}", output_limit_text(c, class))
}

/// True if `line` (one option line of the old file) sets `def` to its current value.
fn unchanged_line(c: &Config, def: &OptDef, line: &str, toml: bool) -> bool {
    if matches!(def.kind, Save | ClientOutputBufferLimit) {
        return false;
    }
    let current = c.values.get(def.name).map(String::as_str).unwrap_or("");
    let args: Vec<String> = if toml {
        let Ok(table) = line.parse::<toml::Table>() else {
            return false;
        };
        let Some((key, v)) = table.iter().next() else {
            return false;
        };
        match toml_lines(key, v).ok().as_deref() {
            Some([one]) => one[1..].to_vec(),
            _ => return false,
        }
    } else {
        match split_args(line.as_bytes()) {
            Some(a) if a.len() > 1 => a[1..]
                .iter()
                .map(|x| String::from_utf8_lossy(x).into_owned())
                .collect(),
            _ => return false,
        }
    };
    normalize(def, &args.join(" "), current).is_ok_and(|v| v == current)
}

/// A memory value as Redis's CONFIG REWRITE writes it: the largest exact unit.
fn memory_text(v: &str) -> String {
    match v.parse::<u64>() {
        Ok(n) if n > 0 && n % (1 << 30) == 0 => format!("{}gb", n >> 30),
        Ok(n) if n > 0 && n % (1 << 20) == 0 => format!("{}mb", n >> 20),
        Ok(n) if n > 0 && n % (1 << 10) == 0 => format!("{}kb", n >> 10),
        _ => v.to_string(),
    }
}

fn rewrite_text(c: &Config, old: &str, toml: bool) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut done: Vec<&'static str> = Vec::new();
    // How many `client-output-buffer-limit` lines the file had (redis.conf only).
    let mut output_lines_seen = 0;
    for line in old.lines() {
        let t = line.trim();
        let key = if toml {
            t.split('=').next().unwrap_or("").trim().trim_matches('"')
        } else {
            t.split_whitespace().next().unwrap_or("")
        };
        let def = if t.starts_with('#') || t.is_empty() || (toml && !t.contains('=')) {
            None
        } else {
            find(key)
        };
        match def {
            // As Redis: one class per line, in class order, each taking the place of
            // the option's next line in the file; lines beyond the three are dropped.
            Some(d) if d.kind == ClientOutputBufferLimit && !toml => {
                if output_lines_seen < 3 {
                    out.push(output_limit_line(c, output_lines_seen));
                }
                output_lines_seen += 1;
            }
            Some(d) => {
                if !done.contains(&d.name) {
                    done.push(d.name);
                    // A line that already says the current value is kept as written.
                    if unchanged_line(c, d, t, toml) {
                        out.push(line.to_string());
                    } else {
                        out.extend(option_lines(c, d, toml));
                    }
                }
            }
            _ => out.push(line.to_string()),
        }
    }
    let mut header = false;
    let mut append = |out: &mut Vec<String>, lines: Vec<String>| {
        if !header {
            out.push("# Generated by CONFIG REWRITE".into());
            header = true;
        }
        out.extend(lines);
    };
    for d in OPTIONS {
        if done.contains(&d.name) {
            continue;
        }
        if d.kind == ClientOutputBufferLimit && !toml {
            // The classes the file had no line for, each only if it is not Redis's
            // default for that class.
            let limits = c
                .client_output_buffer_limit
                .iter()
                .zip(DEFAULT_OUTPUT_LIMITS);
            for (class, (limit, default)) in limits.enumerate().skip(output_lines_seen) {
                if *limit != default {
                    append(&mut out, vec![output_limit_line(c, class)]);
                }
            }
            continue;
        }
        let cur = c.values.get(d.name).map(String::as_str).unwrap_or("");
        let default = normalize(d, d.default, "").unwrap_or_default();
        if cur == default {
            continue;
        }
        append(&mut out, option_lines(c, d, toml));
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// `text` with its `user` lines replaced by `users`, where the first one was (or at
/// the end), as Redis's CONFIG REWRITE writes every ACL user.
fn with_users(text: &str, toml: bool, users: &[String]) -> String {
    let is_user = |l: &str| {
        let t = l.trim_start();
        if toml {
            t.split('=').next().map(str::trim) == Some("user")
        } else {
            t.split_whitespace().next() == Some("user")
        }
    };
    let lines: Vec<String> = if toml {
        let items: Vec<String> = users
            .iter()
            .map(|u| toml::Value::String(u.clone()).to_string())
            .collect();
        vec![format!("user = [{}]", items.join(", "))]
    } else {
        users.iter().map(|u| format!("user {u}")).collect()
    };
    let mut out: Vec<String> = Vec::new();
    let mut placed = false;
    for l in text.lines() {
        if is_user(l) {
            if !placed {
                out.extend(lines.iter().cloned());
                placed = true;
            }
            continue;
        }
        out.push(l.to_string());
    }
    if !placed {
        out.extend(lines);
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_writes_every_acl_user() {
        let users = [
            "default on nopass ~* &* +@all".to_string(),
            "a off -@all".into(),
        ];
        assert_eq!(
            with_users("port 1\nuser old on\n# c\nuser old2\n", false, &users),
            "port 1\nuser default on nopass ~* &* +@all\nuser a off -@all\n# c\n"
        );
        assert_eq!(
            with_users("port = 1\n", true, &users[1..]),
            "port = 1\nuser = [\"a off -@all\"]\n"
        );
    }

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn tmpfile(name: &str, text: &str) -> String {
        let dir = std::env::temp_dir().join(format!("shardis-cfg-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    #[test]
    fn defaults_match_the_table() {
        let c = Config::default();
        assert_eq!(c.port, 6379);
        assert_eq!(c.bind, vec!["127.0.0.1", "-::1"]);
        assert_eq!(c.get("save"), Some("3600 1 300 100 60 10000"));
        assert_eq!(c.get("slave-read-only"), Some("yes"));
        assert_eq!(c.latency_tracking_info_percentiles, vec![50.0, 99.0, 99.9]);
        for o in OPTIONS {
            assert_eq!(
                normalize(o, o.default, o.default).as_deref(),
                Ok(o.default),
                "{}",
                o.name
            );
        }
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("1GB"), Some(1 << 30));
        assert_eq!(parse_memory("64mb"), Some(64 << 20));
        assert_eq!(parse_memory("2k"), Some(2000));
        assert_eq!(parse_memory("3kb"), Some(3072));
        assert_eq!(parse_memory("5b"), Some(5));
        assert_eq!(parse_memory("100"), Some(100));
        assert_eq!(parse_memory("1.5gb"), None);
        assert_eq!(parse_memory("-1"), None);
        assert_eq!(parse_memory("gb"), None);
        let mut c = Config::default();
        c.set_option("maxmemory", "1gb").unwrap();
        assert_eq!(c.maxmemory, 1 << 30);
        assert_eq!(c.get("maxmemory"), Some("1073741824"));
        assert_eq!(
            c.set_option("maxmemory", "lots"),
            Err("argument must be a memory value".into())
        );
        assert_eq!(
            c.set_option("proto-max-bulk-len", "1kb"),
            Err("argument must be between 1048576 and 9223372036854775807 inclusive".into())
        );
    }

    #[test]
    fn value_kinds_and_errors() {
        let mut c = Config::default();
        assert_eq!(
            c.set_option("port", "abc"),
            Err("argument couldn't be parsed into an integer".into())
        );
        assert_eq!(
            c.set_option("port", "70000"),
            Err("argument must be between 0 and 65535 inclusive".into())
        );
        assert_eq!(
            c.set_option("appendonly", "maybe"),
            Err("argument must be 'yes' or 'no'".into())
        );
        c.set_option("appendonly", "YES").unwrap();
        assert_eq!(c.get("appendonly"), Some("yes"));
        c.set_option("maxmemory-policy", "ALLKEYS-LRU").unwrap();
        assert_eq!(c.maxmemory_policy, "allkeys-lru");
        assert_eq!(
            c.set_option("appendfsync", "x"),
            Err("argument(s) must be one of the following: everysec, always, no".into())
        );
        c.set_option("hz", "1000").unwrap();
        assert_eq!(c.hz, 500);
        c.set_option("notify-keyspace-events", "KEA").unwrap();
        assert_eq!(c.get("notify-keyspace-events"), Some("AKE"));
        c.set_option("client-output-buffer-limit", "normal 1mb 2mb 3")
            .unwrap();
        assert_eq!(
            c.get("client-output-buffer-limit"),
            Some("normal 1048576 2097152 3 slave 268435456 67108864 60 pubsub 33554432 8388608 60")
        );
        c.set_option("latency-tracking-info-percentiles", "50.0 99.99")
            .unwrap();
        assert_eq!(c.get("latency-tracking-info-percentiles"), Some("50 99.99"));
        c.set_option("maxmemory-clients", "10%").unwrap();
        assert_eq!(c.get("maxmemory-clients"), Some("10%"));
        c.set_option("slaveof", "10.0.0.1 6380").unwrap();
        assert_eq!(c.get("replicaof"), Some("10.0.0.1 6380"));
    }

    #[test]
    fn toml_file_then_flags() {
        let p = tmpfile(
            "a.toml",
            "# comment\nport = 7001\nbind = \"127.0.0.1\"\nsave = \"\"\nthreads = 2\nmaxmemory = \"100mb\"\nappendonly = false\nclient-output-buffer-limit = [\"pubsub 64mb 16mb 90\"]\n",
        );
        let c =
            load_with_default(&args(&[&p, "--port", "7002", "--requirepass", "x"]), None).unwrap();
        assert_eq!(c.port, 7002);
        assert_eq!(c.bind, vec!["127.0.0.1"]);
        assert_eq!(c.get("save"), Some(""));
        assert_eq!(c.threads, 2);
        assert_eq!(c.maxmemory, 100 << 20);
        assert_eq!(c.get("appendonly"), Some("no"));
        assert_eq!(c.requirepass.as_deref(), Some("x"));
        assert!(c
            .get("client-output-buffer-limit")
            .unwrap()
            .ends_with("pubsub 67108864 16777216 90"));
        assert!(c.config_file.as_deref().unwrap().ends_with("a.toml"));
        let bad = tmpfile("b.toml", "port = \"abc\"\n");
        let e = load_with_default(&args(&[&bad]), None).unwrap_err();
        assert!(
            e.contains("argument couldn't be parsed into an integer"),
            "{e}"
        );
        let unknown = tmpfile("c.toml", "no-such-option = 1\n");
        let e = load_with_default(&args(&[&unknown]), None).unwrap_err();
        assert!(
            e.contains("Bad directive or wrong number of arguments"),
            "{e}"
        );
    }

    #[test]
    fn redis_conf_file() {
        // In the style of Debian's /etc/redis/redis.conf.
        let p = tmpfile(
            "redis.conf",
            "# Redis configuration file example.\n\
             bind 127.0.0.1 -::1\n\
             protected-mode yes\n\
             port 6390\n\
             tcp-backlog 511\n\
             timeout 0\n\
             tcp-keepalive 300\n\
             daemonize no\n\
             pidfile /run/redis/redis-server.pid\n\
             loglevel notice\n\
             logfile /var/log/redis/redis-server.log\n\
             databases 16\n\
             proc-title-template \"{title} {listen-addr} {server-mode}\"\n\
             save 3600 1\n\
             save 300 100\n\
             dbfilename dump.rdb\n\
             appendfilename \"appendonly.aof\"\n\
             auto-aof-rewrite-min-size 64mb\n\
             notify-keyspace-events \"\"\n\
             client-output-buffer-limit normal 0 0 0\n\
             client-output-buffer-limit replica 256mb 64mb 60\n\
             hash-max-ziplist-entries 256\n\
             slave-read-only no\n\
             rename-command FLUSHALL \"\"\n",
        );
        let c = load_with_default(&args(&[&p]), None).unwrap();
        assert_eq!(c.port, 6390);
        assert_eq!(c.get("save"), Some("3600 1 300 100"));
        assert_eq!(
            c.get("proc-title-template"),
            Some("{title} {listen-addr} {server-mode}")
        );
        assert_eq!(c.get("auto-aof-rewrite-min-size"), Some("67108864"));
        assert_eq!(c.get("hash-max-listpack-entries"), Some("256"));
        assert_eq!(c.get("replica-read-only"), Some("no"));
        assert_eq!(c.logfile, "/var/log/redis/redis-server.log");
        assert_eq!(
            c.renamed_commands,
            vec![("FLUSHALL".to_string(), String::new())]
        );
        // Flags come after the file: `--save ''` clears, a bare `--save` too.
        let c = load_with_default(&args(&[&p, "--save", "", "--port", "7000"]), None).unwrap();
        assert_eq!(c.get("save"), Some(""));
        assert_eq!(c.port, 7000);
        let c = load_with_default(&args(&[&p, "--save", "--appendonly", "no"]), None).unwrap();
        assert_eq!(c.get("save"), Some(""));
        // A `save` line without arguments in a file: zero pairs, as in Redis (the
        // file's first `save` line replaces the defaults).
        let bare = tmpfile("bare-save.conf", "save \n");
        let c = load_with_default(&args(&[&bare]), None).unwrap();
        assert_eq!(c.get("save"), Some(""));
        let bare = tmpfile("bare-save-2.conf", "save 60 10\nsave \n");
        let c = load_with_default(&args(&[&bare]), None).unwrap();
        assert_eq!(c.get("save"), Some("60 10"));
        let bad = tmpfile("bad.conf", "port 7391\nfoo bar baz\n");
        assert_eq!(
            load_with_default(&args(&[&bad]), None).unwrap_err(),
            "Reading the configuration file, at line 2\n>>> 'foo bar baz'\nBad directive or wrong number of arguments"
        );
        let inc = tmpfile("inc.conf", "include /nonexistent/other.conf\n");
        assert_eq!(
            load_with_default(&args(&[&inc]), None).unwrap_err(),
            "Fatal error, can't open config file '/nonexistent/other.conf': No such file or directory"
        );
    }

    /// `include` as Redis 7.0's: in place, a glob for conf.d directories (which may
    /// be empty), errors told in the included file's lines.
    #[test]
    fn include_reads_files_in_place_as_redis() {
        let dir = std::env::temp_dir().join(format!("shardis-include-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        write("conf.d/b.conf", "maxclients 200\n");
        write("conf.d/a.conf", "maxclients 100\nhz 20\n");
        let common = write("common.conf", "port 7001\nhz 15\n");
        let glob = format!("{}/conf.d/*.conf", dir.display());
        let empty = format!("{}/none.d/*.conf", dir.display());
        let main = write(
            "main.conf",
            &format!("port 7000\ninclude {common}\ninclude {glob}\ninclude {empty}\nhz 30\n"),
        );
        let c = load_with_default(&args(&[&main]), None).unwrap();
        // In place: later lines win, and glob order (a before b).
        assert_eq!(c.get("port"), Some("7001"));
        assert_eq!(c.get("maxclients"), Some("200"));
        assert_eq!(c.get("hz"), Some("30"));
        let bad = write("bad.conf", "hz 10\nnot-an-option 1\n");
        let main = write("main2.conf", &format!("port 7000\ninclude {bad}\n"));
        assert_eq!(
            load_with_default(&args(&[&main]), None).unwrap_err(),
            "Reading the configuration file, at line 2\n>>> 'not-an-option 1'\nBad directive or wrong number of arguments"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flags_only_like_redis_server() {
        let c = load_with_default(
            &args(&[
                "--port",
                "7000",
                "--threads",
                "2",
                "--requirepass",
                "x",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ]),
            None,
        )
        .unwrap();
        assert_eq!((c.port, c.threads), (7000, 2));
        assert_eq!(c.requirepass.as_deref(), Some("x"));
        assert!(!c.protected_mode);
        assert_eq!(c.get("save"), Some(""));
        assert_eq!(
            load_with_default(&args(&["--port", "abc"]), None).unwrap_err(),
            "Reading the configuration file, at line 2\n>>> 'port \"abc\"'\nargument couldn't be parsed into an integer"
        );
        assert_eq!(
            load_with_default(&args(&["--port", "7391", "--foo", "bar"]), None).unwrap_err(),
            "Reading the configuration file, at line 3\n>>> 'foo \"bar\"'\nBad directive or wrong number of arguments"
        );
        // Multiple values for one flag, and a value that looks like a flag.
        let c = load_with_default(&args(&["--save", "60", "10", "--requirepass", "--x"]), None)
            .unwrap();
        assert_eq!(c.get("save"), Some("60 10"));
        assert_eq!(c.requirepass.as_deref(), Some("--x"));
        let c = load_with_default(&args(&["--daemonize", "yes"]), None).unwrap();
        assert_eq!(c.get("daemonize"), Some("yes"));
    }

    #[test]
    fn client_output_buffer_limit_reads_values_as_redis() {
        let mut c = Config::default();
        let get = |c: &Config| c.get("client-output-buffer-limit").unwrap().to_string();
        c.set_option(
            "client-output-buffer-limit",
            "pubsub 64mb 16mb 90 Normal 1KB 2k 3",
        )
        .unwrap();
        assert_eq!(
            get(&c),
            "normal 1024 2000 3 slave 268435456 67108864 60 pubsub 67108864 16777216 90"
        );
        assert_eq!(
            c.client_output_buffer_limit[2],
            OutputLimit {
                hard: 64 << 20,
                soft: 16 << 20,
                soft_seconds: 90
            }
        );
        // Empty: nothing changes. Single spaces split: a double one is an argument.
        c.set_option("client-output-buffer-limit", "").unwrap();
        assert!(get(&c).starts_with("normal 1024 2000 3 "));
        let count = "Wrong number of arguments in buffer limit configuration.";
        let class = "Invalid client class specified in buffer limit configuration.";
        let value = "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
        for (v, e) in [
            ("normal  1 2 3", count),
            ("normal 1 2", count),
            ("master 1 2 3", class),
            ("normal 1.5mb 0 0", value),
            ("normal -1 0 0", value),
            ("normal 1 2 -1", value),
            ("normal 1 2 +", value),
            ("normal 1 2 3000000000", value),
            // All or nothing: the first group is not applied either.
            ("replica 1 1 1 foo 1 2 3", class),
        ] {
            assert_eq!(
                c.set_option("client-output-buffer-limit", v),
                Err(e.to_string()),
                "{v}"
            );
        }
        assert!(get(&c).contains(" slave 268435456 67108864 60 "));
        // memtoull's and strtoll's quirks: no digits read as 0, overflow saturates,
        // the seconds are truncated to an int.
        c.set_option("client-output-buffer-limit", "normal mb 2 +5")
            .unwrap();
        assert!(get(&c).starts_with("normal 0 2 5 "));
        c.set_option(
            "client-output-buffer-limit",
            "slave 99999999999999999999 1 ",
        )
        .unwrap();
        assert!(get(&c).contains(" slave 18446744073709551615 1 0 "));
        c.set_option("client-output-buffer-limit", "replica 1 2 99999999999")
            .unwrap();
        assert!(get(&c).contains(" slave 1 2 1215752191 "));
        // In a file, one empty argument is one argument.
        let p = tmpfile("cobl.conf", "client-output-buffer-limit \"\"\n");
        assert!(load_with_default(&args(&[&p]), None)
            .unwrap_err()
            .ends_with(count));
    }

    #[test]
    fn client_output_buffer_limit_is_rewritten_one_class_a_line() {
        let mut c = Config::default();
        c.set_option(
            "client-output-buffer-limit",
            "pubsub 64mb 16mb 90 normal 1000 0 0",
        )
        .unwrap();
        // Not in the file: only the classes that differ from Redis's defaults.
        assert_eq!(
            rewrite_text(&c, "port 6379\n", false),
            "port 6379\n# Generated by CONFIG REWRITE\n\
             client-output-buffer-limit normal 1000 0 0\n\
             client-output-buffer-limit pubsub 64mb 16mb 90\n"
        );
        // In the file: each class takes the option's next line; extra lines go, and a
        // class left without a line is appended only if it differs from the default.
        assert_eq!(
            rewrite_text(&c, "client-output-buffer-limit normal 0 0 0\n# x\n", false),
            "client-output-buffer-limit normal 1000 0 0\n# x\n# Generated by CONFIG REWRITE\n\
             client-output-buffer-limit pubsub 64mb 16mb 90\n"
        );
        let four = "client-output-buffer-limit pubsub 1 0 0\n".repeat(4);
        assert_eq!(
            rewrite_text(&c, &four, false),
            "client-output-buffer-limit normal 1000 0 0\n\
             client-output-buffer-limit replica 256mb 64mb 60\n\
             client-output-buffer-limit pubsub 64mb 16mb 90\n"
        );
        // TOML: one key, the three classes with units.
        assert_eq!(
            rewrite_text(&c, "", true),
            "# Generated by CONFIG REWRITE\n\
             client-output-buffer-limit = \"normal 1000 0 0 replica 256mb 64mb 60 pubsub 64mb 16mb 90\"\n"
        );
    }

    #[test]
    fn rewrite_keeps_comments_and_appends() {
        let mut c = Config::default();
        apply_conf_text(
            &mut c,
            "# top\nport 6390\n# keep me\nport 6391\n",
            1,
            &mut LoadState::default(),
        )
        .unwrap();
        c.set_option("maxmemory", "1mb").unwrap();
        let out = rewrite_text(&c, "# top\nport 6390\n# keep me\nport 6391\n", false);
        assert_eq!(
            out,
            "# top\nport 6391\n# keep me\n# Generated by CONFIG REWRITE\nmaxmemory 1mb\n"
        );
        let out = rewrite_text(
            &c,
            "# t\nport = 6390\nproto-max-bulk-len = \"512mb\"\n",
            true,
        );
        assert_eq!(
            out,
            "# t\nport = 6391\nproto-max-bulk-len = \"512mb\"\n# Generated by CONFIG REWRITE\nmaxmemory = \"1mb\"\n"
        );
        // Unchanged lines keep their spelling; save lines are regenerated.
        let old = "port   6391\nsave 60 1\nsave 10 1\n";
        assert_eq!(
            rewrite_text(&c, old, false).lines().next(),
            Some("port   6391")
        );
    }

    #[test]
    fn rewrite_follows_the_master() {
        let mut c = Config::default();
        c.set_option("replicaof", "127.0.0.1 7001").unwrap();
        assert_eq!(
            rewrite_text(&c, "port 6379\nreplicaof 10.0.0.1 6379\n", false),
            "port 6379\nreplicaof 127.0.0.1 7001\n"
        );
        assert_eq!(
            rewrite_text(&c, "port = 6379\n", true),
            "port = 6379\n# Generated by CONFIG REWRITE\nreplicaof = \"127.0.0.1 7001\"\n"
        );
        // A promoted replica's file names no master, in either form.
        c.set_option("replicaof", "").unwrap();
        assert_eq!(
            rewrite_text(&c, "port 6379\nslaveof 10.0.0.1 6379\n", false),
            "port 6379\n"
        );
        assert_eq!(
            rewrite_text(&c, "port = 6379\nreplicaof = \"10.0.0.1 6379\"\n", true),
            "port = 6379\n"
        );
    }

    #[test]
    fn repo_config_toml_holds_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
        let c = load_with_default(&args(&[path]), None).unwrap();
        let d = Config::default();
        for o in OPTIONS {
            assert_eq!(c.values.get(o.name), d.values.get(o.name), "{}", o.name);
        }
    }
}
