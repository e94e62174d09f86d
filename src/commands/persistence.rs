//! Snapshot commands (Redis's `rdb.c`): SAVE, BGSAVE, LASTSAVE. The work is in
//! `persistence::save`; these only parse arguments.

use super::{args, errors, Command, Exec, LocalBoxFuture};
use crate::client::ClientRef;
use crate::persistence::save;
use crate::protocol::Reply;
use crate::runtime::Shards;
use bytes::Bytes;
use std::sync::atomic::Ordering;

pub static COMMANDS: &[Command] = &[
    Command::new(
        "save",
        1,
        "admin noscript no_async_loading no_multi",
        "admin slow dangerous",
        Exec::Server(save_cmd),
    ),
    Command::new(
        "bgsave",
        -1,
        "admin noscript no_async_loading",
        "admin slow dangerous",
        Exec::Server(bgsave),
    ),
    Command::new(
        "lastsave",
        1,
        "loading stale fast",
        "admin fast dangerous",
        Exec::Server(lastsave),
    ),
];

fn save_cmd<'a>(_c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(save::save(s))
}

fn bgsave<'a>(_c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let schedule = match argv.len() {
            1 => false,
            2 if args::eq(&argv[1], "schedule") => true,
            _ => return errors::syntax(),
        };
        save::bgsave(s, schedule).await
    })
}

fn lastsave<'a>(_c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        Reply::Int(
            crate::persistence::of(&s.server)
                .save
                .last_save_s
                .load(Ordering::Relaxed) as i64,
        )
    })
}
