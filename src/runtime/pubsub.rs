//! Pub/Sub across cores: who is subscribed where, and how a message reaches them.
//!
//! **Where the registries live.** A connection stays on the core that accepted it, so
//! each core keeps the subscriptions of its own connections in a thread-local
//! [`Registry`] (channel → subscribers, pattern → subscribers, shard channel →
//! subscribers, in subscription order), next to its client registry (`clients`).
//! Subscribing and unsubscribing never leave the core: no hop, no lock. The client
//! itself keeps the names it is subscribed to (`Client::pubsub`, as Redis's client
//! struct does) for its replies' counts, CLIENT LIST and cleanup.
//!
//! **Who must hear a PUBLISH.** Besides its registry each core publishes what other
//! cores need of it in [`Presence`], shared by all cores (in `ServerInfo`): a coarse
//! summary, per core a count of its distinct channels in each of 256 hash buckets
//! (shard channels apart) and its number of distinct patterns; and its exact
//! [`Listeners`], the subscriber count of each of its channels and patterns, behind a
//! lock taken for writing only when a subscription comes or goes. PUBLISH reads, for
//! every other core, the one bucket of the channel and the pattern count (relaxed
//! atomic loads of lines that change only when a core gains or loses a channel), and
//! queues the message only for the cores that may have a receiver: a PUBLISH nobody
//! else listens to costs nothing more, and a channel with subscribers on many cores
//! costs one job per core, not per subscriber. A bucket collision only costs a wasted
//! look. A core with any pattern hears every PUBLISH, since only it can match its
//! patterns (Redis too matches every pattern on every PUBLISH). The exact per-channel
//! map of cores was not chosen: it needs a shared map locked on every first/last
//! subscription and read on every PUBLISH.
//!
//! **The count without a round trip.** PUBLISH answers the number of receivers. The
//! other cores' share is read from their [`Listeners`] when the message is queued for
//! them (once per batch and core, under one read lock), not awaited from them: waiting
//! for each listening core's answer cost a sleep and a wake-up on both cores per batch,
//! which measured 9.1 µs per cross-core message (epoll, P16) against 4.9 µs without
//! (`benches/pubsub.py`, Redis: 2.4). The price: a subscription or unsubscription on
//! another core made while a PUBLISH is on its way there may be counted one way and
//! delivered the other (listed in the README's differences); nothing that happened
//! before the PUBLISH was sent, or after its reply, can be.
//!
//! **Delivery and order.** On the receiving core, [`deliver`] encodes the message once
//! per protocol and appends it to each subscriber's [`Pushes`] queue, waking its
//! connection task, which writes it while waiting for input (see `connection`). Messages
//! for another core go on that core's queue of raised work (below), the one queue every
//! delivery from elsewhere takes, so they keep the order they were sent in whatever
//! raised them: each core's queue is FIFO and the local path is synchronous, so every
//! subscriber sees one publisher's messages in publish order, and a PUBLISH sent after
//! a command's reply behind that command's keyspace events. A connection's own replies
//! and its queued messages are interleaved at command boundaries (`dispatch` takes what
//! was queued while a command ran and writes it before that command's reply), which is
//! where Redis's single output buffer puts them: a RESP3 client that publishes to
//! itself gets the message before PUBLISH's count, as from Redis.
//!
//! **Messages raised on a shard.** Keyspace notifications (see `notify`) are messages
//! on `__keyspace@…` / `__keyevent@…` channels raised by commands while they run on
//! their shard, where no [`Shards`] handle can be used (it borrows the shard). The call
//! path hands them to [`publish_events`] right after the command, before its reply
//! leaves the shard: queued as one batch for each core that may hear any of them, this
//! one included, on that core's queue of raised work (in [`Presence`]; [`raise_on`]),
//! which a task of that core drains; nobody waits for a count. Tracking's
//! invalidations take the same queue, for the same order. Even this core's subscribers
//! get them through the queue, not at once: a command's events are queued for every
//! core before its reply leaves, so a client's next command, on any shard, queues its
//! own events behind them; delivering at once could overtake the events of the
//! client's previous command, still queued. And every other delivery on a core (a
//! PUBLISH, at once or from another core's job) first delivers what is queued there
//! ([`deliver`] catches up), so a PUBLISH sent after a command's reply never reaches a
//! subscriber before that command's events.
//!
//! **A client's own events come before its reply**, as in Redis, where the command
//! writes them to the client's output buffer as it runs. When a command ends, its
//! events are on this core's queue (they were queued before its reply left its shard),
//! so `dispatch` runs the queue ([`catch_up`]) for a client that listens before it
//! takes the client's queued messages, which it writes before that command's reply. A
//! request sent alone to another shard gets the same once its reply is back; several
//! pipelined requests batched to other shards get their events behind all their
//! replies (the batch's replies come back together). The client's own invalidations
//! (client-side caching) go the other way: Redis sends them after the reply, so
//! they are held until it is placed (`Pushes::push_after_reply`).
//!
//! **Reuse.** MONITOR and tracking invalidations need another key than a channel name
//! but the same parts: a per-core registry, a summary in
//! [`Presence`] so nobody listening costs nothing, one job per interested core, and the
//! client's [`Pushes`] queue to write from (`monitor` and `tracking` do so; the
//! invalidations noted on this core leave first thing in [`publish_events`], through
//! [`raise_on`]).
//!
//! **Flow control.** Not awaiting the count leaves a publisher nothing to slow it down,
//! and the queue of raised work is unbounded: messages waiting there are out of reach
//! of the output buffer limits. So after queuing a batch for a core, a publisher waits
//! for that core to run what was queued if more than [`BACKLOG`] jobs are waiting
//! ([`catch_up_with`]), and a core runs one job per turn of its loop, so its
//! subscribers' connections write between batches (Redis handles one read per turn).
//!
//! **Batching.** Outside MULTI, `dispatch` runs a PUBLISH itself (the table's
//! `PUBLISHES` trait): it delivers on this core at once, collects the message for each
//! listening core, and queues one batch per core ([`send`]) when the read's batches
//! are flushed, so a pipeline of PUBLISHes costs one wake-up per listening core, not
//! one per message; the replies get the other cores' counts added then. Inside EXEC,
//! [`publish`] queues each message as it runs.
//!
//! **Output buffer limit.** A subscriber is of the `pubsub` class while it has any
//! subscription (`Client::update_class` after each change); [`Pushes::push`] checks
//! that class's `client-output-buffer-limit` as each message is queued, and once it is
//! overcome drops the subscriber's further messages and wakes its connection task to
//! close the connection (see `output`). A message queued for a subscriber about to be
//! closed still counts in PUBLISH's reply, as in Redis until the client is freed.
//!
//! **Replicas.** PUBLISH and SPUBLISH are appended to the replication stream
//! (`replication::propagate_publish`), so a replica's subscribers hear them too.

