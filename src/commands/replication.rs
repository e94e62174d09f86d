//! Replication commands (Redis's `replication.c`): PSYNC, SYNC, REPLCONF, REPLICAOF /
//! SLAVEOF, ROLE, WAIT, FAILOVER.
//!
//! Thin: each parses its arguments and calls `crate::replication`, whose module doc
//! has the plan (the stream, full and partial syncs, the replica's link).

use super::{args, errors, Command, Exec, LocalBoxFuture};
use crate::client::ClientRef;
use crate::protocol::Reply;
use crate::replication::{failover, master, replica};
use crate::runtime::Shards;
use bytes::Bytes;

const ADMIN: &str = "admin slow dangerous";

pub static COMMANDS: &[Command] = &[
    Command::new(
        "psync",
        -3,
        "admin noscript no_async_loading no_multi",
        ADMIN,
        Exec::Server(psync),
    ),
    Command::new(
        "sync",
        1,
        "admin noscript no_async_loading no_multi",
        ADMIN,
        Exec::Server(sync),
    ),
    Command::new(
        "replconf",
        -1,
        "admin noscript loading stale allow_busy",
        ADMIN,
        Exec::Server(replconf),
    ),
    Command::new(
        "replicaof",
        3,
        "admin noscript stale no_async_loading",
        ADMIN,
        Exec::Server(replicaof),
    ),
    Command::new(
        "slaveof",
        3,
        "admin noscript stale no_async_loading",
        ADMIN,
        Exec::Server(replicaof),
    ),
    Command::new(
        "role",
        1,
        "noscript loading stale fast",
        "admin fast dangerous",
        Exec::Server(role),
    ),
    Command::new("wait", 3, "noscript", "slow connection", Exec::Server(wait)),
    Command::new(
        "failover",
        -1,
        "admin noscript stale",
        ADMIN,
        Exec::Server(failover),
    ),
];

fn failover<'a>(_c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { failover::failover(s, argv).await })
}

fn psync<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { master::psync(c, s, argv, true).await })
}

fn sync<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { master::psync(c, s, argv, false).await })
}

fn replconf<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { master::replconf(c, s, argv) })
}

fn replicaof<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { replica::replicaof(c, s, argv).await })
}

fn role<'a>(_c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { replica::role(s) })
}

/// WAIT numreplicas timeout.
fn wait<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let n = match args::int(&argv[1]) {
            Ok(n) => n,
            Err(_) => return Reply::err(errors::NOT_INTEGER),
        };
        let timeout = match args::int(&argv[2]) {
            Ok(t) if t >= 0 => t,
            Ok(_) => return Reply::err("ERR timeout is negative"),
            Err(_) => return Reply::err("ERR timeout is not an integer or out of range"),
        };
        if c.borrow().repl.is_master {
            return Reply::NoReply;
        }
        master::wait(s, c, n, timeout).await
    })
}
