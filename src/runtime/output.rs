//! Output buffer limits (`client-output-buffer-limit`): what a connection holds
//! unwritten, when that is too much, and how such a client is closed.
//!
//! **What is measured (CLIENT LIST `obl`, `omem`).** Redis keeps a client's output in
//! a fixed reply buffer of 16 KiB (`rbs`; its bytes are `obl`) and, once that is full,
//! in a list of blocks (`oll` blocks, `omem` bytes); `omem` alone counts against the
//! limit, so a client with less than 16 KiB to write is never over it, whatever the
//! limit (`normal 1 0 0` still lets ordinary replies through). Shardis has no fixed
//! buffer but keeps that arithmetic over every byte a connection has yet to write —
//! the messages queued in its [`Pushes`] queue (Pub/Sub messages, MONITOR lines) plus
//! the replies its connection task has encoded and the socket has not taken yet: the
//! first 16 KiB are `obl`, the rest `omem`. `oll` is the number of blocks in the
//! message queue, which is kept, as Redis's list, in blocks of 16 KiB or more, so it
//! holds what it counts plus at most one partly filled block. Redis counts its blocks
//! by allocation, we count bytes.
//!
//! **Where output grows, and where the limit is checked.** Replies back-pressure by
//! themselves: the connection task stops reading while a write is pending, so a client
//! that does not read holds at most one read's replies. Messages do not: they are
//! queued by whoever publishes (or runs a command, for MONITOR), and a subscriber that
//! never reads would make the server hold every message for it. So the limit is
//! checked where output is added, on the core that owns the connection:
//! - in [`Pushes::push`], as each message is queued (Redis checks as each block is
//!   added to its reply list);
//! - by the connection task when it has encoded a read's replies, before it writes
//!   them: Redis too holds a read's replies in its buffer before writing, so there as
//!   here one reply larger than the normal class's hard limit closes the client;
//! - by [`cron`], each cron period: a soft limit is overcome once it has been reached
//!   for more than its seconds, which may happen while nothing is added.
//!
//! **The rule** is Redis's `checkClientOutputBufferLimits` ([`limit_reached`]): the hard
//! limit reached (`>=`), or the soft limit reached at every check for more than its
//! seconds (whole unix seconds, as Redis's `server.unixtime`); 0 turns a limit off. The
//! class is the client's ([`Client::class`]): `pubsub` while it has any subscription,
//! else `normal`, MONITOR included (Redis 7.0 flags a monitor as a replica but classes
//! it as normal). The `replica` class's limit is parsed, shown and rewritten but
//! applies to nobody until replication exists. Each core keeps the limits in a
//! thread-local ([`set_output_limits`], from [`super::refresh_config`]), so a push reads
//! no shared state.
//!
//! **Closing.** Once over, the client's [`Pushes`] is marked: later messages are dropped
//! at once, so its memory stops growing, and its connection task is woken wherever it
//! waits: for input or queued messages ([`Pushes::ready`]), for the socket to take a
//! write (writes register on the same waker and look at the mark between partial
//! writes), or in BLPOP and the like (its next peer check). Nothing more is written, as
//! Redis writes nothing more to a client it will close; the task ends and
//! [`log_if_over_limit`] logs Redis's warning with the client's CLIENT LIST line, before
//! the connection's cleanup (unsubscribing...) runs: "scheduled to be closed ASAP for
//! overcoming of output buffer limits." when found where output was added (Redis's
//! `freeClientAsync` path), "closed for overcoming of output buffer limits." when found
//! by the cron (Redis's `freeClient` path). The line is taken when the task ends, a
//! moment after the mark on the same thread; the queue does not change in between.
//!
//! **INFO.** The cron also keeps, per core, the largest `omem` and query buffer it saw
//! in each of the last 8 seconds (`client_recent_max_output_buffer`,
//! `client_recent_max_input_buffer`, as Redis's `clientsCronTrackExpansiveClients`);
//! `mem_clients_normal` sums the `tot-mem` of normal and Pub/Sub clients when INFO asks
//! (Redis keeps a running sum updated by its cron).

#[cfg(doc)]
use crate::client::{limit_reached, set_output_limits, Client, Pushes};
use crate::client::{ClientClass, ClientRef, OverLimit};
use std::cell::Cell;

/// Seconds of history kept for INFO's recent maxima (Redis's
/// `CLIENTS_PEAK_MEM_USAGE_SLOTS`).
const PEAK_SLOTS: usize = 8;

thread_local! {
    /// Per second (unix second modulo [`PEAK_SLOTS`]): the largest input and output
    /// buffers seen on this core.
    static PEAKS: Cell<[(u64, u64); PEAK_SLOTS]> = const { Cell::new([(0, 0); PEAK_SLOTS]) };
    /// The unix second of the last sample.
    static LAST_SECOND: Cell<u64> = const { Cell::new(0) };
}

/// The cron's pass over this core's clients: the limits' soft seconds, and the
/// recent maxima for INFO.
pub fn cron() {
    let second = crate::clock::now_ms() / 1000;
    let mut peaks = PEAKS.get();
    // Forget the seconds that passed since the last sample (all of them after a pause).
    let last = LAST_SECOND.replace(second);
    for s in (last + 1).max(second.saturating_sub(PEAK_SLOTS as u64 - 1))..=second {
        peaks[s as usize % PEAK_SLOTS] = (0, 0);
    }
    let slot = &mut peaks[second as usize % PEAK_SLOTS];
    crate::runtime::clients::each(|all| {
        for client in all {
            // A client borrowed by its running command is looked at next time.
            let Ok(c) = client.try_borrow() else {
                continue;
            };
            let input = (c.qbuf + c.qbuf_free + c.argv_mem) as u64;
            let output = c.pushes.omem() as u64;
            slot.0 = slot.0.max(input);
            slot.1 = slot.1.max(output);
            c.pushes.enforce_limit(OverLimit::Cron);
        }
    });
    PEAKS.set(peaks);
}

/// This core's largest input buffer and `omem` of the last [`PEAK_SLOTS`] seconds.
pub fn recent_max() -> (u64, u64) {
    PEAKS
        .get()
        .iter()
        .fold((0, 0), |(i, o), &(pi, po)| (i.max(pi), o.max(po)))
}

/// The memory of this core's normal and Pub/Sub clients (INFO `mem_clients_normal`).
pub fn clients_memory() -> u64 {
    crate::runtime::clients::each(|all| {
        all.filter_map(|c| c.try_borrow().ok())
            .filter(|c| c.class() != ClientClass::Replica)
            .map(|c| c.total_mem() as u64)
            .sum()
    })
}

/// Log Redis's warning if `client` is being closed for its output buffer limit.
pub fn log_if_over_limit(client: &ClientRef) {
    let c = client.borrow();
    let Some(how) = c.pushes.over_limit() else {
        return;
    };
    let what = match how {
        OverLimit::Scheduled => "scheduled to be closed ASAP",
        OverLimit::Cron => "closed",
        OverLimit::Evicted => return,
    };
    let line = c.info_line(crate::clock::now_ms());
    crate::log::warning(&format!(
        "Client {line} {what} for overcoming of output buffer limits."
    ));
}
