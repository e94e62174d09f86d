//! Stopping the server: SHUTDOWN, SIGTERM and SIGINT.
//!
//! # What Redis 7.0 does
//! (`prepareForShutdown`, `isReadyToShutdown`, `finishShutdown`, `abortShutdown` in
//! server.c; `shutdownCommand` in db.c.)
//! - Flags: SAVE / NOSAVE (save the RDB even without save points / never), NOW (do not
//!   wait for replicas), FORCE (errors writing the RDB or the AOF do not stop the
//!   exit). SIGTERM and SIGINT take theirs from `shutdown-on-sigterm` /
//!   `shutdown-on-sigint` (`default` or any of `save nosave now force`).
//! - Unless NOW, or `shutdown-timeout` is 0, or every replica has acknowledged the
//!   whole stream already, the server first waits for its replicas, so that a planned
//!   stop loses nothing they were sent: it asks them for their offsets (`REPLCONF
//!   GETACK *`, unless clients are paused), pauses writes (as CLIENT PAUSE WRITE), logs
//!   "Waiting for replicas before shutting down." and blocks the SHUTDOWN client; the
//!   cron finishes the shutdown once every replica has acknowledged, or when
//!   `shutdown-timeout` seconds have passed. INFO server shows
//!   `shutdown_in_milliseconds` meanwhile.
//! - Finishing logs each replica still behind ("Lagging replica ip:port reported offset
//!   N behind master, lag=S, state=online.") and "K of M replicas are in sync when
//!   shutting down.", then flushes the AOF, saves the RDB when asked to, and exits. If
//!   the save fails (without FORCE), the shutdown is cancelled: writes are unpaused,
//!   every client blocked in SHUTDOWN gets "ERR Errors trying to SHUTDOWN. Check logs."
//!   and the server goes on.
//! - SHUTDOWN ABORT cancels a shutdown that waits for replicas the same way ("Shutdown
//!   manually aborted.", OK); with none in progress it answers "ERR No shutdown in
//!   progress.". A SHUTDOWN sent while one waits joins it. A second SIGINT exits at
//!   once with status 1 ("You insist... exiting now."). A client that may not block
//!   (inside MULTI or a script) may only use SHUTDOWN NOW or ABORT.
//!
//! # Here
//! The shutdown runs on the task that started it (the SHUTDOWN client's, or core 0's
//! signal task); the wait polls the replicas' acknowledgements on each ACK and every
//! 100 ms (Redis's cron period at hz 10). The state other cores must see (a shutdown is
//! waiting, until when, and whether it was cancelled) is atomics in [`State`], so
//! SHUTDOWN ABORT and INFO work from any core. The write pause is CLIENT PAUSE's own
//! state, as FAILOVER's is: ending the shutdown's wait also ends a CLIENT PAUSE WRITE
//! that a client set meanwhile (Redis keeps one pause per purpose).
//!
//! Not like Redis: a replica counts as in sync once it acknowledged every write (the
//! replication stream's data); Redis compares with the whole stream, so it also
//! waits for the acknowledgement of its own GETACK and PINGs, which a replica sends
//! with its next once-a-second ACK. Nothing a client wrote is treated differently.

use crate::commands::errors;
use crate::log::{log, warning};
use crate::runtime::{backend, pause, Shards};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How a shutdown was asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// SAVE (`Some(true)`), NOSAVE (`Some(false)`), or by the save points (`None`).
    pub save: Option<bool>,
    /// NOW: do not wait for replicas.
    pub now: bool,
    /// FORCE: exit even if the RDB or the AOF cannot be written.
    pub force: bool,
}

impl Flags {
    /// The flags of `shutdown-on-sigterm` / `shutdown-on-sigint`'s value (`default`, or
    /// words among `save nosave now force`).
    pub fn from_config(value: &str) -> Flags {
        let mut f = Flags::default();
        for word in value.split_whitespace() {
            match word.to_ascii_lowercase().as_str() {
                "save" => f.save = Some(true),
                "nosave" => f.save = Some(false),
                "now" => f.now = true,
                "force" => f.force = true,
                _ => {}
            }
        }
        f
    }
}

/// The process-wide shutdown state (in `Persistence`).
#[derive(Default)]
pub struct State {
    /// While a shutdown waits for replicas: when the wait ends (unix ms). 0: none.
    deadline_ms: AtomicU64,
    /// Bumped when a waiting shutdown is cancelled: SHUTDOWN ABORT, or a failed save.
    cancellations: AtomicU64,
}

impl State {
    /// Milliseconds left of the wait for replicas, while a shutdown waits
    /// (INFO server `shutdown_in_milliseconds`).
    pub fn waiting_ms(&self) -> Option<i64> {
        let d = self.deadline_ms.load(Ordering::Acquire);
        (d != 0).then(|| d as i64 - crate::clock::now_ms() as i64)
    }
}

fn state(shards: &Shards) -> &State {
    &super::of(&shards.server).shutdown
}

/// How often a waiting shutdown looks at the replicas' acknowledgements and the clock
/// even when no ACK comes (Redis's cron period at hz 10).
const CHECK: Duration = Duration::from_millis(100);

