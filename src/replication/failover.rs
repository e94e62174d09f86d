//! FAILOVER (Redis 6.2+): a master hands its role to one of its replicas without losing
//! a write.
//!
//! As Redis's `failoverCommand` / `updateFailoverStatus`: FAILOVER pauses writes on
//! every core (CLIENT PAUSE WRITE), then a task watches the replicas' acknowledged
//! offsets until the target (the one named by TO, or any) has acknowledged everything
//! (`waiting-for-sync`). Then this server becomes a replica of the target and its link
//! opens with `PSYNC <replid> <offset> FAILOVER`, which tells the target to promote
//! itself first (`replica::promote`) and then answer as the new master, normally with
//! `+CONTINUE` since the two share the history (`failover-in-progress`). Writes resume
//! when the target answers. A TIMEOUT ends the wait: with FORCE the failover goes on
//! anyway, without it the failover is aborted; FAILOVER ABORT ends it by hand.
//!
//! Not like Redis: the pause is CLIENT PAUSE's own state, so FAILOVER's end also ends a
//! CLIENT PAUSE WRITE given meanwhile (Redis keeps the two apart).

use super::stream::ReaderState;
use super::Role;
use crate::commands::{args, errors};
use crate::log::log;
use crate::protocol::Reply;
use crate::runtime::{backend, pause, Shards};
use bytes::Bytes;
use std::time::Duration;

/// A failover in progress (in the stream's lock).
#[derive(Clone, Debug)]
pub struct Failover {
    pub target: Option<(String, u16)>,
    /// Unix ms at which the wait for the target ends (TIMEOUT), if any.
    pub deadline_ms: Option<u64>,
    pub force: bool,
    pub state: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Phase {
    WaitForSync,
    InProgress,
}

/// INFO's `master_failover_state`.
pub fn state_name(f: &Option<Failover>) -> &'static str {
    match f.as_ref().map(|f| f.state) {
        None => "no-failover",
        Some(Phase::WaitForSync) => "waiting-for-sync",
        Some(Phase::InProgress) => "failover-in-progress",
    }
}

/// FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms].
pub async fn failover(shards: &Shards, argv: &[Bytes]) -> Reply {
    let st = super::of(&shards.server);
    if argv.len() == 2 && argv[1].eq_ignore_ascii_case(b"abort") {
        if st.lock().failover.is_none() {
            return Reply::err("ERR No failover in progress.");
        }
        abort(shards, "Failover manually aborted").await;
        return Reply::ok();
    }
    let (mut timeout, mut force, mut target) = (0i64, false, None);
    let mut j = 1;
    while j < argv.len() {
        let a = &argv[j];
        if a.eq_ignore_ascii_case(b"timeout") && j + 1 < argv.len() && timeout == 0 {
            timeout = match args::int(&argv[j + 1]) {
                Ok(t) => t,
                Err(_) => return Reply::err(errors::NOT_INTEGER),
            };
            if timeout <= 0 {
                return Reply::err("ERR FAILOVER timeout must be greater than 0");
            }
            j += 2;
        } else if a.eq_ignore_ascii_case(b"to") && j + 2 < argv.len() && target.is_none() {
            let port = match args::int(&argv[j + 2]) {
                Ok(p) => p,
                Err(_) => return Reply::err(errors::NOT_INTEGER),
            };
            target = Some((String::from_utf8_lossy(&argv[j + 1]).into_owned(), port));
            j += 3;
        } else if a.eq_ignore_ascii_case(b"force") && !force {
            force = true;
            j += 1;
        } else {
            return errors::syntax();
        }
    }
    {
        let mut s = st.lock();
        if s.failover.is_some() {
            return Reply::err("ERR FAILOVER already in progress.");
        }
        if s.role != Role::Master {
            return Reply::err("ERR FAILOVER is not valid when server is a replica.");
        }
        if s.readers.iter().all(|r| r.rdb_only) {
            return Reply::err("ERR FAILOVER requires connected replicas.");
        }
        if force && (timeout == 0 || target.is_none()) {
            return Reply::err(
                "ERR FAILOVER with force option requires both a timeout and target HOST and IP.",
            );
        }
        let target = match target {
            Some((host, port)) => {
                let Some(r) = s
                    .readers
                    .iter()
                    .find(|r| r.ip.eq_ignore_ascii_case(&host) && i64::from(r.port) == port)
                else {
                    return Reply::err("ERR FAILOVER target HOST and PORT is not a replica.");
                };
                if r.state != ReaderState::Online {
                    return Reply::err("ERR FAILOVER target replica is not online.");
                }
                log(&format!("FAILOVER requested to {host}:{port}."));
                Some((host, port as u16))
            }
            None => {
                log("FAILOVER requested to any replica.");
                None
            }
        };
        s.failover = Some(Failover {
            target,
            deadline_ms: (timeout > 0).then(|| crate::clock::now_ms() + timeout as u64),
            force,
            state: Phase::WaitForSync,
        });
    }
    pause::pause(shards, pause::Kind::Write, i64::MAX).await;
    let shards = shards.detached();
    backend::spawn(async move { watch(shards).await }).detach();
    Reply::ok()
}

