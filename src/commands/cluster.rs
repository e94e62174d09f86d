//! Cluster commands (Redis's `cluster.c`): CLUSTER and its subcommands, READONLY,
//! READWRITE and ASKING.
//!
//! Shardis is a standalone server (its shards are cores of one node, not cluster
//! nodes), so these answer as a redis-server started without `cluster-enabled yes`:
//! every one with `-ERR This instance has cluster support disabled`. They still have
//! their table entries, with Redis 7.0's arity, flags and ACL categories, so that
//! arity and unknown-subcommand errors and COMMAND INFO / DOCS are Redis's, and a
//! client library probing for cluster mode reads the answer it expects.

use super::{errors, Command, Exec};
use crate::client::Client;
use crate::protocol::Reply;
use bytes::Bytes;

pub static COMMANDS: &[Command] = &[
    Command::new("cluster", -2, "", "slow", Exec::Container).subcommands(CLUSTER),
    Command::new(
        "readonly",
        1,
        "loading stale fast",
        "fast connection",
        Exec::Conn(disabled),
    ),
    Command::new(
        "readwrite",
        1,
        "loading stale fast",
        "fast connection",
        Exec::Conn(disabled),
    ),
    Command::new("asking", 1, "fast", "fast connection", Exec::Conn(disabled)),
];

/// Flags and ACL categories shared by most subcommands, as Redis 7.0 lists them.
const ADMIN: &str = "admin stale no_async_loading";
const ADMIN_SYNC: &str = "admin stale";
const ADMIN_ACL: &str = "admin slow dangerous";

/// One CLUSTER subcommand answering that cluster support is disabled.
const fn sub(name: &'static str, arity: i32, flags: &'static str, acl: &'static str) -> Command {
    Command::new(name, arity, flags, acl, Exec::Conn(disabled))
}

static CLUSTER: &[Command] = &[
    sub("cluster|addslots", -3, ADMIN, ADMIN_ACL),
    sub("cluster|addslotsrange", -4, ADMIN, ADMIN_ACL),
    sub("cluster|bumpepoch", 2, ADMIN, ADMIN_ACL),
    sub("cluster|count-failure-reports", 3, ADMIN_SYNC, ADMIN_ACL),
    sub("cluster|countkeysinslot", 3, "stale", "slow"),
    sub("cluster|delslots", -3, ADMIN, ADMIN_ACL),
    sub("cluster|delslotsrange", -4, ADMIN, ADMIN_ACL),
    sub("cluster|failover", -2, ADMIN, ADMIN_ACL),
    sub("cluster|flushslots", 2, ADMIN, ADMIN_ACL),
    sub("cluster|forget", 3, ADMIN, ADMIN_ACL),
    sub("cluster|getkeysinslot", 4, "stale", "slow"),
    sub("cluster|help", 2, "loading stale", "slow"),
    sub("cluster|info", 2, "stale", "slow"),
    sub("cluster|keyslot", 3, "stale", "slow"),
    sub("cluster|links", 2, "stale", "slow"),
    sub("cluster|meet", -4, ADMIN, ADMIN_ACL),
    sub("cluster|myid", 2, "stale", "slow"),
    sub("cluster|nodes", 2, "stale", "slow"),
    sub("cluster|replicas", 3, ADMIN_SYNC, ADMIN_ACL),
    sub("cluster|replicate", 3, ADMIN, ADMIN_ACL),
    sub("cluster|reset", -2, "admin noscript stale", ADMIN_ACL),
    sub("cluster|saveconfig", 2, ADMIN, ADMIN_ACL),
    sub("cluster|set-config-epoch", 3, ADMIN, ADMIN_ACL),
    sub("cluster|setslot", -4, ADMIN, ADMIN_ACL),
    sub("cluster|shards", 2, "stale", "slow"),
    sub("cluster|slaves", 3, ADMIN_SYNC, ADMIN_ACL),
    sub("cluster|slots", 2, "stale", "slow"),
];

/// Every cluster command on a server without cluster support, CLUSTER HELP included
/// (Redis checks `cluster_enabled` before looking at the subcommand).
fn disabled(_c: &mut Client, _argv: &[Bytes]) -> Reply {
    Reply::err(errors::CLUSTER_DISABLED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::argv;

    #[test]
    fn every_subcommand_is_disabled_and_named_under_cluster() {
        let mut c = Client::detached(1);
        for s in CLUSTER {
            assert!(s.name.starts_with("cluster|"), "{}", s.name);
            let Exec::Conn(f) = s.exec else {
                panic!("{} does not run on the connection", s.name)
            };
            assert_eq!(
                f(&mut c, &argv(&["cluster", "x"])),
                Reply::err(errors::CLUSTER_DISABLED)
            );
        }
        assert_eq!(CLUSTER.len(), 27, "Redis 7.0 has 27 CLUSTER subcommands");
    }
}
