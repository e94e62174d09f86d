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