/// Stop the server as `flags` say (see the module doc). Returns only if it did not
/// stop: the error for the clients that asked (the server goes on).
pub async fn shutdown(shards: &Shards, flags: Flags) -> &'static str {
    let st = state(shards);
    if st.deadline_ms.load(Ordering::Acquire) != 0 {
        return join(shards).await;
    }
    shards.server.shutting_down.store(true, Ordering::SeqCst);
    warning("User requested shutdown...");
    crate::supervise::notify("STOPPING=1\n");
    let timeout_s = shards
        .local
        .borrow()
        .config
        .get_int("shutdown-timeout")
        .max(0) as u64;
    let server = &shards.server;
    let wait = !flags.now && timeout_s != 0 && !crate::replication::master::all_acked(server);
    if wait {
        let deadline = crate::clock::now_ms() + timeout_s * 1000;
        st.deadline_ms.store(deadline, Ordering::Release);
        let cancelled = st.cancellations.load(Ordering::Acquire);
        if !server.pause.is_set() {
            crate::replication::master::request_acks(server);
        }
        pause::pause(shards, pause::Kind::Write, i64::MAX).await;
        log("Waiting for replicas before shutting down.");
        let blocked = crate::runtime::blocking::Blocked::count(shards);
        loop {
            let acked = crate::replication::master::next_ack(server);
            futures_lite::future::or(
                async {
                    let _ = acked.recv_async().await;
                },
                backend::sleep(CHECK),
            )
            .await;
            if st.cancellations.load(Ordering::Acquire) != cancelled {
                return errors::SHUTDOWN_FAILED;
            }
            if crate::clock::now_ms() >= deadline || crate::replication::master::all_acked(server) {
                break;
            }
        }
        drop(blocked);
    }
    // From here on nothing can abort it.
    st.deadline_ms.store(0, Ordering::Release);
    let e = finish(shards, flags).await;
    warning("Errors trying to shut down the server. Check the logs for more information.");
    cancel(shards, wait).await;
    e
}

/// A SHUTDOWN while another waits for replicas: wait with it; the error if it is
/// cancelled (if it finishes, the process is gone).
async fn join(shards: &Shards) -> &'static str {
    let _blocked = crate::runtime::blocking::Blocked::count(shards);
    let st = state(shards);
    let cancelled = st.cancellations.load(Ordering::Acquire);
    while st.cancellations.load(Ordering::Acquire) == cancelled {
        backend::sleep(CHECK).await;
    }
    errors::SHUTDOWN_FAILED
}

/// The last steps: report the replicas, flush the AOF, save if asked to, exit. Returns
/// the error if the save failed without FORCE.
async fn finish(shards: &Shards, flags: Flags) -> &'static str {
    let (replicas, lagging) = crate::replication::master::lagging_replicas(&shards.server);
    for line in &lagging {
        warning(line);
    }
    if replicas > 0 {
        log(&format!(
            "{} of {replicas} replicas are in sync when shutting down.",
            replicas - lagging.len()
        ));
    }
    // `appendonly` turned on and its first rewrite running: the AOF does not hold the
    // data set yet, and a restart would load it (Redis's AOF_WAIT_REWRITE).
    if super::aof::writing_initial(&super::of(&shards.server).aof) {
        if flags.force {
            warning("Writing initial AOF. Exit anyway.");
        } else {
            warning("Writing initial AOF, can't exit.");
            crate::supervise::notify("STATUS=Writing initial AOF, can't exit.\n");
            return errors::SHUTDOWN_FAILED;
        }
    }
    if let Err(e) = super::save::save_for_shutdown(shards, flags.save).await {
        if flags.force {
            warning(&format!("Error trying to save the DB. Exit anyway: {e}"));
        } else {
            warning(&format!("Error trying to save the DB, can't exit: {e}"));
            crate::supervise::notify("STATUS=Error trying to save the DB, can't exit.\n");
            return errors::SHUTDOWN_FAILED;
        }
    }
    super::aof::stop(&shards.server);
    crate::supervise::remove_pidfile();
    warning("Shardis is now ready to exit, bye bye...");
    backend::exit(0)
}

/// The shutdown did not happen: the server goes on, and the clients waiting in a
/// SHUTDOWN get their error; `unpause` if it paused writes.
async fn cancel(shards: &Shards, unpause: bool) {
    let st = state(shards);
    st.deadline_ms.store(0, Ordering::Release);
    st.cancellations.fetch_add(1, Ordering::AcqRel);
    shards.server.shutting_down.store(false, Ordering::SeqCst);
    if unpause {
        pause::unpause(shards).await;
    }
}

/// SHUTDOWN ABORT: cancel a shutdown that waits for replicas; false if none does.
pub async fn abort(shards: &Shards) -> bool {
    if state(shards).deadline_ms.load(Ordering::Acquire) == 0 {
        return false;
    }
    cancel(shards, true).await;
    log("Shutdown manually aborted.");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_flags_from_the_configuration() {
        assert_eq!(Flags::from_config("default"), Flags::default());
        assert_eq!(
            Flags::from_config("nosave now"),
            Flags {
                save: Some(false),
                now: true,
                force: false
            }
        );
        assert_eq!(
            Flags::from_config("SAVE force"),
            Flags {
                save: Some(true),
                now: false,
                force: true
            }
        );
    }
}
