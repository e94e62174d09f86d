//! Hops: running work on the shard that owns it.
//!
//! Each shard has one inbox (a `flume` MPSC channel) of boxed closures that run with
//! `&mut Shard` on the shard's own thread; the answer comes back on a one-shot channel.
//! glommio wakes a task from a foreign thread through its notifier, so a connection task
//! awaiting a remote answer costs nothing while it waits. [`Shards`] is the handle every
//! connection task holds: `on` runs a closure on one shard (inline when it is the local
//! one), `all` on every shard concurrently. The transaction scheduler of the next issue
//! builds on these two primitives.

use crate::config::ConfigHandle;
use crate::runtime::slots::SlotTable;
use crate::shard::Shard;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub type Job = Box<dyn FnOnce(&mut Shard) + Send>;

/// Process-wide facts shared by all shards.
pub struct ServerInfo {
    pub run_id: String,
    pub started_ms: u64,
    pub config: ConfigHandle,
    pub next_client_id: AtomicU64,
    pub next_slowlog_id: AtomicU64,
    pub shutting_down: AtomicBool,
    pub connected_clients: std::sync::atomic::AtomicUsize,
    pub executable: String,
    pub tcp_port: u16,
}

impl ServerInfo {
    pub fn new(config: ConfigHandle) -> ServerInfo {
        let run_id: String = (0..40)
            .map(|_| format!("{:x}", rand::random::<u8>() & 15))
            .collect();
        let port = config.current().port;
        ServerInfo {
            run_id,
            started_ms: crate::shard::now_ms(),
            config,
            next_client_id: AtomicU64::new(1),
            next_slowlog_id: AtomicU64::new(0),
            shutting_down: AtomicBool::new(false),
            connected_clients: Default::default(),
            executable: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            tcp_port: port,
        }
    }
    pub fn new_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// One core's view of all shards.
pub struct Shards {
    pub local_id: usize,
    pub local: Rc<RefCell<Shard>>,
    inboxes: Arc<Vec<flume::Sender<Job>>>,
    pub slots: Arc<SlotTable>,
    pub server: Arc<ServerInfo>,
}

impl Shards {
    pub fn new(
        local_id: usize,
        local: Rc<RefCell<Shard>>,
        inboxes: Arc<Vec<flume::Sender<Job>>>,
        slots: Arc<SlotTable>,
        server: Arc<ServerInfo>,
    ) -> Shards {
        Shards {
            local_id,
            local,
            inboxes,
            slots,
            server,
        }
    }

    pub fn count(&self) -> usize {
        self.inboxes.len()
    }

    pub fn shard_of(&self, key: &[u8]) -> usize {
        self.slots.shard_of(key)
    }

    /// Run `f` on shard `id` and return its result.
    pub async fn on<R: Send + 'static>(
        &self,
        id: usize,
        f: impl FnOnce(&mut Shard) -> R + Send + 'static,
    ) -> R {
        if id == self.local_id {
            return f(&mut self.local.borrow_mut());
        }
        let rx = self.send(id, f);
        rx.recv_async()
            .await
            .expect("a shard never drops a job it accepted")
    }

    /// Queue `f` on remote shard `id`; the answer arrives on the returned channel.
    pub fn send<R: Send + 'static>(
        &self,
        id: usize,
        f: impl FnOnce(&mut Shard) -> R + Send + 'static,
    ) -> flume::Receiver<R> {
        let (tx, rx) = flume::bounded(1);
        let job: Job = Box::new(move |s: &mut Shard| {
            s.stats.hops_served += 1;
            let _ = tx.send(f(s));
        });
        self.local.borrow_mut().stats.hops_sent += 1;
        if self.inboxes[id].send(job).is_err() {
            panic!("shard {id} inbox closed while the server runs");
        }
        rx
    }

    /// Run `f` on every shard (remote ones concurrently); results in shard order.
    pub async fn all<R: Send + 'static>(
        &self,
        f: impl Fn(&mut Shard) -> R + Send + Sync + 'static,
    ) -> Vec<R> {
        let f = Arc::new(f);
        let pending: Vec<_> = (0..self.count())
            .map(|id| {
                if id == self.local_id {
                    None
                } else {
                    let f = f.clone();
                    Some(self.send(id, move |s| f(s)))
                }
            })
            .collect();
        let mut out = Vec::with_capacity(pending.len());
        for (id, rx) in pending.into_iter().enumerate() {
            match rx {
                None => out.push(f(&mut self.local.borrow_mut())),
                Some(rx) => {
                    let _ = id;
                    out.push(
                        rx.recv_async()
                            .await
                            .expect("a shard never drops a job it accepted"),
                    );
                }
            }
        }
        out
    }
}

/// The loop that serves a shard's inbox on its own executor.
pub async fn serve_inbox(shard: Rc<RefCell<Shard>>, inbox: flume::Receiver<Job>) {
    while let Ok(job) = inbox.recv_async().await {
        let mut s = shard.borrow_mut();
        job(&mut s);
        // Drain what else is queued without another wake-up.
        while let Ok(job) = inbox.try_recv() {
            job(&mut s);
        }
    }
}

/// An answer that is either already computed (local shard) or on its way (remote).
pub enum Answer<R> {
    Ready(R),
    Remote(flume::Receiver<R>),
}

impl<R> Answer<R> {
    pub async fn get(self) -> R {
        match self {
            Answer::Ready(r) => r,
            Answer::Remote(rx) => rx
                .recv_async()
                .await
                .expect("a shard never drops a job it accepted"),
        }
    }
}

impl Shards {
    /// Run `f` at once if `id` is local, else queue it; await the answer with `get`.
    /// Lets a caller queue remote work on every shard before doing its local part.
    pub fn send_or_local<R: Send + 'static>(
        &self,
        id: usize,
        f: impl FnOnce(&mut Shard) -> R + Send + 'static,
    ) -> Answer<R> {
        if id == self.local_id {
            Answer::Ready(f(&mut self.local.borrow_mut()))
        } else {
            Answer::Remote(self.send(id, f))
        }
    }
}
