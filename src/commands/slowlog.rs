//! SLOWLOG and LATENCY (Redis's `slowlog.c`, `latency.c`).
//!
//! The one idea to hold: each shard keeps its own slow log and its own per-command
//! latency histograms (`shard::slowlog`, `ShardStats::commands`); these commands copy
//! what they need out of every shard with one `shards.all(...)` and merge. Slow log ids
//! come from one process-wide counter, so ordering the merged entries by id gives
//! Redis's newest-first order. Each shard keeps up to `slowlog-max-len` entries; GET and
//! LEN show at most `slowlog-max-len` of the merged newest, as one Redis log would.
//!
//! LATENCY HISTOGRAM: Redis 7.0's format (per command, `calls` and a map of power-of-two
//! microsecond buckets to cumulative counts). The latency *monitor* (LATEST, HISTORY,
//! RESET, GRAPH, DOCTOR) reads the events every shard and the AOF writer threads record
//! (`shard::latency`: `command`, `fast-command`, `expire-cycle`, `aof-write`,
//! `aof-fsync-always`), merged per second on read. LATEST lists events by name (Redis
//! lists them in its dict's order, which has no meaning). GRAPH draws Redis's sparkline;
//! DOCTOR keeps Redis's texts for "disabled" and "no spike" and its per-event statistics
//! line, without Redis's per-event advice.

use super::config::help_reply;
use super::{args, errors, Command, Exec, LocalBoxFuture};
use crate::client::ClientRef;
use crate::protocol::Reply;
use crate::runtime::Shards;
use crate::shard::latency;
use crate::shard::slowlog::SlowlogEntry;
use crate::shard::stats::CommandStats;
use bytes::Bytes;
use std::collections::BTreeMap;

const ADMIN: &str = "admin loading stale";
const ADMIN_NOSCRIPT: &str = "admin noscript loading stale";
const ADMIN_ACL: &str = "admin slow dangerous";

static SLOWLOG_SUBCOMMANDS: &[Command] = &[
    Command::new(
        "slowlog|get",
        -2,
        ADMIN,
        ADMIN_ACL,
        Exec::Server(slowlog_get),
    ),
    Command::new(
        "slowlog|len",
        2,
        ADMIN,
        ADMIN_ACL,
        Exec::Server(slowlog_len),
    ),
    Command::new(
        "slowlog|reset",
        2,
        ADMIN,
        ADMIN_ACL,
        Exec::Server(slowlog_reset),
    ),
    Command::new(
        "slowlog|help",
        2,
        "loading stale",
        "slow",
        Exec::Server(slowlog_help),
    ),
];

static LATENCY_SUBCOMMANDS: &[Command] = &[
    Command::new(
        "latency|doctor",
        2,
        ADMIN_NOSCRIPT,
        ADMIN_ACL,
        Exec::Server(latency_doctor),
    ),
    Command::new(
        "latency|graph",
        3,
        ADMIN_NOSCRIPT,
        ADMIN_ACL,
        Exec::Server(latency_graph),
    ),
    Command::new(
        "latency|history",
        3,
        ADMIN_NOSCRIPT,
        ADMIN_ACL,
        Exec::Server(latency_history),
    ),
    Command::new(
        "latency|latest",
        2,
        ADMIN_NOSCRIPT,
        ADMIN_ACL,
        Exec::Server(latency_latest),
    ),
    Command::new(
        "latency|reset",
        -2,
        ADMIN_NOSCRIPT,
        ADMIN_ACL,
        Exec::Server(latency_reset),
    ),
    Command::new(
        "latency|histogram",
        -2,
        ADMIN_NOSCRIPT,
        ADMIN_ACL,
        Exec::Server(latency_histogram),
    ),
    Command::new(
        "latency|help",
        2,
        "loading stale",
        "slow",
        Exec::Server(latency_help),
    ),
];

pub static COMMANDS: &[Command] = &[
    Command::new("slowlog", -2, "", "slow", Exec::Container).subcommands(SLOWLOG_SUBCOMMANDS),
    Command::new("latency", -2, "", "slow", Exec::Container).subcommands(LATENCY_SUBCOMMANDS),
];

