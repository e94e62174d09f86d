//! Per-shard counters behind INFO stats / commandstats / errorstats / latencystats and
//! the `shards` section. Each shard counts only what ran on it; INFO sums over shards.

use hdrhistogram::Histogram;
use std::collections::HashMap;

/// Stats maps are looked up once per command: a fast non-cryptographic hasher.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Samples averaged by an instantaneous rate (Redis's `STATS_METRIC_SAMPLES`).
const RATE_SAMPLES: usize = 16;

/// What the instantaneous rates follow, in [`Rates`]' order.
#[derive(Clone, Copy)]
pub enum Metric {
    /// Commands processed: `instantaneous_ops_per_sec`.
    Commands,
    /// `instantaneous_input_kbps`, `instantaneous_output_kbps`.
    NetInput,
    NetOutput,
    /// `instantaneous_input_repl_kbps`, `instantaneous_output_repl_kbps` (shard 0
    /// follows the process's replication totals; the other shards leave them at 0).
    ReplInput,
    ReplOutput,
}

const METRICS: usize = 5;

/// How often the rates are sampled (Redis's cron: `run_with_period(100)`).
const SAMPLE_MS: u64 = 100;

/// Redis's instantaneous metrics (`trackInstantaneousMetric`): the cron samples each
/// total about every 100 ms, keeps the rate per second since the previous sample for
/// the last [`RATE_SAMPLES`] samples, and a rate is their mean. Each shard follows its
/// own totals; INFO adds the shards' rates (`merge` adds the samples).
#[derive(Clone, Default)]
pub struct Rates {
    samples: [[u64; RATE_SAMPLES]; METRICS],
    next: usize,
    /// When the last sample was taken (ms; 0: never) and the totals then.
    last_ms: u64,
    last: [u64; METRICS],
}

impl Rates {
    /// Take a sample of `totals` (by [`Metric`]) at `now_ms`. A sample over a longer
    /// time than [`SAMPLE_MS`] (an idle shard's cron) fills one slot per period it
    /// covers, so that the mean weighs time as Redis's (taken every period) does.
    pub fn track(&mut self, now_ms: u64, totals: [u64; METRICS]) {
        let t = now_ms.saturating_sub(self.last_ms);
        let slots = (t / SAMPLE_MS).clamp(1, RATE_SAMPLES as u64) as usize;
        for (m, &total) in totals.iter().enumerate() {
            let delta = total.saturating_sub(self.last[m]);
            // (A first sample, after start or RESETSTAT, counts from 0 over no time
            // known: it says nothing.)
            let rate = if t > 0 && self.last_ms != 0 {
                delta * 1000 / t
            } else {
                0
            };
            for k in 0..slots {
                self.samples[m][(self.next + k) % RATE_SAMPLES] = rate;
            }
        }
        self.next = (self.next + slots) % RATE_SAMPLES;
        self.last_ms = now_ms;
        self.last = totals;
    }

    /// True when a sample is due: [`SAMPLE_MS`] since the last one.
    pub fn due(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_ms) >= SAMPLE_MS
    }

    /// The mean of `metric`'s samples, per second.
    pub fn get(&self, metric: Metric) -> u64 {
        self.samples[metric as usize].iter().sum::<u64>() / RATE_SAMPLES as u64
    }

    fn merge(&mut self, o: &Rates) {
        for (mine, theirs) in self.samples.iter_mut().zip(&o.samples) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
    }
}

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
    /// The instantaneous rates, sampled by the cron (reset with the counters they
    /// follow, as Redis's `resetServerStats` does).
    pub rates: Rates,
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

    /// A blocked call that ended in an error (counted once as a call when it ran).
    pub fn record_failed(&mut self, name: &str) {
        self.commands
            .entry(name.to_string())
            .or_default()
            .failed_calls += 1;
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
        self.rates.merge(&o.rates);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(n: u64) -> [u64; METRICS] {
        [n, 2 * n, 0, 0, 0]
    }

    #[test]
    fn a_rate_is_the_mean_of_the_last_sixteen_periods() {
        let mut r = Rates::default();
        assert!(r.due(1_000));
        r.track(1_000, ops(500));
        // The first sample knows no earlier time: it says nothing.
        assert_eq!(r.get(Metric::Commands), 0);
        assert!(!r.due(1_050));
        // 100 commands in 100 ms: 1000/s in one slot of sixteen.
        r.track(1_100, ops(600));
        assert_eq!(r.get(Metric::Commands), 1000 / 16);
        assert_eq!(r.get(Metric::NetInput), 2000 / 16);
        for k in 2..=16 {
            r.track(1_000 + 100 * k, ops(500 + 100 * k));
        }
        assert_eq!(r.get(Metric::Commands), 1000);
        // A quiet second sampled at once (an idle shard's cron) fills ten slots.
        r.track(3_600, ops(2_100));
        assert_eq!(r.get(Metric::Commands), 6 * 1000 / 16);
        r.track(4_600, ops(2_100));
        assert_eq!(r.get(Metric::Commands), 0);
    }

    #[test]
    fn shards_rates_add_up() {
        let mut a = Rates::default();
        let mut b = Rates::default();
        for k in 0..=16 {
            a.track(100 * k + 100, ops(10 * k));
            b.track(100 * k + 100, ops(30 * k));
        }
        let mut total = ShardStats::default();
        total.merge(&ShardStats {
            rates: a,
            ..Default::default()
        });
        total.merge(&ShardStats {
            rates: b,
            ..Default::default()
        });
        assert_eq!(total.rates.get(Metric::Commands), 400);
    }
}