use crate::client::{ClientRef, Pushes, Subscription};
use crate::notify::{self, Event};
use crate::protocol::Reply;
use crate::runtime::hop::ServerInfo;
use crate::runtime::Shards;
use crate::storage::glob::glob_match;
use bytes::{Bytes, BytesMut};
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// A subscriber: its client id and its queue.
type Subscribers = Vec<(u64, Rc<Pushes>)>;

/// One core's subscriptions, by kind ([`Subscription`] as index).
#[derive(Default)]
struct Registry {
    by_kind: [HashMap<Bytes, Subscribers>; 3],
}

/// One core's subscriber count per name, by kind: its [`Registry`] as other cores see
/// it.
#[derive(Default)]
struct Listeners {
    by_kind: [HashMap<Bytes, usize>; 3],
}

thread_local! {
    static REGISTRY: RefCell<Registry> = RefCell::default();
    /// The server this core runs, and its number of cores: what code running on this
    /// core's shard (where no [`Shards`] handle can be used) needs to reach every
    /// core's queue of raised work.
    static SERVER: OnceCell<(Arc<ServerInfo>, usize)> = const { OnceCell::new() };
    /// This core's queue of work raised on shards for its connections.
    static RAISED: OnceCell<flume::Receiver<Raised>> = const { OnceCell::new() };
}

/// Work raised on a shard for a core's connections, run there in order.
pub type Raised = Box<dyn FnOnce() + Send>;

/// Queue `job` on core `core`'s queue of raised work, behind what was raised for it
/// before (see the module doc); without a runtime (a unit test), run it now.
pub fn raise_on(core: usize, job: impl FnOnce() + Send + 'static) {
    SERVER.with(|s| match s.get() {
        Some((server, n)) => {
            let cores = server.pubsub.cores(*n);
            // An unbounded queue: sending never fails while the server runs.
            let _ = cores[core.min(n - 1)].raised.0.send(Box::new(job));
        }
        None => job(),
    });
}

