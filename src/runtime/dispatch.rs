//! Dispatch: routing and batching the requests of one socket read, wherever their keys
//! live, and putting the replies back in request order.
//!
//! For each request, in order: [`admission`] decides whether it runs (or is answered
//! at once: refused, QUEUED; or postponed by CLIENT PAUSE, which ends the batch
//! there: the postponed request and those behind it go back to the connection, to
//! run once the pause lets them, see `pause`); then by its table entry's kind:
//! - `Conn` commands run at once on the client's state;
//! - PUBLISH / SPUBLISH deliver on this core at once and join each listening core's
//!   batch of messages (see `pubsub`);
//! - `Shard` commands whose keys all live on one shard run inline if it is this core's
//!   shard (and free), else join that shard's batch: one hop per shard per read;
//! - a script known to keep to another core's shard joins that shard's batch too
//!   ([`Run::batch_script`]); until the batch is back, nothing after it in the read
//!   runs anywhere else, since it may still have to run holding every shard;
//! - commands that reach several shards (`Server` commands, and `Shard` commands whose
//!   keys span shards) first flush the pending batches, so they observe every earlier
//!   command of the same pipeline, then run as a transaction ([`multishard`], or the
//!   command's own [`Spread`](crate::commands::Spread) path).
//!
//! Once a command has run (or joined its shard's batch), its MONITOR line is fed, in
//! request order, if anyone monitors (see `monitor`).
//!
//! What happens on the shard once a command runs is the call path's ([`call`]).

use crate::client::Subscription;
use crate::client::{ClientRef, ReplyMode};
use crate::cluster::SlotCheck;
use crate::commands::{traits, Command, Exec};
use crate::protocol::Reply;
use crate::runtime::admission::{self, Admitted};
use crate::runtime::call;
use crate::runtime::durability::Lanes;
use crate::runtime::monitor;
use crate::runtime::multishard;
use crate::runtime::pubsub;
use crate::runtime::slots::SlotTable;
use crate::runtime::transaction::{self, Tx};
use crate::runtime::Shards;
use crate::scripting::run::{self, Script, Unfinished};
use crate::shard::intents::Footprint;
use crate::shard::propagation::Effect;
pub use crate::shard::slowlog::Caller;
use crate::shard::Shard;
use bytes::{Bytes, BytesMut};
use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

pub use admission::resolve;

struct Pending {
    index: usize,
    db: usize,
    no_touch: bool,
    cmd: &'static Command,
    argv: Vec<Bytes>,
    /// Cluster mode, a slot being migrated or imported: the check to make first.
    check: Option<SlotCheck>,
    /// A script command joining its shard's batch: the script it runs (see
    /// [`Run::batch_script`]).
    script: Option<Box<Script>>,
}

/// Replies for one read's requests, in order; `None` replies are not written.
pub struct Batch {
    pub replies: Vec<Option<Reply>>,
    /// Messages queued for this connection (Pub/Sub) while request `i` ran, encoded:
    /// written just before reply `i`, where Redis's one output buffer has them.
    pub pushed: Vec<(usize, BytesMut)>,
    /// Stop reading: QUIT, or a command that closes the connection.
    pub close: bool,
    /// The requests not run because CLIENT PAUSE postponed the first of them: the
    /// replies above are those of the requests before it.
    pub postponed: Option<Postponed>,
    /// Every request went to shard `s`, another core's, as one single-shard command
    /// or a script that ran as one job there (the connection may move there, see
    /// `connection`).
    pub remote_only: Option<usize>,
    /// No request reached any shard (connection commands, QUEUED, refusals): the
    /// read neither counts for nor against connection affinity.
    pub went_nowhere: bool,
    /// The shards whose data the replies may show (whose logs they wait for).
    pub lanes: Lanes,
    /// Where a request (HELLO, RESET) switched protocol: `(i, p)`, the replies before
    /// request `i` are in protocol `p`, as Redis encoded them when they ran.
    pub resp_before: Vec<(usize, u8)>,
}

