//! Where clients connect: the TCP addresses of `bind` and `port` and the Unix socket of
//! `unixsocket`, each core accepting on listeners of its own.
//!
//! At start the addresses are checked once (a port another server listens on fails the
//! start, as Redis's), then every core binds its own listener on each TCP address
//! (SO_REUSEPORT: the kernel spreads connections over the cores) and a copy of the
//! Unix socket, and no core accepts before all listen. A connection is served on the
//! core that accepted it (it may move later: `connection`).
//!
//! CONFIG SET port / bind ([`rebind`]) closes every core's TCP listeners and binds the
//! new addresses on every core, as Redis's `changeListenPort` / `changeBindAddr`;
//! connections stay where they are.

use super::{backend, connection, Shards};
use crate::log::log;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The client listening addresses of `bind` and `port`, as text (for messages) and
/// resolved: those that cannot be used are skipped when optional (a leading '-', as
/// Redis), else the server stops with Redis's message. Checked once, before any core
/// binds, so that a port another server listens on fails the start (see
/// `backend::probe_exclusive`, and, with `retry`, `backend::retry_in_use` for a server
/// that has just died). None for port 0 (no TCP, as Redis).
pub fn addresses(
    cfg: &crate::config::Config,
    retry: bool,
) -> Result<Vec<(String, SocketAddr)>, String> {
    let mut out = Vec::new();
    if cfg.port == 0 {
        return Ok(out);
    }
    for addr in &cfg.bind {
        let (optional, host) = match addr.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, addr.as_str()),
        };
        let sockaddr = if host.contains(':') {
            format!("[{host}]:{}", cfg.port)
        } else {
            format!("{host}:{}", cfg.port)
        };
        let usable = std::net::ToSocketAddrs::to_socket_addrs(sockaddr.as_str())
            .and_then(|mut a| {
                a.next()
                    .ok_or_else(|| std::io::ErrorKind::AddrNotAvailable.into())
            })
            .and_then(|a| {
                let probe = || backend::probe_exclusive(a);
                match retry {
                    true => backend::retry_in_use(probe),
                    false => probe(),
                }
                .map(|()| a)
            });
        match usable {
            Ok(a) => out.push((sockaddr, a)),
            Err(e) if optional => log(&format!("Skipping optional bind address {sockaddr}: {e}")),
            Err(e) => return Err(cannot_listen(&sockaddr, &e)),
        }
    }
    if out.is_empty() {
        return Err("No listening address could be bound".into());
    }
    Ok(out)
}

/// The Unix domain socket of `unixsocket`, bound and listening (with `unixsocketperm`
/// and `tcp-backlog`, as Redis's), if one is set; every core accepts on a copy of it.
pub fn unix_socket(
    cfg: &crate::config::Config,
) -> Result<Option<std::os::unix::net::UnixListener>, String> {
    let path = cfg.get("unixsocket").unwrap_or_default();
    if path.is_empty() {
        return Ok(None);
    }
    let perm = cfg
        .get("unixsocketperm")
        .and_then(|p| u32::from_str_radix(p, 8).ok())
        .unwrap_or(0);
    backend::bind_unix(path, perm, listen_backlog(cfg))
        .map(Some)
        .map_err(|e| format!("Failed opening Unix socket: {e}"))
}

/// `tcp-backlog`: every listening socket's backlog, the Unix socket's too (as Redis's).
fn listen_backlog(cfg: &crate::config::Config) -> i32 {
    cfg.get("tcp-backlog")
        .and_then(|b| b.parse().ok())
        .unwrap_or(511)
}

/// A listening socket of this core: a TCP address (shared with `TCP`, which stops
/// it), or the Unix socket.
enum Listener {
    Shared(Rc<backend::TcpListener>),
    Unix(backend::UnixListener),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<backend::TcpStream> {
        match self {
            Listener::Shared(l) => l.accept().await,
            Listener::Unix(l) => l.accept().await,
        }
    }
}

/// Redis's message for a listening address that cannot be bound.
fn cannot_listen(sockaddr: &str, e: &std::io::Error) -> String {
    format!("Could not create server TCP listening socket {sockaddr}: {e}")
}

pub async fn accept_loop(
    shards: Rc<Shards>,
    addrs: Arc<Vec<(String, SocketAddr)>>,
    unix: Option<Arc<std::os::unix::net::UnixListener>>,
) -> Result<(), String> {
    let cfg = shards.local.borrow().config.clone();
    let tcp = match bind_here(&addrs, listen_backlog(&cfg)) {
        Ok(l) => l,
        Err(e) => {
            log(&e);
            backend::exit(1);
        }
    };
    let unix_listener = match &unix {
        Some(unix) => match backend::UnixListener::on_this_core(unix) {
            Ok(l) => Some(Listener::Unix(l)),
            Err(e) => {
                log(&format!("Failed opening Unix socket: {e}"));
                backend::exit(1);
            }
        },
        None => None,
    };
    // No core accepts before every core listens: the kernel spreads connections over
    // the listeners bound so far, so the first clients would all land on the cores
    // that bound first (and "Ready" would be logged before the server is).
    shards.server.listening.fetch_add(1, Ordering::AcqRel);
    all_listening(&shards).await;
    if shards.local_id == 0 {
        crate::memory::mark_startup();
        if !addrs.is_empty() {
            log(&format!(
                "Ready to accept connections tcp on port {}",
                cfg.port
            ));
        }
        if unix.is_some() {
            log(&format!(
                "The server is now ready to accept connections at {}",
                cfg.get("unixsocket").unwrap_or_default()
            ));
        }
    }
    accept_tcp(&shards, tcp);
    if let Some(l) = unix_listener {
        backend::spawn(accept_on(shards.clone(), l, None)).detach();
    }
    // The core runs until the process exits (SHUTDOWN, a signal: `backend::exit`).
    std::future::pending().await
}

