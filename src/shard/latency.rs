//! The latency monitor's samples (Redis's `latency.c` data): per event (`command`,
//! `fast-command`, `expire-cycle`, `aof-write`, ...), the all-time maximum and a ring of
//! the last 160 seconds that had a sample, each (unix second, worst latency in ms).
//!
//! The one idea to hold: every shard keeps its own [`LatencyMonitor`] (only its thread
//! touches it), and threads that are not shards (the AOF writers) share [`BACKGROUND`].
//! Nothing is merged when a sample is recorded; LATENCY's commands merge on read with
//! [`merge`]: per event the maxima of the maxima, and per second the worst latency any
//! source saw in that second, keeping the newest 160 seconds, which is exactly the series
//! one Redis process would have recorded. Recording is one comparison when the monitor is
//! off (`latency-monitor-threshold 0`) or the duration is under the threshold.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Samples kept per event (Redis's LATENCY_TS_LEN).
pub const TS_LEN: usize = 160;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Unix time in seconds.
    pub time: u64,
    /// Worst latency seen in that second, in milliseconds.
    pub latency: u64,
}

/// One event's samples: a ring of [`TS_LEN`], one sample per second.
#[derive(Clone, Debug)]
pub struct Series {
    idx: usize,
    /// All-time maximum latency in ms (survives the ring's overwrites).
    pub max: u64,
    ring: [Sample; TS_LEN],
}

impl Default for Series {
    fn default() -> Self {
        Series {
            idx: 0,
            max: 0,
            ring: [Sample::default(); TS_LEN],
        }
    }
}

impl Series {
    /// Redis's latencyAddSample: a later sample in the same second only raises it.
    pub fn add(&mut self, latency: u64, now_s: u64) {
        self.max = self.max.max(latency);
        let prev = (self.idx + TS_LEN - 1) % TS_LEN;
        if self.ring[prev].time == now_s {
            self.ring[prev].latency = self.ring[prev].latency.max(latency);
            return;
        }
        self.ring[self.idx] = Sample {
            time: now_s,
            latency,
        };
        self.idx = (self.idx + 1) % TS_LEN;
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        (0..TS_LEN)
            .map(|j| self.ring[(self.idx + j) % TS_LEN])
            .filter(|s| s.time != 0)
            .collect()
    }
}

/// The events of one source (a shard, or the background threads).
#[derive(Clone, Debug, Default)]
pub struct LatencyMonitor {
    events: BTreeMap<&'static str, Series>,
}

impl LatencyMonitor {
    pub const fn new() -> Self {
        LatencyMonitor {
            events: BTreeMap::new(),
        }
    }

    /// Redis's latencyAddSampleIfNeeded: record `ms` for `event` if the monitor is on
    /// and `ms` reaches the threshold.
    pub fn add_if_needed(&mut self, threshold_ms: u64, event: &'static str, ms: u64) {
        if threshold_ms != 0 && ms >= threshold_ms {
            self.events
                .entry(event)
                .or_default()
                .add(ms, crate::clock::now_ms() / 1000);
        }
    }

    /// Copy every event's all-time maximum and samples (for [`merge`]).
    pub fn export(&self) -> Vec<(&'static str, u64, Vec<Sample>)> {
        self.events
            .iter()
            .map(|(e, s)| (*e, s.max, s.samples()))
            .collect()
    }

    /// Forget `event`, or every event when None; the names forgotten.
    pub fn reset(&mut self, event: Option<&[u8]>) -> Vec<&'static str> {
        match event {
            None => std::mem::take(&mut self.events).into_keys().collect(),
            Some(e) => {
                let found = self.events.keys().find(|k| k.as_bytes() == e).copied();
                found
                    .and_then(|k| self.events.remove(k).map(|_| k))
                    .into_iter()
                    .collect()
            }
        }
    }
}

/// Events measured on threads that are not shards (the AOF writers).
pub static BACKGROUND: Mutex<LatencyMonitor> = Mutex::new(LatencyMonitor::new());

/// `latency-monitor-threshold` for [`BACKGROUND`]'s sources, which do not see the
/// configuration; the shards store it when they refresh theirs.
pub static THRESHOLD_MS: AtomicU64 = AtomicU64::new(0);