/// Let messages raised on this core's shard reach the other cores, and those raised
/// for this core's subscribers reach them (at start, on the core's executor).
pub fn install(shards: &Shards) {
    SERVER.with(|s| {
        let _ = s.set((shards.server.clone(), shards.count()));
    });
    let rx = shards.server.pubsub.here(shards).raised.1.clone();
    RAISED.with(|r| {
        let _ = r.set(rx.clone());
    });
    crate::runtime::backend::spawn(async move {
        while let Ok(job) = rx.recv_async().await {
            job();
            // One job (a read's batch) at a time, as Redis handles one read per turn:
            // the subscribers' connections write between batches, rather than a
            // backlog of batches all landing in their queues first.
            crate::runtime::backend::yield_now().await;
        }
    })
    .detach();
}

/// Run, in order, the raised work queued for this core so far: called before any
/// other delivery here, so nothing overtakes what was raised before it.
pub fn catch_up() {
    RAISED.with(|r| {
        if let Some(rx) = r.get() {
            while let Ok(job) = rx.try_recv() {
                job();
            }
        }
    });
}

fn deliver_now(batch: &Outgoing) {
    for (kind, ch, msg) in batch {
        deliver_one(*kind, ch, msg);
    }
}

const BUCKETS: usize = 256;

/// What every core may know of another's subscriptions (see the module doc).
#[derive(Default)]
pub struct Presence {
    cores: OnceLock<Box<[CorePresence]>>,
}

struct CorePresence {
    /// Distinct channels per bucket: `[0]` channels, `[1]` shard channels.
    buckets: [Box<[AtomicU32]>; 2],
    patterns: AtomicU32,
    /// Exactly who listens here, as counts (see the module doc): what PUBLISH on
    /// another core answers from without asking this one.
    listeners: RwLock<Listeners>,
    /// Work raised on shards for this core's connections (keyspace events' messages,
    /// tracking invalidations), in the order it was raised (see the module doc).
    raised: (flume::Sender<Raised>, flume::Receiver<Raised>),
}

impl CorePresence {
    fn new() -> CorePresence {
        let buckets = || (0..BUCKETS).map(|_| AtomicU32::new(0)).collect();
        CorePresence {
            buckets: [buckets(), buckets()],
            patterns: AtomicU32::new(0),
            listeners: RwLock::default(),
            raised: flume::unbounded(),
        }
    }
    /// The counter a name of `kind` moves.
    fn counter(&self, kind: Subscription, name: &[u8]) -> &AtomicU32 {
        match kind {
            Subscription::Channel => &self.buckets[0][bucket(name)],
            Subscription::ShardChannel => &self.buckets[1][bucket(name)],
            Subscription::Pattern => &self.patterns,
        }
    }
    /// The receivers a message on `channel` finds here now: its subscribers and, for
    /// a channel, those of every matching pattern.
    fn receivers(&self, kind: Subscription, channel: &[u8]) -> usize {
        let l = self.listeners.read().unwrap_or_else(|p| p.into_inner());
        let mut n = l.by_kind[kind as usize].get(channel).copied().unwrap_or(0);
        if kind == Subscription::Channel {
            let patterns = &l.by_kind[Subscription::Pattern as usize];
            n += patterns
                .iter()
                .filter(|(p, _)| glob_match(p, channel, false))
                .map(|(_, k)| k)
                .sum::<usize>();
        }
        n
    }
    /// One more (`up`) or one fewer subscriber of `name` here.
    fn count(&self, kind: Subscription, name: &Bytes, up: bool) {
        let mut l = self.listeners.write().unwrap_or_else(|p| p.into_inner());
        let map = &mut l.by_kind[kind as usize];
        if up {
            *map.entry(name.clone()).or_default() += 1;
        } else if let Some(n) = map.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                map.remove(name);
            }
        }
    }
    /// True if this core may have a receiver for a message on `channel`.
    fn may_hear(&self, kind: Subscription, channel: &[u8]) -> bool {
        self.counter(kind, channel).load(Ordering::Acquire) > 0
            || (kind == Subscription::Channel && self.patterns.load(Ordering::Acquire) > 0)
    }
}

