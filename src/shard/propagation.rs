//! The propagation hook: where the effects of the commands a shard runs leave it, in
//! the order they ran, for the AOF and (next) replication.
//!
//! The one idea to hold: a consumer sees *units* that must be applied whole. The call
//! path ([`crate::runtime::call`]) hands every command's records here after it changed
//! data, preceded by `DEL`s for the keys found expired meanwhile (Redis propagates
//! expirations the same way). Outside a transaction each command is its own unit.
//! Inside a single-shard EXEC the records are staged and leave as one MULTI/EXEC
//! block when it ends. While a multi-shard transaction's work runs on the shard, they
//! go to that transaction's own log ([`TxLog`], carried by the transaction's jobs and
//! set here for their duration), shared by every shard it holds and by its coordinator, in
//! the order they ran; the transaction hands the whole log to every shard of its set
//! before it releases any of them ([`Propagation::conclude`]), and each consumer
//! decides what to write there (the AOF: its part on every shard, the records on the
//! highest one).
//!
//! Zero cost when nobody listens: with no consumer attached, [`Propagation::active`]
//! is false and the call path computes no records at all.

use bytes::Bytes;
use std::any::Any;
use std::sync::{Arc, Mutex};

/// One propagated record: a command (Redis 7.0's propagated form), its database, and
/// where it goes ([`TO_AOF`], [`TO_REPLICAS`]: a script's `redis.set_repl` may keep
/// records from either).
#[derive(Clone, Debug, PartialEq)]
pub struct Effect {
    pub db: usize,
    pub argv: Vec<Bytes>,
    pub to: u8,
}

/// [`Effect::to`]'s bits, as Redis's `PROPAGATE_AOF` / `PROPAGATE_REPL` (and
/// `redis.set_repl`'s `REPL_AOF` / `REPL_REPLICA`).
pub const TO_AOF: u8 = 1;
pub const TO_REPLICAS: u8 = 2;
pub const TO_ALL: u8 = TO_AOF | TO_REPLICAS;

impl Effect {
    /// A record for every consumer.
    pub fn new(db: usize, argv: Vec<Bytes>) -> Effect {
        Effect {
            db,
            argv,
            to: TO_ALL,
        }
    }
}

thread_local! {
    /// Where the records of the commands this thread runs now go: [`TO_ALL`] but
    /// while a script that called `redis.set_repl` runs one of its commands here.
    static TARGETS: std::cell::Cell<u8> = const { std::cell::Cell::new(TO_ALL) };
}

/// Where the records of the command running on this thread go.
pub fn targets() -> u8 {
    TARGETS.get()
}

/// Run `f` with its commands' records going to `to` only.
pub fn with_targets<R>(to: u8, f: impl FnOnce() -> R) -> R {
    struct Restore(u8);
    impl Drop for Restore {
        fn drop(&mut self) {
            TARGETS.set(self.0);
        }
    }
    let _restore = Restore(TARGETS.replace(to));
    f()
}

/// The records of `effects` meant for `to` (borrowed when that is all of them, the
/// common case).
pub fn meant_for(effects: &[Effect], to: u8) -> std::borrow::Cow<'_, [Effect]> {
    if effects.iter().all(|e| e.to & to != 0) {
        std::borrow::Cow::Borrowed(effects)
    } else {
        std::borrow::Cow::Owned(effects.iter().filter(|e| e.to & to != 0).cloned().collect())
    }
}