/// Merge the shards' logs (each newest first) into the `count` newest entries by id.
pub fn merge_newest(logs: Vec<Vec<SlowlogEntry>>, count: usize) -> Vec<SlowlogEntry> {
    let mut all: Vec<SlowlogEntry> = logs.into_iter().flatten().collect();
    all.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
    all.truncate(count);
    all
}

/// A client's address as Redis prints it: `?:0` for a script's commands (no peer).
fn peer(addr: &crate::client::Peer) -> String {
    match addr {
        crate::client::Peer::Ip(a) if a.ip().is_unspecified() && a.port() == 0 => "?:0".into(),
        a => a.to_string(),
    }
}

fn entry_reply(e: &SlowlogEntry) -> Reply {
    Reply::Array(vec![
        Reply::Int(e.id as i64),
        Reply::Int(e.time_s as i64),
        Reply::Int(e.duration_us as i64),
        Reply::Array(e.argv.iter().map(|a| Reply::Bulk(a.clone())).collect()),
        Reply::bulk_str(&peer(&e.addr)),
        Reply::bulk_str(&e.name),
    ])
}

fn slowlog_get<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        if argv.len() > 3 {
            return Reply::err(errors::SLOWLOG_GET_ARGS);
        }
        let max = s.server.config.current().slowlog_max_len;
        let count = match argv.get(2) {
            None => 10,
            Some(a) => match args::int(a) {
                Ok(-1) => max,
                Ok(n) if n >= 0 => (n as usize).min(max),
                _ => return Reply::err(errors::SLOWLOG_COUNT),
            },
        };
        let logs = s
            .all(move |sh| sh.slowlog.entries.iter().take(count).cloned().collect())
            .await;
        Reply::Array(merge_newest(logs, count).iter().map(entry_reply).collect())
    })
}

fn slowlog_len<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let max = s.server.config.current().slowlog_max_len;
        let lens = s.all(|sh| sh.slowlog.entries.len()).await;
        Reply::Int(lens.iter().sum::<usize>().min(max) as i64)
    })
}

fn slowlog_reset<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        s.all(|sh| sh.slowlog.entries.clear()).await;
        Reply::ok()
    })
}

fn slowlog_help<'a>(
    _c: &'a ClientRef,
    _s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        help_reply(
            "SLOWLOG",
            &[
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
            ],
        )
    })
}

/// True if stats key `name` (`get`, `config|get`) is selected by LATENCY HISTOGRAM's
/// arguments: the command itself, or a subcommand of a named container.
fn selected(name: &str, wanted: &[String]) -> bool {
    wanted.is_empty()
        || wanted.iter().any(|w| {
            name == w
                || name
                    .strip_prefix(w.as_str())
                    .is_some_and(|rest| rest.starts_with('|'))
        })
}

/// LATENCY HISTOGRAM's reply for merged command stats.
pub fn histogram_reply(stats: &BTreeMap<String, CommandStats>) -> Reply {
    let mut out = Vec::new();
    for (name, st) in stats {
        let h = &st.latency;
        if h.is_empty() {
            continue;
        }
        let mut buckets = Vec::new();
        let mut cumulative = 0u64;
        for v in h.iter_log(1, 2.0) {
            let step = v.count_since_last_iteration();
            if step > 0 {
                cumulative += step;
                buckets.push((
                    Reply::Int(v.value_iterated_to().next_power_of_two() as i64),
                    Reply::Int(cumulative as i64),
                ));
            }
        }
        out.push((
            Reply::bulk_str(name),
            Reply::Map(vec![
                (Reply::bulk_str("calls"), Reply::Int(h.len() as i64)),
                (Reply::bulk_str("histogram_usec"), Reply::Map(buckets)),
            ]),
        ));
    }
    Reply::Map(out)
}

