//! Per-shard counters behind INFO stats / commandstats / errorstats / latencystats and
//! the `shards` section. Each shard counts only what ran on it; INFO sums over shards.

use hdrhistogram::Histogram;
use std::collections::HashMap;

/// Stats maps are looked up once per command: a fast non-cryptographic hasher.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Clone)]
pub struct CommandStats {
    pub calls: u64,
    pub usec: u64,
    pub rejected_calls: u64,
    pub failed_calls: u64,
    /// Latency in microseconds (1 us .. 1000 s, 2 significant digits).
    pub latency: Histogram<u64>,
}

impl Default for CommandStats {
    fn default() -> Self {
        CommandStats {
            calls: 0,
            usec: 0,
            rejected_calls: 0,
            failed_calls: 0,
            latency: Histogram::new_with_bounds(1, 1_000_000_000, 2)
                .expect("valid histogram bounds"),
        }
    }
}

impl CommandStats {
    pub fn merge(&mut self, o: &CommandStats) {
        self.calls += o.calls;
        self.usec += o.usec;
        self.rejected_calls += o.rejected_calls;
        self.failed_calls += o.failed_calls;
        let _ = self.latency.add(&o.latency);
    }
}

#[derive(Clone, Default)]
pub struct ShardStats {
    /// Connections of this core blocked in BLPOP & co (a gauge, not reset).
    pub blocked_clients: u64,
    /// Connections of this core whose command CLIENT PAUSE postponed (a gauge, not
    /// reset; INFO counts them among `blocked_clients`, as Redis).
    pub paused_clients: u64,
    /// Keys of this shard that blocked clients wait on (a gauge).
    pub blocking_keys: u64,
    pub commands_processed: u64,
    pub connections_received: u64,
    pub rejected_connections: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub total_error_replies: u64,
    /// Errors that requests from our master or the AOF got (see
    /// `dispatch::report_unexpected_errors`).
    pub unexpected_error_replies: u64,
    /// Socket reads and writes (INFO total_reads_processed / total_writes_processed).
    pub reads_processed: u64,
    pub writes_processed: u64,
    /// Time spent in the active expire cycle, microseconds.
    pub expire_cycle_us: u64,
    /// Keys evicted to stay under `maxmemory`.
    pub evicted_keys: u64,
    /// Clients closed to stay under `maxmemory-clients`.
    pub evicted_clients: u64,
    /// Hops this shard sent to / served for other shards.
    pub hops_sent: u64,
    pub hops_served: u64,
    /// Connections moved to this shard's core from another (connection affinity).
    pub connections_moved_in: u64,
    /// Keyed by lower-case command name (`get`, `client|list`).
    pub commands: FastMap<String, CommandStats>,
    /// Keyed by error code (`ERR`, `WRONGTYPE`).
    pub errors: FastMap<String, u64>,
}

impl ShardStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record one write of `bytes` to a client's socket.
    pub fn wrote(&mut self, bytes: usize) {
        self.net_output_bytes += bytes as u64;
        self.writes_processed += 1;
    }

    /// Record one executed command.
    /// Record a call that ran; `failures`: how many times it counts as failed (0 or
    /// 1, more for a script returning errors, see `Reply::failures`).
    pub fn record_call(&mut self, name: &str, usec: u64, failures: u64) {
        self.commands_processed += 1;
        let s = match self.commands.get_mut(name) {
            Some(s) => s,
            None => self.commands.entry(name.to_string()).or_default(),
        };
        s.calls += 1;
        s.usec += usec;
        s.failed_calls += failures;
        let _ = s.latency.record(usec.max(1));
    }

    /// Record a command refused before running (arity, unknown, auth...).
    pub fn record_rejected(&mut self, name: Option<&str>) {
        if let Some(name) = name {
            self.commands
                .entry(name.to_string())
                .or_default()
                .rejected_calls += 1;
        }
    }

    /// Record an error reply; `text` starts with the code (`ERR ...`).
    pub fn record_error(&mut self, text: &str) {
        self.total_error_replies += 1;
        let code = text.split(' ').next().unwrap_or("ERR");
        match self.errors.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                self.errors.insert(code.to_string(), 1);
            }
        }
    }

    pub fn merge(&mut self, o: &ShardStats) {
        self.commands_processed += o.commands_processed;
        self.blocked_clients += o.blocked_clients;
        self.paused_clients += o.paused_clients;
        self.blocking_keys += o.blocking_keys;
        self.connections_received += o.connections_received;
        self.rejected_connections += o.rejected_connections;
        self.keyspace_hits += o.keyspace_hits;
        self.keyspace_misses += o.keyspace_misses;
        self.net_input_bytes += o.net_input_bytes;
        self.net_output_bytes += o.net_output_bytes;
        self.reads_processed += o.reads_processed;
        self.writes_processed += o.writes_processed;
        self.expire_cycle_us += o.expire_cycle_us;
        self.evicted_keys += o.evicted_keys;
        self.evicted_clients += o.evicted_clients;
        self.total_error_replies += o.total_error_replies;
        self.unexpected_error_replies += o.unexpected_error_replies;
        self.hops_sent += o.hops_sent;
        self.hops_served += o.hops_served;
        self.connections_moved_in += o.connections_moved_in;
        for (k, v) in &o.commands {
            self.commands.entry(k.clone()).or_default().merge(v);
        }
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }

    /// CONFIG RESETSTAT: the counters, not the gauges (a client blocked now is still
    /// blocked, and its wait's end takes it off the count).
    pub fn reset(&mut self) {
        let gauges = (
            self.blocked_clients,
            self.paused_clients,
            self.blocking_keys,
        );
        *self = ShardStats::default();
        (
            self.blocked_clients,
            self.paused_clients,
            self.blocking_keys,
        ) = gauges;
    }
}
