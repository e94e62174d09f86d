//! SLOWLOG and LATENCY (Redis's `slowlog.c`, `latency.c`).
//!
//! The one idea to hold: each shard keeps its own slow log and its own per-command
//! latency histograms (`shard::slowlog`, `ShardStats::commands`); these commands copy
//! what they need out of every shard with one `shards.all(...)` and merge. Slow log ids
//! come from one process-wide counter, so ordering the merged entries by id gives
//! Redis's newest-first order. Each shard keeps up to `slowlog-max-len` entries; GET and
//! LEN show at most `slowlog-max-len` of the merged newest, as one Redis log would.
//!
//! LATENCY HISTOGRAM is complete (Redis 7.0's format: per command, `calls` and a map of
//! power-of-two microsecond buckets to cumulative counts). The latency *monitor*
//! (`latency-monitor-threshold`, events such as `command` or `fast-command`) is not
//! implemented: no events are ever recorded, so LATEST and HISTORY answer the empty
//! array Redis gives when nothing was recorded, RESET answers 0, GRAPH answers Redis's
//! "no samples" error, and DOCTOR gives Redis's text for "monitor disabled" (threshold
//! 0) or "no spike observed" (threshold set).

use super::config::help_reply;
use super::{args, Command, Exec, LocalBoxFuture};
use crate::client::ClientRef;
use crate::protocol::Reply;
use crate::runtime::Shards;
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

fn entry_reply(e: &SlowlogEntry) -> Reply {
    Reply::Array(vec![
        Reply::Int(e.id as i64),
        Reply::Int(e.time_s as i64),
        Reply::Int(e.duration_us as i64),
        Reply::Array(e.argv.iter().map(|a| Reply::Bulk(a.clone())).collect()),
        Reply::bulk_str(&e.addr.to_string()),
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
            return Reply::err(
                "ERR unknown subcommand or wrong number of arguments for 'get'. Try SLOWLOG HELP.",
            );
        }
        let max = s.server.config.current().slowlog_max_len;
        let count = match argv.get(2) {
            None => 10,
            Some(a) => match args::int(a) {
                Ok(-1) => max,
                Ok(n) if n >= 0 => (n as usize).min(max),
                _ => return Reply::err("ERR count should be greater than or equal to -1"),
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

fn latency_latest<'a>(
    _c: &'a ClientRef,
    _s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { Reply::Array(Vec::new()) })
}

fn latency_history<'a>(
    _c: &'a ClientRef,
    _s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { Reply::Array(Vec::new()) })
}

fn latency_reset<'a>(
    _c: &'a ClientRef,
    _s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { Reply::Int(0) })
}

fn latency_graph<'a>(
    _c: &'a ClientRef,
    _s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        Reply::error(format!(
            "ERR No samples available for event '{}'",
            String::from_utf8_lossy(&argv[2])
        ))
    })
}

const DOCTOR_DISABLED: &str = "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n";
const DOCTOR_NO_SPIKE: &str = "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n";

fn latency_doctor<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let enabled = s
            .server
            .config
            .current()
            .get_int("latency-monitor-threshold")
            > 0;
        let text = if enabled {
            DOCTOR_NO_SPIKE
        } else {
            DOCTOR_DISABLED
        };
        Reply::Verbatim("txt", Bytes::from_static(text.as_bytes()))
    })
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
            addr: "127.0.0.1:5000".parse().unwrap(),
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