thread_local! {
    /// See [`ran_alone_on`].
    static RAN_ALONE_ON: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The `Server` command running on this core (a script) ran as one job on shard `s`
/// and touched nothing else. Connection affinity counts it as a keyed command for
/// `s`: a client whose scripts all keep to another core's shard (a job queue's, keys
/// under one hash tag) moves there, and stops paying a hop for each.
pub fn ran_alone_on(s: usize) {
    RAN_ALONE_ON.with(|r| r.set(Some(s)));
}

/// Where one read's requests ran, so far.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Nowhere,
    /// All on this other core's shard.
    Remote(usize),
    /// Anything else: the local shard, several shards, the connection itself.
    Mixed,
}

/// Requests waiting for a pause to end, the first one postponed.
pub struct Postponed {
    pub class: crate::runtime::pause::Class,
    pub requests: Vec<Vec<Bytes>>,
}

/// One read's requests on their way: replies slotted by index, batches per shard.
struct Run<'a> {
    client: &'a ClientRef,
    shards: &'a Shards,
    caller: Caller,
    now: u64,
    replies: Vec<Option<Reply>>,
    suppressed: Vec<bool>,
    pushed: Vec<(usize, BytesMut)>,
    pending: Vec<Vec<Pending>>,
    /// Per core, the messages of this read's PUBLISHes for it, by request index.
    published: Vec<Vec<(usize, pubsub::Message)>>,
    route: Route,
    lanes: Lanes,
    resp_before: Vec<(usize, u8)>,
    /// The shard whose pending batch holds a script: nothing of this read after it
    /// runs anywhere else before the batch has run (see [`Run::batch_script`]).
    barrier: Option<usize>,
}

/// Execute every request of one read (up to one CLIENT PAUSE postpones) and return
/// the replies in order.
pub async fn run_batch(client: &ClientRef, shards: &Shards, requests: Vec<Vec<Bytes>>) -> Batch {
    run_requests(client, shards, requests, true).await
}

/// [`run_batch`] for requests the server runs itself, which MONITOR does not show
/// (again) and CLIENT PAUSE does not postpone: a blocked command retried (shown once,
/// when it was sent) and the AOF replayed at start, as Redis.
pub async fn run_batch_unmonitored(
    client: &ClientRef,
    shards: &Shards,
    requests: Vec<Vec<Bytes>>,
) -> Batch {
    run_requests(client, shards, requests, false).await
}

/// Who sent requests that were accepted elsewhere and must not fail here.
#[derive(Clone, Copy)]
pub enum Obeyed {
    /// Our master's link.
    Master,
    /// The AOF's replay at start.
    Aof,
}

/// Log and count (INFO `unexpected_error_replies`) each error that requests from our
/// master or the AOF (their command `names`, in order) got, with Redis's
/// `afterErrorReply` line: they ran where they were first accepted, so an error means
/// the data here now differs. (As Redis's, the line shows the error with its `-` and
/// names EXEC for an error inside a transaction.) With `propagation-error-behavior
/// panic` the server stops there; with `panic-on-replicas` only on the master's link;
/// on that link, only while `replica-read-only` holds (a writable replica's data may
/// differ by design).
pub fn report_unexpected_errors(
    shards: &Shards,
    from: Obeyed,
    names: &[Bytes],
    replies: &[Option<Reply>],
) {
    let mut errors: Vec<(&[u8], Cow<str>)> = Vec::new();
    for (name, reply) in names.iter().zip(replies) {
        match reply {
            Some(Reply::Array(inner)) if name.eq_ignore_ascii_case(b"exec") => {
                errors.extend(
                    inner
                        .iter()
                        .filter_map(|r| Some((&name[..], r.error_text()?))),
                );
            }
            Some(r) => errors.extend(r.error_text().map(|e| (&name[..], e))),
            None => {}
        }
    }
    if errors.is_empty() {
        return;
    }
    let (sender, receiver) = match from {
        Obeyed::Master => ("replica", "master"),
        Obeyed::Aof => ("server", "AOF-loading-client"),
    };
    let cfg = shards.local.borrow().config.clone();
    shards.local.borrow_mut().stats.unexpected_error_replies += errors.len() as u64;
    for (name, text) in &errors {
        let name = String::from_utf8_lossy(name).to_lowercase();
        let text: String = text.chars().take(4096).collect();
        crate::log::warning(&format!(
            "== CRITICAL == This {sender} is sending an error to its {receiver}: '-{text}' \
             after processing the command '{name}'"
        ));
    }
    let behaviour = cfg.get("propagation-error-behavior").unwrap_or("ignore");
    let panics = match from {
        Obeyed::Master => behaviour != "ignore" && cfg.get_bool("replica-read-only"),
        Obeyed::Aof => behaviour == "panic",
    };
    if panics {
        let name = String::from_utf8_lossy(errors[0].0).to_lowercase();
        crate::log::warning(&format!(
            "This {sender} panicked sending an error to its {receiver} after processing \
             the command '{name}'"
        ));
        std::process::abort();
    }
}