/// Bind this core's listeners on `addrs` (sharing each port with the other cores'),
/// or Redis's message for the first that cannot be bound.
fn bind_here(
    addrs: &[(String, SocketAddr)],
    backlog: i32,
) -> Result<Vec<Rc<backend::TcpListener>>, String> {
    addrs
        .iter()
        .map(|(sockaddr, addr)| {
            backend::TcpListener::bind(*addr, backlog, true)
                .map(Rc::new)
                .map_err(|e| cannot_listen(sockaddr, &e))
        })
        .collect()
}

/// A core's TCP listeners, and what stops their accept tasks (dropped: see
/// `close_tcp`).
type Accepting = (Vec<Rc<backend::TcpListener>>, Option<flume::Sender<()>>);

thread_local! {
    static TCP: RefCell<Accepting> = const { RefCell::new((Vec::new(), None)) };
}

/// Accept on `listeners` from now on, in place of this core's TCP listeners, if any.
fn accept_tcp(shards: &Rc<Shards>, listeners: Vec<Rc<backend::TcpListener>>) {
    close_tcp();
    let (stop_tx, stop) = flume::bounded::<()>(0);
    for l in &listeners {
        let l = Listener::Shared(l.clone());
        backend::spawn(accept_on(shards.clone(), l, Some(stop.clone()))).detach();
    }
    TCP.with(|t| *t.borrow_mut() = (listeners, Some(stop_tx)));
}

/// Stop this core's TCP listeners: the port is free when this returns; their accept
/// tasks end at their next turn.
fn close_tcp() {
    let (listeners, stop) = TCP.with(|t| std::mem::take(&mut *t.borrow_mut()));
    for l in &listeners {
        l.stop();
    }
    drop(stop);
}

/// Accept connections on `l` and serve each on this core, until `stop` (if any)
/// disconnects.
async fn accept_on(shards: Rc<Shards>, l: Listener, stop: Option<flume::Receiver<()>>) {
    loop {
        let accepted = async { Some(l.accept().await) };
        let stopped = async {
            match &stop {
                Some(stop) => {
                    let _ = stop.recv_async().await;
                }
                None => std::future::pending().await,
            }
            None
        };
        let Some(accepted) = futures_lite::future::or(stopped, accepted).await else {
            return;
        };
        match accepted {
            Ok(stream) => {
                crate::runtime::backend::spawn(connection::serve(stream, shards.clone())).detach();
            }
            // A shutdown closes the listeners under a pending accept.
            Err(_) if shards.server.shutting_down.load(Ordering::Acquire) => return,
            // So does CONFIG SET port / bind (`close_tcp`), just before `stop` ends.
            Err(_) if stop.as_ref().is_some_and(|s| s.is_disconnected()) => return,
            Err(e) => {
                // (Verbose, as Redis's: out of descriptors it comes every try.)
                crate::log::verbose(&format!(
                    "Accepting client connection: {}",
                    crate::log::strerror(&e)
                ));
                crate::runtime::backend::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// CONFIG SET port / bind: listen where `new` says instead of where `old` did, on
/// every core, as Redis's `changeListenPort` / `changeBindAddr` (connections stay).
/// The old listeners are closed first (the new addresses may include them); if the new
/// ones cannot all be bound, the old ones are bound again and the error (logged, as
/// Redis's) is returned. Port 0 leaves TCP closed.
pub async fn rebind(
    shards: &Shards,
    old: &crate::config::Config,
    new: &crate::config::Config,
) -> Result<(), String> {
    shards.all(|_| close_tcp()).await;
    let backlog = listen_backlog(new);
    let opened = match addresses(new, false) {
        Ok(addrs) => open_everywhere(shards, addrs, backlog).await,
        Err(e) => Err(e),
    };
    let Err(why) = opened else {
        return Ok(());
    };
    crate::log::warning(&why);
    if let Ok(addrs) = addresses(old, true) {
        if let Err(e) = open_everywhere(shards, addrs, listen_backlog(old)).await {
            crate::log::warning(&e);
        }
    }
    Err(why)
}

/// Bind `addrs` on every core and accept there; the first core's error, if any (the
/// cores that bound keep their listeners until the next `close_tcp`).
async fn open_everywhere(
    shards: &Shards,
    addrs: Vec<(String, SocketAddr)>,
    backlog: i32,
) -> Result<(), String> {
    let addrs = Arc::new(addrs);
    let opened = shards
        .all(move |_| {
            let listeners = bind_here(&addrs, backlog)?;
            match connection::core_shards() {
                Some(shards) => {
                    accept_tcp(&shards, listeners);
                    Ok(())
                }
                None => Err("no shard on this core".to_string()),
            }
        })
        .await;
    let failed = opened.into_iter().find_map(Result::err);
    if failed.is_some() {
        shards.all(|_| close_tcp()).await;
    }
    failed.map_or(Ok(()), Err)
}

/// Wait until every core listens for clients.
pub async fn all_listening(shards: &Shards) {
    while shards.server.listening.load(Ordering::Acquire) < shards.count() {
        backend::sleep(Duration::from_millis(1)).await;
    }
}