impl Presence {
    fn cores(&self, n: usize) -> &[CorePresence] {
        self.cores
            .get_or_init(|| (0..n).map(|_| CorePresence::new()).collect())
    }
    /// The summary of the core `shards` runs on.
    fn here(&self, shards: &Shards) -> &CorePresence {
        &self.cores(shards.count())[shards.local_id]
    }
}

fn bucket(name: &[u8]) -> usize {
    foldhash::fast::FixedState::with_seed(0).hash_one(name) as usize % BUCKETS
}

/// The word a reply or message of `kind` starts with.
fn words(kind: Subscription) -> (&'static str, &'static str, &'static str) {
    match kind {
        Subscription::Channel => ("subscribe", "unsubscribe", "message"),
        Subscription::Pattern => ("psubscribe", "punsubscribe", "pmessage"),
        Subscription::ShardChannel => ("ssubscribe", "sunsubscribe", "smessage"),
    }
}

/// SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE: one reply per name, with the running count.
pub fn subscribe(
    client: &ClientRef,
    shards: &Shards,
    kind: Subscription,
    names: &[Bytes],
) -> Reply {
    let mut c = client.borrow_mut();
    let pushes = c.push_queue();
    let id = c.id;
    let presence = shards.server.pubsub.here(shards);
    let mut replies = Vec::with_capacity(names.len());
    for name in names {
        if c.pubsub.subscribed[kind as usize].insert(name.clone()) {
            REGISTRY.with_borrow_mut(|r| {
                let subs = r.by_kind[kind as usize].entry(name.clone()).or_default();
                presence.count(kind, name, true);
                if subs.is_empty() {
                    presence.counter(kind, name).fetch_add(1, Ordering::Release);
                }
                subs.push((id, pushes.clone()));
            });
        }
        let count = c.pubsub.count(kind);
        replies.push(confirmation(
            words(kind).0,
            Reply::Bulk(name.clone()),
            count,
        ));
    }
    c.update_class();
    Reply::Sequence(replies)
}

/// UNSUBSCRIBE / PUNSUBSCRIBE / SUNSUBSCRIBE: the names given, or every one of the
/// kind; one reply per name (a nil name and count 0 when there was none).
pub fn unsubscribe(
    client: &ClientRef,
    shards: &Shards,
    kind: Subscription,
    names: &[Bytes],
) -> Reply {
    let mut c = client.borrow_mut();
    let names: Vec<Bytes> = if names.is_empty() {
        c.pubsub.of(kind).iter().cloned().collect()
    } else {
        names.to_vec()
    };
    let word = words(kind).1;
    if names.is_empty() {
        return confirmation(word, Reply::Null, c.pubsub.count(kind));
    }
    let presence = shards.server.pubsub.here(shards);
    let mut replies = Vec::with_capacity(names.len());
    for name in names {
        if c.pubsub.subscribed[kind as usize].shift_remove(&name) {
            forget(presence, kind, &name, c.id);
        }
        let count = c.pubsub.count(kind);
        replies.push(confirmation(word, Reply::Bulk(name), count));
    }
    c.update_class();
    Reply::Sequence(replies)
}

/// Drop every subscription of `client`, silently (RESET, disconnection).
pub fn unsubscribe_all(client: &ClientRef, shards: &Shards) {
    let mut c = client.borrow_mut();
    if !c.pubsub.active() {
        return;
    }
    let presence = shards.server.pubsub.here(shards);
    let id = c.id;
    for kind in Subscription::ALL {
        for name in std::mem::take(&mut c.pubsub.subscribed[kind as usize]) {
            forget(presence, kind, &name, id);
        }
    }
    c.update_class();
}

/// Take client `id` off `name`'s subscribers on this core.
fn forget(presence: &CorePresence, kind: Subscription, name: &Bytes, id: u64) {
    REGISTRY.with_borrow_mut(|r| {
        let map = &mut r.by_kind[kind as usize];
        if let Some(subs) = map.get_mut(name) {
            let before = subs.len();
            subs.retain(|(c, _)| *c != id);
            if subs.len() < before {
                presence.count(kind, name, false);
            }
            if subs.is_empty() {
                map.remove(name);
                presence.counter(kind, name).fetch_sub(1, Ordering::Release);
            }
        }
    });
}

