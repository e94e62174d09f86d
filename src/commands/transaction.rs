//! Transaction commands (Redis's `multi.c`): MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! MULTI only marks the client; while it is set, the dispatcher queues every command
//! (answering +QUEUED) except these and QUIT / RESET, and a command it has to refuse
//! dooms the transaction. EXEC hands the queue to the scheduler
//! (`runtime::transaction::exec`), which runs it as one operation over all the shards
//! its commands and watched keys live on. WATCH registers keys on their own shards.

use super::{errors, traits, Command, Exec, LocalBoxFuture};
use crate::client::{Client, ClientRef};
use crate::protocol::Reply;
use crate::runtime::transaction;
use crate::runtime::Shards;
use bytes::Bytes;

const FLAGS: &str = "noscript loading stale fast allow_busy";
const ACL: &str = "fast transaction";

pub static COMMANDS: &[Command] = &[
    Command::new("multi", 1, FLAGS, ACL, Exec::Conn(multi)).traits(traits::RUNS_IN_MULTI),
    Command::new(
        "exec",
        1,
        "noscript loading stale skip_slowlog",
        "slow transaction",
        Exec::Server(exec),
    )
    .traits(traits::RUNS_IN_MULTI | traits::ENDS_MULTI),
    Command::new("discard", 1, FLAGS, ACL, Exec::Server(discard)).traits(traits::RUNS_IN_MULTI),
    Command::new("watch", -2, FLAGS, ACL, Exec::Server(watch))
        .keys(1, -1, 1)
        .traits(traits::RUNS_IN_MULTI),
    Command::new("unwatch", 1, FLAGS, ACL, Exec::Server(unwatch)),
];

fn multi(c: &mut Client, _argv: &[Bytes]) -> Reply {
    if c.multi.is_some() {
        return Reply::err(errors::MULTI_NESTED);
    }
    c.multi = Some(Vec::new());
    c.multi_aborted = false;
    Reply::ok()
}

fn exec<'a>(c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let (queued, aborted) = {
            let mut cl = c.borrow_mut();
            let Some(q) = cl.multi.take() else {
                return Reply::err(errors::EXEC_WITHOUT_MULTI);
            };
            (q, std::mem::take(&mut cl.multi_aborted))
        };
        if aborted {
            transaction::unwatch_all(c, s);
            return Reply::err(errors::EXECABORT);
        }
        c.borrow_mut().deny_blocking = true;
        let reply = transaction::exec(c, s, queued).await;
        c.borrow_mut().deny_blocking = false;
        reply
    })
}

fn discard<'a>(c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        {
            let mut cl = c.borrow_mut();
            if cl.multi.take().is_none() {
                return Reply::err(errors::DISCARD_WITHOUT_MULTI);
            }
            cl.multi_aborted = false;
        }
        transaction::unwatch_all(c, s);
        Reply::ok()
    })
}

fn watch<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        if c.borrow().multi.is_some() {
            return Reply::err(errors::WATCH_INSIDE_MULTI);
        }
        transaction::watch(c, s, &argv[1..]).await;
        Reply::ok()
    })
}

fn unwatch<'a>(c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        transaction::unwatch_all(c, s);
        Reply::ok()
    })
}