fn latency_histogram<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let wanted: Vec<String> = argv[2..]
            .iter()
            .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
            .collect();
        let wanted_all = wanted.clone();
        let parts = s
            .all(move |sh| {
                sh.stats
                    .commands
                    .iter()
                    .filter(|(n, _)| selected(n, &wanted_all))
                    .map(|(n, st)| (n.clone(), st.clone()))
                    .collect::<Vec<_>>()
            })
            .await;
        let mut merged: BTreeMap<String, CommandStats> = BTreeMap::new();
        for (n, st) in parts.into_iter().flatten() {
            merged.entry(n).or_default().merge(&st);
        }
        histogram_reply(&merged)
    })
}

/// Every source's latency events merged (see `shard::latency`).
async fn merged_events(s: &Shards) -> BTreeMap<&'static str, latency::Merged> {
    let mut parts = s.all(|sh| sh.latency.export()).await;
    parts.push(
        latency::BACKGROUND
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .export(),
    );
    latency::merge(parts)
}

fn now_s() -> u64 {
    crate::clock::now_ms() / 1000
}

fn latency_latest<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let events = merged_events(s).await;
        Reply::Array(
            events
                .iter()
                .map(|(event, m)| {
                    let last = m.samples.last().copied().unwrap_or_default();
                    Reply::Array(vec![
                        Reply::bulk_str(event),
                        Reply::Int(last.time as i64),
                        Reply::Int(last.latency as i64),
                        Reply::Int(m.max as i64),
                    ])
                })
                .collect(),
        )
    })
}

fn latency_history<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let events = merged_events(s).await;
        let samples = events
            .iter()
            .find(|(e, _)| e.as_bytes() == &argv[2][..])
            .map(|(_, m)| m.samples.clone())
            .unwrap_or_default();
        Reply::Array(
            samples
                .iter()
                .map(|x| {
                    Reply::Array(vec![
                        Reply::Int(x.time as i64),
                        Reply::Int(x.latency as i64),
                    ])
                })
                .collect(),
        )
    })
}

fn latency_reset<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let wanted: Vec<Option<Bytes>> = if argv.len() == 2 {
            vec![None]
        } else {
            argv[2..].iter().cloned().map(Some).collect()
        };
        let reset_all = |m: &mut latency::LatencyMonitor, wanted: &[Option<Bytes>]| {
            wanted
                .iter()
                .flat_map(|w| m.reset(w.as_deref()))
                .collect::<Vec<&'static str>>()
        };
        let w = wanted.clone();
        let mut parts = s.all(move |sh| reset_all(&mut sh.latency, &w)).await;
        parts.push(reset_all(
            &mut latency::BACKGROUND
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            &wanted,
        ));
        // An event held by several shards is one event, as in one Redis process.
        let distinct: std::collections::BTreeSet<&str> = parts.into_iter().flatten().collect();
        Reply::Int(distinct.len() as i64)
    })
}

fn latency_graph<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let events = merged_events(s).await;
        match events.iter().find(|(e, _)| e.as_bytes() == &argv[2][..]) {
            Some((event, m)) => Reply::Verbatim(
                "txt",
                Bytes::from(sparkline::graph(event, m, now_s()).into_bytes()),
            ),
            None => errors::no_latency_samples(&String::from_utf8_lossy(&argv[2])),
        }
    })
}

const DOCTOR_DISABLED: &str = "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n";
const DOCTOR_NO_SPIKE: &str = "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n";
const DOCTOR_SPIKES: &str = "Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n";
const DOCTOR_NO_FIX: &str = "\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis community to get some help, providing this report in your request.\n";

/// Redis's createLatencyReport, without its per-event advice: one line of statistics
/// per event (Redis's analyzeLatencyForEvent), then its "no easy fix" closing.
fn doctor_report(threshold: u64, events: &BTreeMap<&'static str, latency::Merged>) -> String {
    if events.is_empty() {
        return if threshold == 0 {
            DOCTOR_DISABLED
        } else {
            DOCTOR_NO_SPIKE
        }
        .to_string();
    }
    let now = now_s();
    let mut out = DOCTOR_SPIKES.to_string();
    for (n, (event, m)) in events.iter().enumerate() {
        let count = m.samples.len().max(1) as u64;
        let avg = m.samples.iter().map(|x| x.latency).sum::<u64>() / count;
        let mad = m
            .samples
            .iter()
            .map(|x| x.latency.abs_diff(avg))
            .sum::<u64>()
            / count;
        let oldest = m.samples.first().map_or(now, |x| x.time);
        let period = now.saturating_sub(oldest).max(1);
        out.push_str(&format!(
            "{}. {}: {} latency spikes (average {}ms, mean deviation {}ms, period {:.2} sec). Worst all time event {}ms.\n",
            n + 1,
            event,
            m.samples.len(),
            avg,
            mad,
            period as f64 / count as f64,
            m.max
        ));
    }
    out.push_str(DOCTOR_NO_FIX);
    out
}