/// `from_client`: the client sent these (shown by MONITOR, postponed by a pause).
async fn run_requests(
    client: &ClientRef,
    shards: &Shards,
    requests: Vec<Vec<Bytes>>,
    from_client: bool,
) -> Batch {
    let n = requests.len();
    let mut run = Run {
        client,
        shards,
        caller: caller_of(client),
        now: crate::clock::now_ms(),
        replies: (0..n).map(|_| None).collect(),
        suppressed: vec![false; n],
        pushed: Vec::new(),
        pending: (0..shards.count()).map(|_| Vec::new()).collect(),
        published: (0..shards.count()).map(|_| Vec::new()).collect(),
        route: Route::Nowhere,
        lanes: Lanes::None,
        resp_before: Vec::new(),
        barrier: None,
    };
    let mut close = false;
    let mut postponed = None;
    let pushes = client.borrow().pushes.clone();
    pushes.hold();
    let mut requests = requests.into_iter().enumerate();
    while let Some((i, argv)) = requests.next() {
        client.borrow_mut().argv_mem = crate::client::Client::argv_len_sum(&argv);
        let mut shown = None;
        match admission::admit(client, shards, argv, from_client) {
            // (Answered here, it went nowhere: QUEUED, a refusal.)
            Admitted::Answer(reply) => run.replies[i] = Some(reply),
            Admitted::Run(cmd, argv, check) => {
                if from_client && shards.server.monitors.active() {
                    shown = Some(monitor::Shown::before(client, cmd, &argv));
                }
                run.one(i, cmd, argv, check).await
            }
            Admitted::Postponed(cmd, class, argv) => {
                // Redis names the command it postponed (CLIENT LIST cmd=).
                let mut c = client.borrow_mut();
                c.last_cmd.clear();
                c.last_cmd.push_str(cmd.name);
                drop(c);
                let requests = std::iter::once(argv).chain(requests.map(|(_, a)| a));
                postponed = Some(Postponed {
                    class,
                    requests: requests.collect(),
                });
                run.replies.truncate(i);
                run.suppressed.truncate(i);
                break;
            }
        }
        run.suppressed[i] = advance_reply_mode(client);
        if pushes.listening() {
            // The events this request raised, wherever it ran, are on this core's
            // queue by now: they go before its reply, as in Redis.
            pubsub::catch_up();
        }
        if let Some(pushed) = queued_pushes(client) {
            run.pushed.push((i, pushed));
        }
        // Its own invalidations follow it.
        pushes.release(true);
        // After the pushes are taken: a monitor's own line follows its reply.
        if let Some(shown) = shown {
            shown.feed(client, shards, run.replies[i].as_ref());
        }
        if client.borrow().close_after_reply {
            close = true;
            run.replies.truncate(i + 1);
            run.suppressed.truncate(i + 1);
            break;
        }
    }
    let lone = run.flush().await;
    if pushes.listening() {
        pubsub::catch_up();
        // A request sent alone to another shard: its events before its reply. (Those
        // of several sent together stay behind all their replies.)
        if let Some(i) = lone {
            if let Some(pushed) = queued_pushes(client) {
                run.pushed.push((i, pushed));
                run.pushed.sort_by_key(|(at, _)| *at);
            }
        }
    }
    pushes.release(false);
    monitor::flush(shards);
    client.borrow_mut().argv_mem = 0;
    let pushed = std::mem::take(&mut run.pushed);
    let remote_only = match run.route {
        Route::Remote(s) if postponed.is_none() => Some(s),
        _ => None,
    };
    let went_nowhere = run.route == Route::Nowhere;
    // Messages among the replies may show any shard's writes (keyspace events,
    // invalidations).
    let lanes = if pushed.is_empty() {
        run.lanes
    } else {
        Lanes::All
    };
    let resp_before = std::mem::take(&mut run.resp_before);
    Batch {
        resp_before,
        replies: run.finish(),
        pushed,
        close,
        postponed,
        remote_only,
        went_nowhere,
        lanes,
    }
}

