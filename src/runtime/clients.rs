//! The clients connected through this core: CLIENT LIST, KILL, UNBLOCK and INFO's
//! client count reach them here.
//!
//! One registry per core, kept in a thread-local: a core's connections and its shard
//! live on the same thread, so work sent to a shard (`Shards::all`) finds that core's
//! clients here, and the shard itself knows nothing of clients.

use crate::client::ClientRef;
use std::cell::RefCell;
use std::collections::BTreeMap;

thread_local! {
    static CLIENTS: RefCell<BTreeMap<u64, ClientRef>> = const { RefCell::new(BTreeMap::new()) };
}

/// A connection accepted on this core.
pub fn register(id: u64, client: ClientRef) {
    CLIENTS.with(|c| c.borrow_mut().insert(id, client));
}

/// The connection is gone.
pub fn unregister(id: u64) {
    CLIENTS.with(|c| c.borrow_mut().remove(&id));
}

/// Client `id`, if it is connected through this core.
pub fn get(id: u64) -> Option<ClientRef> {
    CLIENTS.with(|c| c.borrow().get(&id).cloned())
}

/// How many clients are connected through this core.
pub fn count() -> usize {
    CLIENTS.with(|c| c.borrow().len())
}

/// Run `f` over this core's clients, in id order (`f` must not connect or drop one).
pub fn each<R>(f: impl FnOnce(&mut dyn Iterator<Item = &ClientRef>) -> R) -> R {
    CLIENTS.with(|c| f(&mut c.borrow().values()))
}