/// Wait for the target to acknowledge everything (or the timeout), then fail over.
async fn watch(shards: std::rc::Rc<Shards>) {
    let st = super::of(&shards.server);
    loop {
        backend::sleep(Duration::from_millis(20)).await;
        let go = {
            let mut s = st.lock();
            let end = s.end;
            let Some(f) = s.failover.clone() else {
                return;
            };
            if f.state != Phase::WaitForSync {
                return;
            }
            let late = f.deadline_ms.is_some_and(|d| crate::clock::now_ms() >= d);
            let caught_up =
                |r: &super::stream::Reader| r.state == ReaderState::Online && r.ack == end;
            let ready = match &f.target {
                Some((host, port)) => s
                    .readers
                    .iter()
                    .any(|r| r.ip == *host && r.port == *port && caught_up(r))
                    .then(|| (host.clone(), *port)),
                None => s
                    .readers
                    .iter()
                    .find(|r| !r.rdb_only && caught_up(r))
                    .map(|r| (r.ip.clone(), r.port)),
            };
            match (ready, late, f.force, f.target) {
                (Some(t), _, _, _) => {
                    log(&format!(
                        "Failover target {}:{} is synced, failing over.",
                        t.0, t.1
                    ));
                    Some(t)
                }
                (None, true, true, Some(t)) => {
                    log(&format!(
                        "FAILOVER to {}:{} time out exceeded, failing over.",
                        t.0, t.1
                    ));
                    Some(t)
                }
                (None, true, _, _) => None,
                (None, false, _, _) => continue,
            }
            .inspect(|t| {
                if let Some(f) = s.failover.as_mut() {
                    f.state = Phase::InProgress;
                    f.target = Some(t.clone());
                }
            })
        };
        match go {
            Some((host, port)) => {
                super::replica::start(&shards, host, port).await;
                return;
            }
            None => {
                abort(&shards, "Replica never caught up before timeout").await;
                return;
            }
        }
    }
}

/// The new master answered our PSYNC FAILOVER: the failover is done, writes resume.
pub async fn done(shards: &Shards) {
    let st = super::of(&shards.server);
    if st.lock().failover.take().is_some() {
        pause::unpause(shards).await;
    }
}

/// End the failover: back to master if we had become a replica, writes resume.
pub async fn abort(shards: &Shards, why: &str) {
    let st = super::of(&shards.server);
    let Some(f) = st.lock().failover.take() else {
        return;
    };
    match &f.target {
        Some((h, p)) => log(&format!("FAILOVER to {h}:{p} aborted: {why}")),
        None => log(&format!("FAILOVER to any replica aborted: {why}")),
    }
    if f.state == Phase::InProgress {
        super::replica::promote(shards).await;
    }
    pause::unpause(shards).await;
}
