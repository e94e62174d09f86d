//! Client-side caching in the runtime: recording a tracking client's reads, and
//! carrying the invalidations noted in the table (`crate::tracking`, whose doc explains
//! the table and why it is shared) to the clients' connections.
//!
//! **Reads.** [`before_command`], called by `dispatch` for each admitted command while
//! some client tracks, records the keys of a read-only command of a tracking client
//! (not in BCAST mode; OPTIN needs CLIENT CACHING YES just before, OPTOUT skips after
//! CLIENT CACHING NO) *before* it runs, whatever path it takes then; EXEC records its
//! queued reads. A write between the record and the read costs a spurious
//! invalidation, never a missed one.
//!
//! **Writes.** The call path gives the table the keys a write modified (its `Touch`
//! rule, as WATCH), the keyspace its expired keys, FLUSHALL/FLUSHDB a flush; each
//! appends notes on its core. [`send_pending`] takes them (it runs first thing in
//! `pubsub::publish_events`, i.e. wherever a command's keyspace events leave, before
//! its reply) and queues one batch per destination core on that core's queue of
//! raised work (`pubsub::raise_on`, which keyspace events take too, so a PUBLISH sent
//! after the write's reply never overtakes its invalidation): the tracker's core, or
//! its redirect target's. There, [`deliver`] finds
//! the client in the core's registry (`clients`) and queues on its [`Pushes`] queue a
//! RESP3 push `invalidate` with the keys (a null after a flush), or for a RESP2 redirect
//! target in Pub/Sub mode a `message` on `__redis__:invalidate`, as Redis's
//! `sendTrackingMessage`; if that client is running a request, behind the request's
//! reply (Redis defers its current client's own invalidations until after the reply). A redirect target found gone marks the tracker's redirect
//! broken and posts `tracking-redir-broken` to the tracker (RESP3 only).
//!
//! Zero cost when nobody tracks: every hook starts with `crate::tracking::active()`,
//! one relaxed load.

use crate::client::{ClientRef, Pushes};
use crate::commands::Command;
use crate::protocol::Reply;
use crate::runtime::clients;
use crate::runtime::pubsub::raise_on;
use crate::tracking::{self, Note};
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;

/// Before `cmd` runs for `client`: remember the keys it reads if the client tracks.
pub fn before_command(client: &ClientRef, cmd: &Command, argv: &[Bytes]) {
    let c = client.borrow();
    let Some(t) = &c.tracking else {
        return;
    };
    let id = c.id;
    if cmd.name == "exec" {
        // Which queued commands' reads count, as EXEC will run them: a queued CLIENT
        // CACHING applies to the commands after it (the flag lasts until EXEC ends:
        // `after_command`). They are remembered where each runs, right after it
        // (`transaction::run_keyed`), as Redis's `call()` does: remembered here, before
        // the transaction, a read after a write of the same key in it drew an
        // invalidation of the key just read.
        let mut caching = c.tracking_caching;
        let mut tracked = Vec::new();
        for q in c.multi.iter().flatten() {
            let Ok(qc) = crate::runtime::admission::resolve(q) else {
                tracked.push(false);
                continue;
            };
            if qc.name == "client|caching" && q.len() == 3 {
                // (As its handler: YES only in OPTIN mode, NO only in OPTOUT.)
                let yes = q[2].eq_ignore_ascii_case(b"yes");
                let no = q[2].eq_ignore_ascii_case(b"no");
                caching |= (yes && t.optin) || (no && t.optout);
                tracked.push(false);
            } else {
                tracked.push(counts(t, caching));
            }
        }
        drop(c);
        client.borrow_mut().exec_tracked = tracked;
    } else {
        let remembers = reads_tracked(&c);
        drop(c);
        if remembers {
            remember(id, cmd, argv);
        }
    }
    send_pending();
}

/// True if the keys `c` reads now are remembered for it: it tracks, not in BCAST
/// mode, and OPTIN / OPTOUT with CLIENT CACHING let this command's reads count.
pub fn reads_tracked(c: &crate::client::Client) -> bool {
    c.tracking
        .as_ref()
        .is_some_and(|t| counts(t, c.tracking_caching))
}

/// True if a read of a client tracking as `t` counts, CLIENT CACHING given or not.
fn counts(t: &crate::tracking::Tracker, caching: bool) -> bool {
    let refused = t.bcast || (t.optin && !caching) || (t.optout && caching);
    !refused
}