impl Run<'_> {
    /// Request went to `shard` (another core's) alone, or (`None`) anywhere else.
    fn went(&mut self, shard: Option<usize>) {
        self.route = match (self.route, shard) {
            (Route::Nowhere, Some(s)) => Route::Remote(s),
            (Route::Remote(a), Some(s)) if a == s => Route::Remote(a),
            _ => Route::Mixed,
        };
    }

    /// Run (or batch) request `i`, admitted as `cmd`.
    async fn one(
        &mut self,
        i: usize,
        cmd: &'static Command,
        argv: Vec<Bytes>,
        check: Option<SlotCheck>,
    ) {
        let (db, no_touch) = {
            let mut c = self.client.borrow_mut();
            c.last_cmd.clear();
            c.last_cmd.push_str(cmd.name);
            c.commands += 1;
            (c.db, c.no_touch)
        };
        if crate::tracking::active() {
            crate::runtime::tracking::before_command(self.client, cmd, &argv);
            crate::runtime::tracking::after_command(self.client, cmd);
        }
        if let Some((s, script)) = self.remote_script(cmd, &argv, &check) {
            return self
                .batch_script(i, s, cmd, db, no_touch, argv, script)
                .await;
        }
        let publishes = cmd.has_trait(traits::PUBLISHES | traits::PUBLISHES_SHARD);
        // A keyed command for one shard is timed where it runs (`call::call`); a slot
        // check is made there too. One that does not run on a single shard (a script,
        // EXEC, a SORT reaching other shards) checks first.
        let one_shard = match cmd.exec {
            Exec::Shard(_) => match target_shard(cmd, &argv, self.shards) {
                Target::One(s) => Some(s),
                Target::Many => None,
            },
            _ => None,
        };
        if let Some(b) = self.barrier {
            if one_shard != Some(b) || publishes {
                self.flush().await;
            }
        }
        if let (Some(s), false) = (one_shard, publishes) {
            return self.on_shard(i, s, cmd, db, no_touch, argv, check);
        }
        let start = Instant::now();
        let refusal = match &check {
            Some(check) if one_shard.is_none() => {
                self.flush().await;
                slot_refusal_elsewhere(self.client, self.shards, check, cmd, &argv).await
            }
            _ => None,
        };
        let resp = self.client.borrow().resp;
        // A script that ran as one job on one shard: where (see `ran_alone_on`).
        let mut alone = None;
        let reply = match cmd.exec {
            _ if refusal.is_some() => refusal.expect("just tested"),
            _ if publishes => self.publish(i, cmd, &argv).await,
            Exec::Conn(f) => call::guarded(cmd, || f(&mut self.client.borrow_mut(), &argv)),
            Exec::Server(f) => {
                self.flush().await;
                RAN_ALONE_ON.with(Cell::take);
                let reply = run_server(self.client, self.shards, cmd, f, db, &argv).await;
                alone = RAN_ALONE_ON.with(Cell::take);
                crate::persistence::save::flushall_saved(self.client).await;
                reply
            }
            Exec::Shard(_) => {
                self.flush().await;
                self.across_shards(cmd, db, no_touch, &argv).await
            }
            Exec::Container => unreachable!("resolve returns subcommands"),
        };
        if self.client.borrow().resp != resp {
            self.resp_before.push((i, resp));
        }
        if publishes || !matches!(cmd.exec, Exec::Conn(_)) {
            self.went(alone.filter(|&s| s != self.shards.local_id));
        }
        self.lanes = Lanes::All;
        let mut local = self.shards.local.borrow_mut();
        call::record(&mut local, cmd, &argv, start, &reply, &self.caller);
        drop(local);
        self.replies[i] = Some(reply);
        if cmd.has_trait(traits::UNWATCHES) {
            transaction::unwatch_all(self.client, self.shards);
        }
        if cmd.has_trait(traits::UNSUBSCRIBES) {
            crate::runtime::pubsub::unsubscribe_all(self.client, self.shards);
        }
        if cmd.has_trait(traits::ENDS_MONITOR) {
            monitor::stop(self.client, self.shards);
        }
    }

    /// A keyed command for shard `s`: inline if it is this core's (and free), else
    /// into that shard's batch (its reply slotted when the batch is flushed).
    #[allow(clippy::too_many_arguments)]
    fn on_shard(
        &mut self,
        i: usize,
        s: usize,
        cmd: &'static Command,
        db: usize,
        no_touch: bool,
        argv: Vec<Bytes>,
        check: Option<SlotCheck>,
    ) {
        let shards = self.shards;
        self.lanes = self.lanes.and_shard(s);
        // Behind nothing of this batch for this shard, and under no claim.
        if s == shards.local_id && self.pending[s].is_empty() && shards.local_admits(cmd, &argv) {
            let mut local = shards.local.borrow_mut();
            let reply = match check.and_then(|c| slot_refusal(&mut local, &c, cmd, &argv)) {
                Some(refused) => refused,
                None => call::call(&mut local, cmd, db, &argv, no_touch, &self.caller, self.now),
            };
            self.replies[i] = Some(reply);
            self.went(None);
        } else {
            self.went((s != shards.local_id).then_some(s));
            self.queue(
                s,
                Pending {
                    index: i,
                    db,
                    no_touch,
                    cmd,
                    argv,
                    check,
                    script: None,
                },
            );
        }
    }

    /// Add `p` to shard `s`'s batch.
    fn queue(&mut self, s: usize, p: Pending) {
        if self.pending[s].capacity() == 0 {
            // Room for every request left in the read: one allocation per batch, not
            // one per doubling (three reallocations for 16 requests).
            self.pending[s].reserve(self.replies.len() - p.index);
        }
        self.pending[s].push(p);
    }

    /// A script command whose declared keys live on another core's shard, and which
    /// may join that shard's batch (`scripting::run::batchable`): the shard and the
    /// script.
    fn remote_script(
        &self,
        cmd: &Command,
        argv: &[Bytes],
        check: &Option<SlotCheck>,
    ) -> Option<(usize, Box<Script>)> {
        let build = cmd.script.filter(|_| check.is_none())?;
        let Target::One(s) = target_shard(cmd, argv, self.shards) else {
            return None;
        };
        if s == self.shards.local_id {
            return None;
        }
        Some((s, run::batchable(self.client, self.shards, build, argv)?))
    }

    /// A script known to keep to shard `s`, another core's (see
    /// `scripting::run::batchable`), joins that shard's batch instead of paying a hop
    /// of its own: a pipeline of scripts for one shard costs one.
    ///
    /// A script may still reach beyond its shard on this run, before any effect: then
    /// it stops its batch (the requests behind it there wait) and runs holding every
    /// shard once the batch is back (`flush`), where it must find the effects of the
    /// requests before it and none of those after it. So while one is pending, a
    /// request of this read for any other shard, or for none, first sends the
    /// pending batches and waits for them (the barrier).
    #[allow(clippy::too_many_arguments)]
    async fn batch_script(
        &mut self,
        i: usize,
        s: usize,
        cmd: &'static Command,
        db: usize,
        no_touch: bool,
        argv: Vec<Bytes>,
        script: Box<Script>,
    ) {
        if self.barrier.is_some_and(|b| b != s) {
            self.flush().await;
        }
        self.barrier = Some(s);
        self.went(Some(s));
        self.lanes = self.lanes.and_shard(s);
        self.queue(
            s,
            Pending {
                index: i,
                db,
                no_touch,
                cmd,
                argv,
                check: None,
                script: Some(script),
            },
        );
    }

    /// A keyed command whose keys span shards: its own spread path, or a transaction.
    async fn across_shards(
        &self,
        cmd: &'static Command,
        db: usize,
        no_touch: bool,
        argv: &[Bytes],
    ) -> Reply {
        match cmd.spread_over(self.shards, argv) {
            Some(spread) => (spread.run)(self.shards, cmd, db, argv).await,
            _ => {
                let id = self.caller.id;
                multishard::run(self.shards, cmd, db, argv, no_touch, id, None).await
            }
        }
    }

    /// PUBLISH / SPUBLISH: delivered here at once, queued for the other cores that
    /// may have receivers; the reply counts this core's receivers until `flush` adds
    /// the others'. Commands before it in the batch that wait for another shard run
    /// first: a subscriber that hears the message must find their effects (and hear
    /// their keyspace events first), as Redis runs them in order.
    async fn publish(&mut self, i: usize, cmd: &Command, argv: &[Bytes]) -> Reply {
        if self.pending.iter().any(|p| !p.is_empty()) {
            self.flush().await;
        }
        let kind = if cmd.has_trait(traits::PUBLISHES_SHARD) {
            Subscription::ShardChannel
        } else {
            Subscription::Channel
        };
        let (channel, message) = (&argv[1], &argv[2]);
        crate::commands::pubsub::propagate(self.client, self.shards, kind, argv);
        for core in pubsub::listening_cores(self.shards, kind, channel) {
            self.published[core].push((i, (kind, channel.clone(), message.clone())));
        }
        Reply::Int(pubsub::deliver(kind, channel, message) as i64)
    }

    /// Send every pending per-shard batch (one hop each) and slot the replies; the
    /// index of the request sent, if it was the only one.
    async fn flush(&mut self) -> Option<usize> {
        for core in 0..self.published.len() {
            if self.published[core].is_empty() {
                continue;
            }
            let (indexes, batch): (Vec<usize>, pubsub::Outgoing) =
                std::mem::take(&mut self.published[core])
                    .into_iter()
                    .unzip();
            let counts = pubsub::send(self.shards, core, batch);
            for (i, n) in indexes.into_iter().zip(counts) {
                if let Some(Reply::Int(local)) = &mut self.replies[i] {
                    *local += n as i64;
                }
            }
            pubsub::catch_up_with(self.shards, core).await;
        }
        let mut sent = self.pending.iter().flatten().map(|p| p.index);
        let lone = match (sent.next(), sent.next()) {
            (Some(i), None) => Some(i),
            _ => None,
        };
        loop {
            let mut waiting = Vec::new();
            for (sid, items) in self.pending.iter_mut().enumerate() {
                if items.is_empty() {
                    continue;
                }
                let items = std::mem::take(items);
                let indexes: Vec<usize> = items.iter().map(|p| p.index).collect();
                let fp = self.shards.footprint_for(sid, || footprint(&items));
                let caller = self.caller.clone();
                // (Only a script needs the slot table: no reference count otherwise.)
                let slots = items
                    .iter()
                    .any(|p| p.script.is_some())
                    .then(|| self.shards.slots.clone());
                let rx = self.shards.send_touching(sid, fp, move |s: &mut Shard| {
                    run_pending(s, items, &caller, &slots)
                });
                waiting.push((sid, indexes, rx));
            }
            self.barrier = None;
            let mut stopped = None;
            for (sid, indexes, rx) in waiting {
                let (got, rest) = rx
                    .recv_async()
                    .await
                    .expect("a shard never drops a job it accepted");
                let ran = got.len();
                for (&i, r) in indexes.iter().zip(got) {
                    self.replies[i] = Some(r);
                }
                if let Some(rest) = rest {
                    stopped = Some((sid, indexes[ran], rest));
                }
            }
            // A batched script that did not end on its shard at once (the barrier
            // kept every other shard's requests after it from running): carry it
            // through here, then send what its batch left behind it.
            let Some((sid, i, (unfinished, script, rest))) = stopped else {
                return lone;
            };
            let start = Instant::now();
            let reply = run::finish_batched(self.client, self.shards, sid, unfinished).await;
            let mut local = self.shards.local.borrow_mut();
            call::record(
                &mut local,
                script.cmd,
                &script.argv,
                start,
                &reply,
                &self.caller,
            );
            drop(local);
            self.replies[i] = Some(reply);
            self.went(None);
            self.lanes = Lanes::All;
            self.pending[sid] = rest;
        }
    }

    /// The replies to write: those of requests sent under CLIENT REPLY OFF / SKIP are
    /// dropped (their errors still counted), except Pub/Sub's confirmations (pushes in
    /// RESP3, arrays in RESP2), which Redis sends whatever the reply mode.
    fn finish(self) -> Vec<Option<Reply>> {
        let mut replies = self.replies;
        for (r, s) in replies.iter_mut().zip(self.suppressed) {
            if s && r.as_ref().is_some_and(pushes) {
                continue;
            }
            if s && !matches!(r, Some(Reply::NoReply)) {
                if let Some(r) = r {
                    let mut local = self.shards.local.borrow_mut();
                    r.each_uncounted_error(&mut |e| local.stats.record_error(e));
                }
                *r = None;
            }
        }
        replies
    }
}