fn confirmation(word: &'static str, name: Reply, count: usize) -> Reply {
    Reply::Push(vec![Reply::bulk_str(word), name, Reply::Int(count as i64)])
}

/// PUBLISH / SPUBLISH: deliver here at once and queue the message for every other
/// core that may have a receiver; the number of receivers (pattern matches included).
pub fn publish(shards: &Shards, kind: Subscription, channel: &Bytes, message: &Bytes) -> usize {
    let mut receivers = deliver(kind, channel, message);
    for core in listening_cores(shards, kind, channel) {
        receivers += send(shards, core, vec![(kind, channel.clone(), message.clone())])[0];
    }
    receivers
}

/// Queue `batch` for delivery on core `core` (another than this one), behind what was
/// raised for it before; the receivers each message finds there, counted now from that
/// core's [`Listeners`] (see the module doc).
pub fn send(shards: &Shards, core: usize, batch: Outgoing) -> Vec<usize> {
    let there = &shards.server.pubsub.cores(shards.count())[core];
    let counts = batch
        .iter()
        .map(|(kind, ch, _)| there.receivers(*kind, ch))
        .collect();
    // An unbounded queue: sending never fails while the server runs.
    let _ = there.raised.0.send(Box::new(move || deliver_now(&batch)));
    counts
}

/// Batches a core may have waiting on its queue of raised work before a publisher
/// waits for it: the queue is unbounded, so without this a publisher faster than the
/// subscribers' core would pile messages up there, out of reach of the output buffer
/// limits (which apply once a message is delivered to a subscriber's queue).
const BACKLOG: usize = 16;

/// Let core `core` catch up if it has more than [`BACKLOG`] jobs waiting: wait until it
/// ran everything queued for it so far (a publisher's flow control).
pub async fn catch_up_with(shards: &Shards, core: usize) {
    let there = &shards.server.pubsub.cores(shards.count())[core];
    if there.raised.0.len() <= BACKLOG {
        return;
    }
    let (tx, rx) = flume::bounded::<()>(1);
    let _ = there.raised.0.send(Box::new(move || {
        let _ = tx.send(());
    }));
    let _ = rx.recv_async().await;
}

/// The other cores that may have a receiver for a message on `channel`.
pub fn listening_cores<'a>(
    shards: &'a Shards,
    kind: Subscription,
    channel: &'a [u8],
) -> impl Iterator<Item = usize> + 'a {
    let cores = shards.server.pubsub.cores(shards.count());
    (0..shards.count())
        .filter(move |&id| id != shards.local_id && cores[id].may_hear(kind, channel))
}

/// Publish keyspace events raised on this core's shard (see the module doc): each as
/// `__keyspace@<db>__:<key>` / `<event>` and `__keyevent@<db>__:<event>` / `<key>`,
/// as the `K` and `E` flags say, in the order raised.
pub fn publish_events(events: Vec<Event>) {
    // Invalidations noted with them (client-side caching) leave first.
    crate::runtime::tracking::send_pending();
    if events.is_empty() {
        return;
    }
    let flags = notify::flags();
    let mut messages: Outgoing = Vec::with_capacity(events.len() * 2);
    let channel = |space: &str, db: usize, tail: &[u8]| {
        let mut c = BytesMut::with_capacity(16 + tail.len());
        c.extend_from_slice(format!("__key{space}@{db}__:").as_bytes());
        c.extend_from_slice(tail);
        c.freeze()
    };
    for e in events {
        let name = Bytes::from_static(e.name.as_bytes());
        if flags & notify::KEYSPACE != 0 {
            let ch = channel("space", e.db, &e.key);
            messages.push((Subscription::Channel, ch, name.clone()));
        }
        if flags & notify::KEYEVENT != 0 {
            let ch = channel("event", e.db, &name);
            messages.push((Subscription::Channel, ch, e.key));
        }
    }
    SERVER.with(|s| match s.get() {
        Some((server, n)) => {
            for core in server.pubsub.cores(*n) {
                let batch: Outgoing = messages
                    .iter()
                    .filter(|(kind, ch, _)| core.may_hear(*kind, ch))
                    .cloned()
                    .collect();
                if !batch.is_empty() {
                    // An unbounded queue: sending never fails while the server runs.
                    let _ = core.raised.0.send(Box::new(move || deliver_now(&batch)));
                }
            }
        }
        // No runtime (a command run by a unit test): this core is the only one.
        None => {
            deliver_all(&messages);
        }
    });
}

