//! MODULE (Redis's `module.c`, the command only).
//!
//! The one idea to hold: Shardis loads no Redis modules. They are C libraries built
//! against Redis's module API (its `RedisModule_*` functions, its object layout and
//! event loop), which Shardis does not provide. So MODULE LIST tells the truth, an
//! empty list (what client libraries and dashboards ask to find RedisJSON or
//! RediSearch), and LOAD, LOADEX and UNLOAD give Redis's refusal while
//! `enable-module-command` is `no` (Redis's default), else Redis's errors for a
//! module that does not load and for a name that is not loaded, with the reason in
//! the log.

use super::config::help_reply;
use super::{Command, Exec, LocalBoxFuture};
use crate::client::ClientRef;
use crate::protocol::Reply;
use crate::runtime::Shards;
use bytes::Bytes;

const ADMIN: &str = "admin noscript no_async_loading";
const ADMIN_ACL: &str = "admin slow dangerous";

static SUBCOMMANDS: &[Command] = &[
    Command::new(
        "module|list",
        2,
        "admin noscript",
        ADMIN_ACL,
        Exec::Server(list),
    ),
    Command::new("module|load", -3, ADMIN, ADMIN_ACL, Exec::Server(load)),
    Command::new("module|loadex", -3, ADMIN, ADMIN_ACL, Exec::Server(load)),
    Command::new("module|unload", 3, ADMIN, ADMIN_ACL, Exec::Server(unload)),
    Command::new(
        "module|help",
        2,
        "loading stale",
        "slow",
        Exec::Server(help),
    ),
];

pub static COMMANDS: &[Command] =
    &[Command::new("module", -2, "", "slow", Exec::Container).subcommands(SUBCOMMANDS)];

fn list<'a>(_c: &'a ClientRef, _s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { Reply::Array(Vec::new()) })
}

fn load<'a>(_c: &'a ClientRef, _s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        crate::log::log(&format!(
            "Module {} failed to load: Shardis does not load Redis modules",
            String::from_utf8_lossy(&argv[2])
        ));
        Reply::err("ERR Error loading the extension. Please check the server logs.")
    })
}

fn unload<'a>(_c: &'a ClientRef, _s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { Reply::err("ERR Error unloading module: no such module with that name") })
}

fn help<'a>(_c: &'a ClientRef, _s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        help_reply(
            "MODULE",
            &[
                "LIST",
                "    Return a list of loaded modules.",
                "LOAD <path> [<arg> ...]",
                "    Load a module library from <path>, passing to it any optional arguments.",
                "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
                "    Load a module library from <path>, while passing it module configurations and optional arguments.",
                "UNLOAD <name>",
                "    Unload a module.",
            ],
        )
    })
}