/// True if `reply` is push frames (one, or a [`Reply::Sequence`] of them: SUBSCRIBE's
/// confirmations).
fn pushes(reply: &Reply) -> bool {
    match reply {
        Reply::Push(_) => true,
        Reply::Sequence(items) => items.iter().all(|r| matches!(r, Reply::Push(_))),
        _ => false,
    }
}

/// A `Server` command; a server-wide write (FLUSHALL, FLUSHDB, SWAPDB) holds every
/// shard and is propagated once, meeting every shard's stream on replay.
async fn run_server(
    client: &ClientRef,
    shards: &Shards,
    cmd: &'static Command,
    f: crate::commands::ServerFn,
    db: usize,
    argv: &[Bytes],
) -> Reply {
    let all: Vec<usize> = (0..shards.count()).collect();
    let tx = if cmd.is_write() && !cmd.owns_its_effects() {
        Some(Tx::begin(shards, &all).await)
    } else {
        None
    };
    let handle = tx.as_ref().map_or(shards, |t| &t.shards);
    let reply = futures_lite::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(f(
        client, handle, argv,
    )))
    .await
    .unwrap_or_else(|_| call::panicked(cmd));
    if let Some(tx) = tx {
        if !reply.is_error() && call::propagating(&shards.server) {
            let argv = argv.to_vec();
            tx.log.push(&all, [Effect::new(db, argv)]);
        }
        tx.finish().await;
    }
    reply
}