/// Record a sample measured off the shards (one relaxed load when it is under the
/// threshold).
pub fn add_background(event: &'static str, ms: u64) {
    let threshold = THRESHOLD_MS.load(Ordering::Relaxed);
    if threshold != 0 && ms >= threshold {
        BACKGROUND
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add_if_needed(threshold, event, ms);
    }
}

/// One event as all sources together saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    pub max: u64,
    /// Oldest first, one per second, at most [`TS_LEN`].
    pub samples: Vec<Sample>,
}

/// Merge the sources' exports: per event the greatest maximum, per second the worst
/// latency, the newest [`TS_LEN`] seconds.
pub fn merge(parts: Vec<Vec<(&'static str, u64, Vec<Sample>)>>) -> BTreeMap<&'static str, Merged> {
    let mut by_event: BTreeMap<&'static str, (u64, BTreeMap<u64, u64>)> = BTreeMap::new();
    for (event, max, samples) in parts.into_iter().flatten() {
        let e = by_event.entry(event).or_default();
        e.0 = e.0.max(max);
        for s in samples {
            let l = e.1.entry(s.time).or_default();
            *l = (*l).max(s.latency);
        }
    }
    by_event
        .into_iter()
        .map(|(event, (max, secs))| {
            let skip = secs.len().saturating_sub(TS_LEN);
            let samples = secs
                .into_iter()
                .skip(skip)
                .map(|(time, latency)| Sample { time, latency })
                .collect();
            (event, Merged { max, samples })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_second_keeping_the_worst() {
        let mut s = Series::default();
        s.add(5, 100);
        s.add(3, 100);
        s.add(9, 100);
        s.add(2, 101);
        assert_eq!(
            s.samples(),
            vec![
                Sample {
                    time: 100,
                    latency: 9
                },
                Sample {
                    time: 101,
                    latency: 2
                }
            ]
        );
        assert_eq!(s.max, 9);
    }

    #[test]
    fn ring_keeps_the_newest_160_and_the_all_time_max() {
        let mut s = Series::default();
        s.add(1000, 1);
        for t in 2..=300 {
            s.add(t, t);
        }
        let got = s.samples();
        assert_eq!(got.len(), TS_LEN);
        assert_eq!(got[0].time, 300 - TS_LEN as u64 + 1);
        assert_eq!(got.last().unwrap().time, 300);
        assert_eq!(s.max, 1000);
    }

    #[test]
    fn threshold_zero_records_nothing() {
        let mut m = LatencyMonitor::new();
        m.add_if_needed(0, "command", 100);
        m.add_if_needed(10, "command", 9);
        assert!(m.export().is_empty());
        m.add_if_needed(10, "command", 10);
        assert_eq!(m.export().len(), 1);
        assert_eq!(m.reset(Some(b"nope")), Vec::<&str>::new());
        assert_eq!(m.reset(Some(b"command")), vec!["command"]);
        assert!(m.export().is_empty());
    }

    #[test]
    fn merge_takes_the_worst_per_second_across_sources() {
        let a = vec![(
            "command",
            50,
            vec![
                Sample {
                    time: 10,
                    latency: 50,
                },
                Sample {
                    time: 12,
                    latency: 7,
                },
            ],
        )];
        let b = vec![
            (
                "command",
                20,
                vec![
                    Sample {
                        time: 11,
                        latency: 20,
                    },
                    Sample {
                        time: 12,
                        latency: 9,
                    },
                ],
            ),
            (
                "expire-cycle",
                3,
                vec![Sample {
                    time: 11,
                    latency: 3,
                }],
            ),
        ];
        let m = merge(vec![a, b]);
        assert_eq!(m.len(), 2);
        let c = &m["command"];
        assert_eq!(c.max, 50);
        assert_eq!(
            c.samples
                .iter()
                .map(|s| (s.time, s.latency))
                .collect::<Vec<_>>(),
            vec![(10, 50), (11, 20), (12, 9)]
        );
        let many: Vec<_> = (1..=400)
            .map(|t| Sample {
                time: t,
                latency: 1,
            })
            .collect();
        let m = merge(vec![vec![("command", 1, many)]]);
        assert_eq!(m["command"].samples.len(), TS_LEN);
        assert_eq!(m["command"].samples[0].time, 241);
    }
}