fn latency_doctor<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let threshold = s.server.config.current().latency_monitor_threshold;
        let events = merged_events(s).await;
        Reply::Verbatim(
            "txt",
            Bytes::from(doctor_report(threshold, &events).into_bytes()),
        )
    })
}

/// LATENCY GRAPH's drawing: Redis's `sparkline.c` with its settings (80 columns, 4
/// rows, filled), labelled with how long ago each sample was.
mod sparkline {
    use crate::shard::latency::Merged;

    const COLS: usize = 80;
    const ROWS: usize = 4;
    const CHARSET_FILL: &[u8] = b"_o#";

    /// How long ago, as Redis labels it: `12s`, `3m`, `5h`, `2d`.
    fn label(elapsed: u64) -> String {
        match elapsed {
            e if e < 60 => format!("{e}s"),
            e if e < 3600 => format!("{}m", e / 60),
            e if e < 3600 * 24 => format!("{}h", e / 3600),
            e => format!("{}d", e / (3600 * 24)),
        }
    }

    pub fn graph(event: &str, m: &Merged, now_s: u64) -> String {
        let values: Vec<u64> = m.samples.iter().map(|s| s.latency).collect();
        let labels: Vec<String> = m
            .samples
            .iter()
            .map(|s| label(now_s.saturating_sub(s.time)))
            .collect();
        let (lo, hi) = (
            values.iter().copied().min().unwrap_or(0),
            values.iter().copied().max().unwrap_or(0),
        );
        let mut out = format!(
            "{event} - high {hi} ms, low {lo} ms (all time high {} ms)\n",
            m.max
        );
        out.push_str(&"-".repeat(COLS));
        out.push('\n');
        for start in (0..values.len()).step_by(COLS) {
            if start != 0 {
                out.push('\n');
            }
            let end = (start + COLS).min(values.len());
            render_range(&mut out, &values, &labels, lo, hi, start..end);
        }
        out
    }