/// Cluster mode: a request on a slot being migrated or imported, checked on the shard
/// that owns the slot just before it runs there: `-ASK` or `-TRYAGAIN` if its keys
/// are not (all) here (see `cluster::SlotCheck`).
fn slot_refusal(s: &mut Shard, check: &SlotCheck, cmd: &Command, argv: &[Bytes]) -> Option<Reply> {
    let keys: Vec<&[u8]> = cmd
        .key_indexes(argv)
        .iter()
        .map(|&i| &argv[i][..])
        .collect();
    count_and_judge(s, check, &keys)
}

fn count_and_judge(s: &mut Shard, check: &SlotCheck, keys: &[&[u8]]) -> Option<Reply> {
    let now = crate::clock::now_ms();
    let existing = keys.iter().filter(|k| s.dbs[0].alive(k, now)).count();
    check.verdict(existing, keys.len() - existing)
}

/// [`slot_refusal`] for a request that does not run on one shard (a script, EXEC, whose
/// keys are those of the commands it runs): a hop to the slot's shard before it runs.
/// Unlike a keyed command's check, another client's command may run between the two.
async fn slot_refusal_elsewhere(
    client: &ClientRef,
    shards: &Shards,
    check: &SlotCheck,
    cmd: &'static Command,
    argv: &[Bytes],
) -> Option<Reply> {
    let keys: Vec<Bytes> = admission::routed(&client.borrow(), cmd, argv)
        .flat_map(|(c, a)| c.key_indexes(a).into_iter().map(|i| a[i].clone()))
        .collect();
    let first = keys.first()?;
    let sid = shards.shard_of(first);
    let check = check.clone();
    shards
        .send_or_local(sid, move |s: &mut Shard| {
            let keys: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
            count_and_judge(s, &check, &keys)
        })
        .get()
        .await
}

