//! Durability: what the runtime asks of persistence while it serves requests.
//!
//! Persistence sits above the runtime: it drives snapshots and the AOF through
//! [`Shards`](super::Shards) and transactions, and `crate::server` starts its tasks. A
//! request's way through a core still meets it at four points (refusing writes after a
//! failed save, holding replies until the AOF has what they show, knowing whether
//! effects are logged, the shard's cron), so the runtime names those points here as a
//! trait, and persistence installs its implementation in [`ServerInfo`](super::ServerInfo) at start. The
//! runtime never names a persistence type.
//!
//! The one idea to hold: [`Durability::durable`] runs before every write of replies,
//! so it must decide with a load or two whether there is anything to wait for, and
//! only then build a future (with `appendfsync always`, or while a stream lags).

use crate::config::Config;
use crate::protocol::Reply;
use crate::shard::Shard;
use std::future::Future;
use std::pin::Pin;

/// A wait for the log to catch up, built only when there is something to wait for.
pub type Wait = Pin<Box<dyn Future<Output = ()>>>;

/// The request-time hooks of persistence (see the module comment).
pub trait Durability: std::any::Any + Send + Sync {
    /// The reply a write (or a command refused on a disk error) gets now instead of
    /// running: `-MISCONF` after a failed background save. `config` is the shard's.
    fn writes_refused(&self, config: &Config) -> Option<Reply>;
    /// What to await before replies leave so that what they show is logged (fsynced
    /// with `appendfsync always`); `None` when they may leave now.
    fn durable(&self) -> Option<Wait>;
    /// True while effects are logged (coordinators of multi-shard work check it before
    /// building records on their side).
    fn propagating(&self) -> bool;
    /// A shard's cron tick: follow the configuration, publish its change counter.
    fn cron(&self, shard: &mut Shard);
    /// The implementation, for persistence to reach its own state (see
    /// `persistence::of`).
    fn as_any(&self) -> &dyn std::any::Any;
}
