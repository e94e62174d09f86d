//! The slow log (Redis's `slowlog.c`), kept per shard and merged by SLOWLOG GET.
//!
//! An entry is recorded on the shard that ran the command when it took longer than
//! `slowlog-log-slower-than` microseconds. Ids come from one global counter, so merging
//! the shards' logs by id gives Redis's newest-first order.

use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

/// Redis keeps at most 32 arguments, each cut to 128 bytes.
const MAX_ARGC: usize = 32;
const MAX_ARG_LEN: usize = 128;

#[derive(Clone, Debug)]
pub struct SlowlogEntry {
    pub id: u64,
    pub time_s: u64,
    pub duration_us: u64,
    pub argv: Vec<Bytes>,
    pub addr: crate::client::Peer,
    pub name: String,
}

/// Who sent a command, for the slow log.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The client's id (0: none), which client-side caching's NOLOOP needs.
    pub id: u64,
    pub addr: crate::client::Peer,
    pub name: Option<Arc<str>>,
}

impl Caller {
    /// A script's commands (Redis's Lua client, which has no address: `?:0`).
    pub const SCRIPT: Caller = Caller {
        id: 0,
        addr: crate::client::Peer::Ip(SocketAddr::V4(std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::UNSPECIFIED,
            0,
        ))),
        name: None,
    };
}

#[derive(Default)]
pub struct Slowlog {
    pub entries: VecDeque<SlowlogEntry>,
}

impl Slowlog {
    pub fn push(
        &mut self,
        id: u64,
        argv: &[Bytes],
        duration_us: u64,
        caller: &Caller,
        max_len: usize,
    ) {
        let mut args: Vec<Bytes> = Vec::with_capacity(argv.len().min(MAX_ARGC));
        for (i, a) in argv.iter().enumerate() {
            if i == MAX_ARGC - 1 && argv.len() > MAX_ARGC {
                args.push(Bytes::from(format!(
                    "... ({} more arguments)",
                    argv.len() - MAX_ARGC + 1
                )));
                break;
            }
            if a.len() > MAX_ARG_LEN {
                let mut s = a[..MAX_ARG_LEN].to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_ARG_LEN).as_bytes(),
                );
                args.push(Bytes::from(s));
            } else {
                args.push(a.clone());
            }
        }
        self.entries.push_front(SlowlogEntry {
            id,
            // Redis stamps an entry with the time the command started.
            time_s: crate::clock::now_us().saturating_sub(duration_us) / 1_000_000,
            duration_us,
            argv: args,
            addr: caller.addr.clone(),
            name: caller.name.as_deref().unwrap_or("").to_string(),
        });
        self.entries.truncate(max_len);
    }
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A process-wide slow log id, so the shards' logs merge into one sequence.
pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