/// The messages queued for `client` so far, if some are.
pub fn queued_pushes(client: &ClientRef) -> Option<BytesMut> {
    client.borrow().pushes.take()
}

/// The caller's address and name, for the slow log.
pub fn caller_of(client: &ClientRef) -> Caller {
    let c = client.borrow();
    Caller {
        id: c.id,
        addr: c.addr.clone(),
        name: c.name.as_deref().map(Into::into),
    }
}

/// Whether the reply of the command that just ran is dropped, and the reply mode for
/// the next one (CLIENT REPLY SKIP applies to the command after the one that set it).
///
/// As Redis, which checks the client's flags when the reply is added: the mode *after*
/// the command decides, so CLIENT REPLY ON answers +OK even under OFF or SKIP, and
/// RESET (which clears OFF) answers +RESET.
fn advance_reply_mode(client: &ClientRef) -> bool {
    let mut c = client.borrow_mut();
    let suppressed = matches!(c.reply_mode, ReplyMode::Off | ReplyMode::Skip);
    c.reply_mode = match c.reply_mode {
        ReplyMode::Skip => ReplyMode::On,
        ReplyMode::SkipNext => ReplyMode::Skip,
        m => m,
    };
    suppressed
}

enum Target {
    One(usize),
    Many,
}

fn target_shard(cmd: &Command, argv: &[Bytes], shards: &Shards) -> Target {
    if shards.count() == 1 {
        return Target::One(shards.local_id);
    }
    // Keys its key spec does not name (SORT's BY / GET patterns) may be anywhere.
    if cmd.spread_over(shards, argv).is_some() {
        return Target::Many;
    }
    let mut idx = cmd.key_index_iter(argv);
    let Some(first) = idx.next() else {
        return Target::One(shards.local_id);
    };
    let s = shards.shard_of(&argv[first]);
    if idx.all(|k| shards.shard_of(&argv[k]) == s) {
        Target::One(s)
    } else {
        Target::Many
    }
}

