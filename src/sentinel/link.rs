//! The connections a Sentinel keeps to the instances it watches.
//!
//! A link is a task that owns one socket and the receiving end of a queue; the
//! instance holds the sending end ([`Conn`]). Steps queue commands with the rule that
//! will read the reply ([`Then`]); the task writes them in order, reads the replies in
//! the same order and hands each, with its rule, to `monitor` under the state lock.
//! A Pub/Sub link has no rules: everything it reads is offered to the hello handler.
//! The task ends when its instance drops the [`Conn`] (a reset, a changed address, a
//! link judged dead) or when the socket fails; in the second case it tells the
//! instance, which reconnects on a later tick. Every link has an id, so news from a
//! link the instance has since replaced is ignored.

use super::monitor;
use crate::protocol::response::parse_response;
use crate::protocol::Reply;
use crate::runtime::{backend, Shards};
use bytes::Bytes;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

/// What to do with a command's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    Discard,
    Ping,
    Info,
    Publish,
    IsMasterDown,
}

/// Which instance a link belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    Master,
    /// By `ip:port`.
    Replica(String),
    /// By run id.
    Sentinel(String),
}

#[derive(Clone, Debug)]
pub struct Target {
    pub master: String,
    pub who: Who,
}

struct Out {
    argv: Vec<Bytes>,
    then: Then,
}

/// The instance's end of a link.
pub struct Conn {
    pub id: u64,
    tx: flume::Sender<Out>,
}

impl Conn {
    /// Queue a command; false if the link is gone.
    pub fn send(&self, argv: Vec<Bytes>, then: Then) -> bool {
        self.tx.send(Out { argv, then }).is_ok()
    }
}

/// A link to open (carried out by `sentinel::with` once the lock is released).
pub struct Connect {
    pub target: Target,
    pub id: u64,
    pub addr: String,
    pub pubsub: bool,
    rx: flume::Receiver<Out>,
}

/// Make the two ends of a new link: the [`Conn`] for the instance, the [`Connect`] to
/// spawn.
pub fn new(target: Target, id: u64, addr: String, pubsub: bool) -> (Conn, Connect) {
    let (tx, rx) = flume::unbounded();
    (
        Conn { id, tx },
        Connect {
            target,
            id,
            addr,
            pubsub,
            rx,
        },
    )
}

/// Build a command's argv.
pub fn argv(words: &[&str]) -> Vec<Bytes> {
    words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

/// Start the link's task on this core.
pub fn spawn(shards: Rc<Shards>, c: Connect) {
    backend::spawn(async move {
        let target = c.target.clone();
        let (id, pubsub) = (c.id, c.pubsub);
        let why = run(&shards, c).await;
        super::with(&shards, |st| {
            monitor::link_closed(st, &target, id, pubsub, why)
        });
    })
    .detach();
}

/// The largest reply a link buffers (an INFO is a few KiB): an instance sending
/// more is not a Redis server, and its link is closed.
const MAX_REPLY: usize = 64 << 20;

/// Why a link ended: `None` when the instance dropped it (nothing to report).
type Ended = Option<String>;

async fn run(shards: &Rc<Shards>, c: Connect) -> Ended {
    let mut stream = match backend::connect(c.addr.clone(), Duration::from_secs(10)).await {
        Ok(s) => s,
        Err(e) => return Some(e.to_string()),
    };
    let _ = stream.set_nodelay(true);
    let local_ip = stream.local_addr().ok().map(|a| a.ip().to_string());
    if super::with(shards, |st| {
        monitor::link_up(st, &c.target, c.id, c.pubsub, local_ip)
    }) != Some(true)
    {
        return None;
    }
    let mut pending: VecDeque<Then> = VecDeque::new();
    let mut rbuf: Vec<u8> = Vec::new();
    let mut wbuf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // Write everything queued so far.
        loop {
            match c.rx.try_recv() {
                Ok(out) => {
                    encode(&out.argv, &mut wbuf);
                    if !c.pubsub {
                        pending.push_back(out.then);
                    }
                }
                Err(flume::TryRecvError::Empty) => break,
                Err(flume::TryRecvError::Disconnected) => return None,
            }
        }
        if !wbuf.is_empty() {
            if let Err(e) = stream.write_all(&wbuf).await {
                return Some(e.to_string());
            }
            wbuf.clear();
        }
        // Wait for a reply or for more to send.
        let read = std::future::poll_fn(|cx| stream.poll_read(cx, &mut chunk));
        let more = async {
            match c.rx.recv_async().await {
                Ok(out) => Err(out),
                Err(_) => Ok(None),
            }
        };
        let n = match futures_lite::future::or(async { Ok(Some(read.await)) }, more).await {
            Ok(Some(Ok(0))) => return Some("connection closed by the instance".into()),
            Ok(Some(Ok(n))) => n,
            Ok(Some(Err(e))) => return Some(e.to_string()),
            Ok(None) => return None,
            Err(out) => {
                encode(&out.argv, &mut wbuf);
                if !c.pubsub {
                    pending.push_back(out.then);
                }
                continue;
            }
        };
        rbuf.extend_from_slice(&chunk[..n]);
        if rbuf.len() > MAX_REPLY {
            return Some("reply larger than a Sentinel reads".into());
        }
        let mut replies = Vec::new();
        let mut used = 0;
        loop {
            match parse_response(&rbuf[used..]) {
                Ok(Some((reply, len))) => {
                    used += len;
                    replies.push(reply);
                }
                Ok(None) => break,
                Err(e) => return Some(format!("protocol error: {e}")),
            }
        }
        rbuf.drain(..used);
        if replies.is_empty() {
            continue;
        }
        let mut handled = Vec::with_capacity(replies.len());
        for reply in replies {
            let then = if c.pubsub {
                None
            } else {
                Some(pending.pop_front().unwrap_or(Then::Discard))
            };
            handled.push((then, reply));
        }
        let alive = super::with(shards, |st| {
            handled
                .into_iter()
                .all(|(then, reply)| monitor::on_reply(st, &c.target, c.id, then, reply))
        });
        if alive != Some(true) {
            return None;
        }
    }
}

/// A command as a RESP array of bulk strings.
fn encode(argv: &[Bytes], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", argv.len()).as_bytes());
    for a in argv {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// The text of a status, error or bulk reply.
pub fn text(r: &Reply) -> Option<String> {
    match r {
        Reply::Status(s) | Reply::Error(s) => Some(s.to_string()),
        Reply::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}