    /// Redis's sparklineRenderRange: ROWS rows of bars, a blank line, then the labels
    /// written vertically.
    fn render_range(
        out: &mut String,
        values: &[u64],
        labels: &[String],
        lo: u64,
        hi: u64,
        range: std::ops::Range<usize>,
    ) {
        // Redis divides by 1 when all samples are equal.
        let relmax = (hi - lo).max(1) as f64;
        let steps = (CHARSET_FILL.len() * ROWS) as i64;
        let mut row = 0usize;
        loop {
            let mut chars = vec![b' '; range.len()];
            let mut more = false;
            for (col, j) in range.clone().enumerate() {
                if row < ROWS {
                    let relval = (values[j] - lo) as f64;
                    let step = (((relval * steps as f64) as i64) as f64 / relmax) as i64;
                    let step = step.clamp(0, steps - 1);
                    let charidx = step - ((ROWS - row - 1) * CHARSET_FILL.len()) as i64;
                    more = true;
                    if (0..CHARSET_FILL.len() as i64).contains(&charidx) {
                        chars[col] = CHARSET_FILL[charidx as usize];
                    } else if charidx >= CHARSET_FILL.len() as i64 {
                        chars[col] = b'|';
                    }
                } else if row == ROWS {
                    // The label margin: one blank line.
                    more = true;
                    break;
                } else {
                    let k = row - ROWS - 1;
                    if let Some(&c) = labels[j].as_bytes().get(k) {
                        more = true;
                        chars[col] = c;
                    }
                }
            }
            if !more {
                return;
            }
            row += 1;
            out.push_str(&String::from_utf8_lossy(&chars));
            out.push('\n');
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::shard::latency::Sample;

        #[test]
        fn one_sample_draws_like_redis() {
            let m = Merged {
                max: 50,
                samples: vec![Sample {
                    time: 100,
                    latency: 50,
                }],
            };
            let g = graph("command", &m, 103);
            let want = format!(
                "command - high 50 ms, low 50 ms (all time high 50 ms)\n{}\n \n \n \n_\n \n3\ns\n",
                "-".repeat(80)
            );
            assert_eq!(g, want);
        }

        #[test]
        fn bars_grow_with_latency() {
            let m = Merged {
                max: 100,
                samples: (0..3)
                    .map(|i| Sample {
                        time: 100 + i,
                        latency: [10, 55, 100][i as usize],
                    })
                    .collect(),
            };
            let g = graph("x", &m, 110);
            let lines: Vec<&str> = g.lines().collect();
            assert_eq!(&lines[2..6], &["  #", " _|", " ||", "_||"]);
            assert_eq!(&lines[6..], &["   ", "198", "0ss", "s  "]);
        }
    }
}

fn latency_help<'a>(
    _c: &'a ClientRef,
    _s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        help_reply(
            "LATENCY",
            &[
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "GRAPH <event>",
                "    Return an ASCII latency graph for the <event> class.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HISTOGRAM [COMMAND ...]",
                "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
                "    If no commands are specified then all histograms are replied.",
            ],
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::slowlog::{Caller, Slowlog};

    fn caller() -> Caller {
        Caller {
            id: 0,
            addr: crate::client::Peer::Ip("127.0.0.1:5000".parse().unwrap()),
            name: Some("me".into()),
        }
    }

    #[test]
    fn merge_is_newest_first_across_shards() {
        let (mut a, mut b) = (Slowlog::default(), Slowlog::default());
        let argv = |s: &str| vec![Bytes::copy_from_slice(s.as_bytes())];
        for id in 1..=5u64 {
            let log = if id % 2 == 1 && id != 5 {
                &mut a
            } else {
                &mut b
            };
            log.push(id, &argv(&format!("cmd{id}")), 10 * id, &caller(), 128);
        }
        let logs = vec![
            a.entries.iter().cloned().collect(),
            b.entries.iter().cloned().collect(),
        ];
        let merged = merge_newest(logs, 4);
        assert_eq!(
            merged.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![5, 4, 3, 2]
        );
        let r = entry_reply(&merged[0]);
        let Reply::Array(items) = r else { panic!() };
        assert_eq!(items[0], Reply::Int(5));
        assert_eq!(items[2], Reply::Int(50));
        assert_eq!(items[3], Reply::Array(vec![Reply::bulk_str("cmd5")]));
        assert_eq!(items[4], Reply::bulk_str("127.0.0.1:5000"));
        assert_eq!(items[5], Reply::bulk_str("me"));
        assert!(merge_newest(vec![vec![], vec![]], 10).is_empty());
    }

    #[test]
    fn histogram_buckets_are_cumulative_powers_of_two() {
        let mut st = CommandStats::default();
        for us in [1, 3, 6, 6, 100] {
            st.latency.record(us).unwrap();
        }
        let mut m = BTreeMap::new();
        m.insert("get".to_string(), st);
        m.insert("set".to_string(), CommandStats::default());
        let r = histogram_reply(&m);
        let Reply::Map(cmds) = r else { panic!() };
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].0, Reply::bulk_str("get"));
        assert_eq!(
            cmds[0].1,
            Reply::Map(vec![
                (Reply::bulk_str("calls"), Reply::Int(5)),
                (
                    Reply::bulk_str("histogram_usec"),
                    Reply::Map(vec![
                        (Reply::Int(1), Reply::Int(1)),
                        (Reply::Int(4), Reply::Int(2)),
                        (Reply::Int(8), Reply::Int(4)),
                        (Reply::Int(128), Reply::Int(5)),
                    ])
                ),
            ])
        );
        assert!(selected("config|get", &["config".into()]));
        assert!(!selected("configx", &["config".into()]));
        assert!(selected("get", &[]));
    }
}