/// A batch's requests on their shard `s`, in order: their replies, and, if a script
/// among them did not end there at once, what is left (see [`Run::batch_script`]):
/// that script, its request, and the requests behind it, not run.
type Ran = (Vec<Reply>, Option<(Unfinished, Pending, Vec<Pending>)>);

fn run_pending(
    s: &mut Shard,
    items: Vec<Pending>,
    caller: &Caller,
    slots: &Option<Arc<SlotTable>>,
) -> Ran {
    let mut now = crate::clock::now_ms();
    let mut replies = Vec::with_capacity(items.len());
    let mut items = items.into_iter();
    while let Some(mut p) = items.next() {
        if let Some(script) = p.script.take() {
            let start = Instant::now();
            let slots = slots
                .clone()
                .expect("a batch with a script has the slot table");
            match run::run_batched(s, slots, script, p.db, caller.id, p.no_touch) {
                Ok(reply) => {
                    call::record(s, p.cmd, &p.argv, start, &reply, caller);
                    replies.push(reply);
                }
                Err(unfinished) => return (replies, Some((unfinished, p, items.collect()))),
            }
            // (Scripts may run long: the clock of the requests after it moves on.)
            now = crate::clock::now_ms();
            continue;
        }
        let refused = p.check.and_then(|c| slot_refusal(s, &c, p.cmd, &p.argv));
        replies.push(
            refused.unwrap_or_else(|| call::call(s, p.cmd, p.db, &p.argv, p.no_touch, caller, now)),
        );
    }
    (replies, None)
}

/// What a batch of commands for one shard touches there (all of it, with a script:
/// it may reach undeclared keys).
fn footprint(items: &[Pending]) -> Footprint {
    let mut keys = Vec::new();
    for p in items {
        if p.script.is_some() {
            return Footprint::Shard;
        }
        match call::footprint(p.cmd, &p.argv) {
            Footprint::Shard => return Footprint::Shard,
            Footprint::Keys(ks) => keys.extend(ks),
        }
    }
    Footprint::keys(keys)
}