/// What a consumer receives, always whole.
pub enum Unit<'a> {
    /// One command's records (or expired keys' DELs) outside any transaction; several
    /// records must be applied whole (Redis 7.0 wraps them in MULTI / EXEC).
    Command(&'a [Effect]),
    /// A single-shard MULTI / EXEC (or a command run in EXEC's isolation).
    Block(&'a [Effect]),
    /// Multi-shard transaction `id` concludes; this shard is one of `set` (sorted),
    /// and `effects` are all its records, whichever shard ran them.
    Transaction {
        shard: usize,
        id: u64,
        set: &'a [usize],
        effects: &'a [Effect],
    },
}

/// A consumer of a shard's effects (the AOF lane; replication's feed).
pub trait Consumer: Any {
    fn apply(&mut self, unit: Unit<'_>);
    /// Why writes are refused now (the MISCONF text after `MISCONF `), if they are.
    fn refuses_writes(&self) -> Option<String> {
        None
    }
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// A multi-shard transaction's records in the order they ran, and the shards it must
/// meet on replay; shared by the transaction's coordinator and the shards it holds.
#[derive(Default)]
pub struct TxLog {
    inner: Mutex<TxRecords>,
}

#[derive(Default)]
struct TxRecords {
    effects: Vec<Effect>,
    shards: Vec<usize>,
}

impl TxLog {
    /// Append `effects`, noting `shards` as shards the transaction must meet on
    /// replay (those whose keys the records read or wrote).
    pub fn push(&self, shards: &[usize], effects: impl IntoIterator<Item = Effect>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for &s in shards {
            if !g.shards.contains(&s) {
                g.shards.push(s);
            }
        }
        g.effects.extend(effects);
    }
    /// The shard set (sorted) and the records, leaving the log empty; None if nothing
    /// was logged.
    pub fn take(&self) -> Option<(Vec<usize>, Vec<Effect>)> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.effects.is_empty() && g.shards.is_empty() {
            return None;
        }
        let mut shards = std::mem::take(&mut g.shards);
        shards.sort_unstable();
        Some((shards, std::mem::take(&mut g.effects)))
    }
}

/// A shard's side of the hook.
#[derive(Default)]
pub struct Propagation {
    consumers: Vec<Box<dyn Consumer>>,
    /// Staging a single-shard EXEC block.
    in_block: bool,
    stage: Vec<Effect>,
    /// The log of the multi-shard transaction whose work is running.
    tx: Option<Arc<TxLog>>,
}

impl Propagation {
    /// True if some consumer listens (else the call path skips propagation).
    #[inline]
    pub fn active(&self) -> bool {
        !self.consumers.is_empty()
    }
    pub fn attach(&mut self, c: Box<dyn Consumer>) {
        self.consumers.push(c);
    }
    /// Remove the consumers of type `T`.
    pub fn detach<T: Consumer>(&mut self) {
        self.consumers.retain_mut(|c| !c.as_any_mut().is::<T>());
        if self.consumers.is_empty() {
            self.in_block = false;
            self.stage.clear();
        }
    }
    /// The attached consumer of type `T`.
    pub fn consumer_mut<T: Consumer>(&mut self) -> Option<&mut T> {
        self.consumers
            .iter_mut()
            .find_map(|c| c.as_any_mut().downcast_mut::<T>())
    }
    /// Why a write must be refused now, if a consumer cannot take it.
    pub fn refuses_writes(&self) -> Option<String> {
        self.consumers.iter().find_map(|c| c.refuses_writes())
    }

    /// Records of one command, run on shard `shard`.
    pub fn emit(&mut self, shard: usize, effects: Vec<Effect>) {
        if effects.is_empty() {
            return;
        }
        if let Some(log) = &self.tx {
            log.push(&[shard], effects);
        } else if self.in_block {
            self.stage.extend(effects);
        } else {
            for c in self.consumers.iter_mut() {
                c.apply(Unit::Command(&effects));
            }
        }
    }

    /// True while a multi-shard transaction's work runs here.
    pub fn in_tx_work(&self) -> bool {
        self.tx.is_some()
    }

    /// True while records are staged or logged for a transaction (not handed out).
    pub fn in_transaction(&self) -> bool {
        self.in_block || self.tx.is_some()
    }

    /// A single-shard EXEC starts (no-op inside a multi-shard transaction, whose log
    /// gathers everything anyway).
    pub fn begin_block(&mut self) {
        if self.active() && self.tx.is_none() {
            self.in_block = true;
        }
    }
    /// A single-shard EXEC ends: its records leave as one block.
    pub fn end_block(&mut self) {
        if !std::mem::take(&mut self.in_block) || self.stage.is_empty() {
            return;
        }
        let staged = std::mem::take(&mut self.stage);
        for c in self.consumers.iter_mut() {
            c.apply(Unit::Block(&staged));
        }
    }

    /// Work of a multi-shard transaction starts here: records go to its log until
    /// `leave_tx`, given what this returns.
    pub fn enter_tx(&mut self, log: Arc<TxLog>) -> Option<Arc<TxLog>> {
        self.tx.replace(log)
    }
    /// That work ends.
    pub fn leave_tx(&mut self, outer: Option<Arc<TxLog>>) {
        self.tx = outer;
    }
    /// Transaction `id` concludes on this shard, one of `set`.
    pub fn conclude(&mut self, shard: usize, id: u64, set: &[usize], effects: &[Effect]) {
        for c in self.consumers.iter_mut() {
            c.apply(Unit::Transaction {
                shard,
                id,
                set,
                effects,
            });
        }
    }
}
