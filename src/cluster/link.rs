//! Cluster bus connections: the listener on the bus port and one task per link.
//!
//! Each node we know has an outbound link (we connect to its bus port, send PING or
//! MEET, read PONGs); other nodes' links to us are inbound (we read their PINGs and
//! MEETs and answer on the same link). A link task owns its socket: it writes what is
//! queued for it ([`Conn`]) and frames what it reads by the `totlen` each message
//! starts with, handing whole messages to `gossip::process` under the state lock.
//! A malformed message closes that link only.

use super::bus;
use super::gossip;
use crate::runtime::{backend, Shards};
use std::rc::Rc;
use std::time::Duration;

/// Our end of an outbound link: queue a message on it.
pub struct Conn {
    pub id: u64,
    tx: flume::Sender<Vec<u8>>,
}

impl Conn {
    pub fn send(&self, msg: Vec<u8>) {
        let _ = self.tx.send(msg);
    }
}

/// Which link a message came on.
#[derive(Clone, Debug)]
pub struct LinkInfo {
    pub id: u64,
    pub inbound: bool,
    /// Our address on this connection (what MEET teaches us of our own IP).
    pub local_ip: String,
    /// The other end's address.
    pub peer_ip: String,
}

/// An outbound link to open once the lock is released.
pub struct Connect {
    pub id: u64,
    pub addr: String,
    rx: flume::Receiver<Vec<u8>>,
}

pub fn new_outbound(id: u64, addr: String) -> (Conn, Connect) {
    let (tx, rx) = flume::unbounded();
    (Conn { id, tx }, Connect { id, addr, rx })
}

/// Listen on the bus port of every bound address; each connection becomes an inbound
/// link.
pub fn listen(shards: Rc<Shards>, addrs: Vec<std::net::SocketAddr>) -> Result<(), String> {
    for addr in addrs {
        // One core listens on the bus port, alone (a second node on it must fail).
        let listener = backend::retry_in_use(|| backend::TcpListener::bind(addr, 511, false))
            .map_err(|e| format!("Could not bind the cluster bus on {addr}: {e}"))?;
        let shards = shards.clone();
        backend::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok(stream) => {
                        let id = super::next_link_id();
                        let (_tx, rx) = flume::unbounded();
                        let shards = shards.clone();
                        backend::spawn(async move {
                            run(&shards, stream, id, true, rx).await;
                        })
                        .detach();
                    }
                    Err(_) => backend::sleep(Duration::from_millis(100)).await,
                }
            }
        })
        .detach();
    }
    Ok(())
}

/// Start an outbound link.
pub fn spawn(shards: Rc<Shards>, c: Connect) {
    backend::spawn(async move {
        let stream = backend::connect(c.addr.clone(), Duration::from_secs(5)).await;
        match stream {
            Ok(s) => run(&shards, s, c.id, false, c.rx).await,
            Err(_) => {
                super::with(&shards, |st| gossip::link_closed(st, c.id));
            }
        }
    })
    .detach();
}

async fn run(
    shards: &Shards,
    mut stream: backend::TcpStream,
    id: u64,
    inbound: bool,
    rx: flume::Receiver<Vec<u8>>,
) {
    let _ = stream.set_nodelay(true);
    let info = LinkInfo {
        id,
        inbound,
        local_ip: stream
            .local_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
        peer_ip: stream
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
    };
    let mut rbuf: Vec<u8> = Vec::new();
    let mut wbuf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let ended = loop {
        while let Ok(m) = rx.try_recv() {
            wbuf.extend_from_slice(&m);
        }
        if !wbuf.is_empty() {
            if stream.write_all(&wbuf).await.is_err() {
                break true;
            }
            super::count_sent(&wbuf);
            wbuf.clear();
        }
        let read = std::future::poll_fn(|cx| stream.poll_read(cx, &mut chunk));
        let more = async {
            match rx.recv_async().await {
                Ok(m) => Err(m),
                // Inbound links have no sender: their queue is never used.
                Err(_) if inbound => std::future::pending().await,
                Err(_) => Ok(None),
            }
        };
        let n = match futures_lite::future::or(async { Ok(Some(read.await)) }, more).await {
            Ok(Some(Ok(n))) if n > 0 => n,
            Ok(Some(_)) => break true,
            Ok(None) => break false,
            Err(m) => {
                wbuf.extend_from_slice(&m);
                continue;
            }
        };
        rbuf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        let mut messages = Vec::new();
        let mut bad = false;
        while let Some(len) = bus::claimed_len(&rbuf[used..]) {
            // A RESP client on the bus port, or garbage: not cluster traffic.
            if &rbuf[used..used + 4] != bus::SIG || !(16..=bus::MAX_LEN).contains(&len) {
                bad = true;
                break;
            }
            if rbuf.len() - used < len {
                break;
            }
            match bus::decode(&rbuf[used..used + len]) {
                Ok(m) => messages.push(m),
                Err(e) => {
                    crate::log::warning(&format!("Cluster bus: {e}; closing the link"));
                    bad = true;
                    break;
                }
            }
            used += len;
        }
        rbuf.drain(..used);
        if !messages.is_empty() {
            let replies = super::with(shards, |st| {
                let mut out = Vec::new();
                for m in messages {
                    out.extend(gossip::process(st, &info, m)?);
                }
                Ok::<_, gossip::CloseLink>(out)
            });
            match replies {
                Some(Ok(r)) => {
                    for m in r {
                        wbuf.extend_from_slice(&m);
                    }
                }
                // The link was dropped (its node forgotten or renamed away).
                _ => break false,
            }
        }
        if bad {
            break true;
        }
    };
    if ended && !inbound {
        super::with(shards, |st| gossip::link_closed(st, id));
    }
}