/// One message: its kind of channel, the channel, the payload.
pub type Message = (Subscription, Bytes, Bytes);

/// Messages for one core, sent as one job (a read's PUBLISHes: see `dispatch`).
pub type Outgoing = Vec<Message>;

/// Deliver a batch of messages on this core, in order; the receivers of each.
pub fn deliver_all(batch: &Outgoing) -> Vec<usize> {
    catch_up();
    batch
        .iter()
        .map(|(k, ch, msg)| deliver_one(*k, ch, msg))
        .collect()
}

/// Encodings of one message, made once per protocol on first need.
struct Encoded {
    reply: Reply,
    done: [Option<BytesMut>; 2],
}

impl Encoded {
    fn new(items: Vec<Reply>) -> Self {
        Encoded {
            reply: Reply::Push(items),
            done: [None, None],
        }
    }
    fn send(&mut self, to: &Pushes) {
        let resp = to.resp.get();
        let slot = &mut self.done[usize::from(resp >= 3)];
        let bytes = slot.get_or_insert_with(|| {
            let mut b = BytesMut::new();
            self.reply.encode(resp, &mut b);
            b
        });
        to.push(bytes);
    }
}

/// Deliver a message to this core's subscribers of `channel` (and, for a channel,
/// of every matching pattern), after the raised messages queued here; how many
/// received it.
pub fn deliver(kind: Subscription, channel: &Bytes, message: &Bytes) -> usize {
    catch_up();
    deliver_one(kind, channel, message)
}

fn deliver_one(kind: Subscription, channel: &Bytes, message: &Bytes) -> usize {
    REGISTRY.with_borrow(|r| {
        let mut n = 0;
        let word = words(kind).2;
        if let Some(subs) = r.by_kind[kind as usize].get(channel) {
            let mut m = Encoded::new(vec![
                Reply::bulk_str(word),
                Reply::Bulk(channel.clone()),
                Reply::Bulk(message.clone()),
            ]);
            for (_, p) in subs {
                m.send(p);
            }
            n += subs.len();
        }
        if kind == Subscription::Channel {
            for (pattern, subs) in &r.by_kind[Subscription::Pattern as usize] {
                if !glob_match(pattern, channel, false) {
                    continue;
                }
                let mut m = Encoded::new(vec![
                    Reply::bulk_str("pmessage"),
                    Reply::Bulk(pattern.clone()),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]);
                for (_, p) in subs {
                    m.send(p);
                }
                n += subs.len();
            }
        }
        n
    })
}

/// This core's names of `kind` matching `pattern` (all without one).
pub fn local_names(kind: Subscription, pattern: Option<&[u8]>) -> Vec<Bytes> {
    REGISTRY.with_borrow(|r| {
        r.by_kind[kind as usize]
            .keys()
            .filter(|n| pattern.is_none_or(|p| glob_match(p, n, false)))
            .cloned()
            .collect()
    })
}

/// This core's subscriber count for each of `names`.
pub fn local_counts(kind: Subscription, names: &[Bytes]) -> Vec<usize> {
    REGISTRY.with_borrow(|r| {
        names
            .iter()
            .map(|n| r.by_kind[kind as usize].get(n).map_or(0, Vec::len))
            .collect()
    })
}

/// The distinct names of `kind` over every core matching `pattern`, in no order.
pub async fn names(shards: &Shards, kind: Subscription, pattern: Option<Bytes>) -> Vec<Bytes> {
    let per_core = shards
        .all(move |_| local_names(kind, pattern.as_deref()))
        .await;
    distinct(per_core)
}

/// The union of per-core name lists.
pub fn distinct(per_core: Vec<Vec<Bytes>>) -> Vec<Bytes> {
    let mut seen = std::collections::HashSet::new();
    per_core
        .into_iter()
        .flatten()
        .filter(|n| seen.insert(n.clone()))
        .collect()
}

/// Subscribers of each of `names`, summed over every core.
pub async fn counts(shards: &Shards, kind: Subscription, names: &[Bytes]) -> Vec<usize> {
    let owned = names.to_vec();
    let per_core = shards.all(move |_| local_counts(kind, &owned)).await;
    let mut total = vec![0; names.len()];
    for core in per_core {
        for (t, n) in total.iter_mut().zip(core) {
            *t += n;
        }
    }
    total
}
