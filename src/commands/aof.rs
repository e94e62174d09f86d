//! AOF commands (Redis's `aof.c`): BGREWRITEAOF. The work is in
//! `persistence::aof::rewrite`; this only answers.

use super::{Command, Exec, LocalBoxFuture};
use crate::client::ClientRef;
use crate::persistence::aof;
use crate::protocol::Reply;
use crate::runtime::Shards;
use bytes::Bytes;

pub static COMMANDS: &[Command] = &[Command::new(
    "bgrewriteaof",
    1,
    "admin noscript no_async_loading",
    "admin slow dangerous",
    Exec::Server(bgrewriteaof),
)];

fn bgrewriteaof<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { aof::bgrewriteaof(s) })
}