/// Remember the keys `cmd` reads. The read-only script commands (EVAL_RO,
/// EVALSHA_RO, FCALL_RO) remember nothing themselves: as every script, theirs
/// remembers its declared keys once it runs a read-only command (`scripting::run`),
/// and a script that only PINGs remembers none (Redis's `call()`).
pub fn remember(id: u64, cmd: &Command, argv: &[Bytes]) {
    if !cmd.has_flag(crate::commands::flag::READONLY)
        || cmd.has_flag(crate::commands::flag::PUBSUB)
        || cmd.script.is_some()
    {
        return;
    }
    let idx = cmd.key_indexes(argv);
    if !idx.is_empty() {
        tracking::remember(id, idx.iter().map(|&i| &argv[i]));
    }
}

/// Once a command's reads are recorded: CLIENT CACHING applied to it only (outside
/// MULTI, and CLIENT subcommands leave it, as Redis's `resetClient`).
pub fn after_command(client: &ClientRef, cmd: &Command) {
    let mut c = client.borrow_mut();
    // (Called before the command runs.) The flag lasts through a transaction: from
    // MULTI, while commands are queued, until EXEC (whose queued reads were just
    // recorded) or DISCARD.
    let keeps = cmd.name.starts_with("client|")
        || cmd.name == "multi"
        || (c.multi.is_some() && !matches!(cmd.name, "exec" | "discard"));
    if c.tracking_caching && !keeps {
        c.tracking_caching = false;
    }
}

/// Every key is gone (FLUSHALL, FLUSHDB): every tracker gets a null invalidation.
pub fn flushed() {
    tracking::invalidate_all();
    if tracking::active() {
        send_pending();
    }
}

/// Tracking ends for `client` (CLIENT TRACKING OFF, RESET, disconnection).
pub fn stop(client: &mut crate::client::Client) {
    if client.tracking.take().is_some() {
        tracking::disable(client.id);
    }
    client.tracking_caching = false;
}

/// Queue the invalidations noted on this core, one batch per destination core.
pub fn send_pending() {
    // (Notes left when the last tracker stopped leave with the next ones: at worst a
    // spurious invalidation.)
    if !tracking::active() {
        return;
    }
    let notes = tracking::take();
    if notes.is_empty() {
        return;
    }
    let mut per_core: BTreeMap<usize, Vec<Note>> = BTreeMap::new();
    for n in notes {
        let dest = if n.redirect != 0 {
            n.redirect_core
        } else {
            n.core
        };
        per_core.entry(dest).or_default().push(n);
    }
    for (core, batch) in per_core {
        raise_on(core, move || batch.iter().for_each(deliver));
    }
}

/// Queue `msg` for a client: behind the reply of its running request, if one runs
/// (Redis sends its current client's invalidations after the command's reply).
fn queue(to: &Pushes, resp: u8, msg: Reply) {
    let mut b = BytesMut::new();
    msg.encode(resp, &mut b);
    to.set_listening();
    to.push_after_reply(&b);
}

fn keys_reply(keys: &Option<Vec<Bytes>>) -> Reply {
    match keys {
        Some(ks) => Reply::Array(ks.iter().cloned().map(Reply::Bulk).collect()),
        None => Reply::Null,
    }
}

/// Deliver one invalidation on this core (see the module doc).
pub fn deliver(n: &Note) {
    if n.redirect == 0 {
        let Some(c) = clients::get(n.client) else {
            return;
        };
        let c = c.borrow();
        if c.resp >= 3 {
            let msg = Reply::Push(vec![Reply::bulk_str("invalidate"), keys_reply(&n.keys)]);
            queue(&c.pushes, c.resp, msg);
        }
        return;
    }
    match clients::get(n.redirect) {
        Some(r) => {
            let r = r.borrow();
            let msg = if r.resp >= 3 {
                Reply::Push(vec![Reply::bulk_str("invalidate"), keys_reply(&n.keys)])
            } else if r.pubsub.active() {
                Reply::Push(vec![
                    Reply::bulk_str("message"),
                    Reply::bulk_str("__redis__:invalidate"),
                    keys_reply(&n.keys),
                ])
            } else {
                return;
            };
            queue(&r.pushes, r.resp, msg);
        }
        None => {
            tracking::mark_broken(n.client);
            let (client, redirect) = (n.client, n.redirect);
            let broken = move || {
                if let Some(c) = clients::get(client) {
                    let c = c.borrow();
                    if c.resp >= 3 {
                        let msg = Reply::Push(vec![
                            Reply::bulk_str("tracking-redir-broken"),
                            Reply::Int(redirect as i64),
                        ]);
                        queue(&c.pushes, c.resp, msg);
                    }
                }
            };
            raise_on(n.core, broken);
        }
    }
}
