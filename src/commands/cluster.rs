//! Cluster commands (Redis's `cluster.c`): CLUSTER and its subcommands, READONLY,
//! READWRITE and ASKING.
//!
//! Shardis is a standalone server (its shards are cores of one node, not cluster
//! nodes), so these answer as a redis-server started without `cluster-enabled yes`:
//! every one with `-ERR This instance has cluster support disabled`. They still have
//! their table entries, with Redis 7.0's arity, flags and ACL categories, so that
//! arity and unknown-subcommand errors and COMMAND INFO / DOCS are Redis's, and a
//! client library probing for cluster mode reads the answer it expects.

use super::{Command, Exec};
use crate::client::Client;
use crate::protocol::Reply;
use bytes::Bytes;

const DISABLED: &str = "ERR This instance has cluster support disabled";

pub static COMMANDS: &[Command] = &[
    Command::new("cluster", -2, "", "slow", Exec::Container)
        .subcommands(CLUSTER)
        .doc("cluster", "3.0.0", "A container for cluster commands"),
    Command::new(
        "readonly",
        1,
        "loading stale fast",
        "fast connection",
        Exec::Conn(disabled),
    )
    .doc(
        "cluster",
        "3.0.0",
        "Enables read queries for a connection to a cluster replica node",
    ),
    Command::new(
        "readwrite",
        1,
        "loading stale fast",
        "fast connection",
        Exec::Conn(disabled),
    )
    .doc(
        "cluster",
        "3.0.0",
        "Disables read queries for a connection to a cluster replica node",
    ),
    Command::new("asking", 1, "fast", "fast connection", Exec::Conn(disabled)).doc(
        "cluster",
        "3.0.0",
        "Sent by cluster clients after an -ASK redirect",
    ),
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
    sub("cluster|addslots", -3, ADMIN, ADMIN_ACL)
        .doc("cluster", "3.0.0", "Assign new hash slots to receiving node")
        .complexity("O(N) where N is the total number of hash slot arguments"),
    sub("cluster|addslotsrange", -4, ADMIN, ADMIN_ACL)
        .doc("cluster", "7.0.0", "Assign new hash slots to receiving node")
        .complexity("O(N) where N is the total number of the slots between the start slot and end slot arguments."),
    sub("cluster|bumpepoch", 2, ADMIN, ADMIN_ACL)
        .tips("nondeterministic_output")
        .doc("cluster", "3.0.0", "Advance the cluster config epoch"),
    sub("cluster|count-failure-reports", 3, ADMIN_SYNC, ADMIN_ACL)
        .tips("nondeterministic_output")
        .doc("cluster", "3.0.0", "Return the number of failure reports active for a given node")
        .complexity("O(N) where N is the number of failure reports"),
    sub("cluster|countkeysinslot", 3, "stale", "slow").doc(
        "cluster",
        "3.0.0",
        "Return the number of local keys in the specified hash slot",
    ),
    sub("cluster|delslots", -3, ADMIN, ADMIN_ACL)
        .doc("cluster", "3.0.0", "Set hash slots as unbound in receiving node")
        .complexity("O(N) where N is the total number of hash slot arguments"),
    sub("cluster|delslotsrange", -4, ADMIN, ADMIN_ACL)
        .doc("cluster", "7.0.0", "Set hash slots as unbound in receiving node")
        .complexity("O(N) where N is the total number of the slots between the start slot and end slot arguments."),
    sub("cluster|failover", -2, ADMIN, ADMIN_ACL).doc(
        "cluster",
        "3.0.0",
        "Forces a replica to perform a manual failover of its master.",
    ),
    sub("cluster|flushslots", 2, ADMIN, ADMIN_ACL).doc(
        "cluster",
        "3.0.0",
        "Delete a node's own slots information",
    ),
    sub("cluster|forget", 3, ADMIN, ADMIN_ACL).doc(
        "cluster",
        "3.0.0",
        "Remove a node from the nodes table",
    ),
    sub("cluster|getkeysinslot", 4, "stale", "slow")
        .tips("nondeterministic_output")
        .doc("cluster", "3.0.0", "Return local key names in the specified hash slot")
        .complexity("O(log(N)) where N is the number of requested keys"),
    sub("cluster|help", 2, "loading stale", "slow").doc(
        "cluster",
        "5.0.0",
        "Show helpful text about the different subcommands",
    ),
    sub("cluster|info", 2, "stale", "slow")
        .tips("nondeterministic_output")
        .doc("cluster", "3.0.0", "Provides info about Redis Cluster node state"),
    sub("cluster|keyslot", 3, "stale", "slow")
        .doc("cluster", "3.0.0", "Returns the hash slot of the specified key")
        .complexity("O(N) where N is the number of bytes in the key"),
    sub("cluster|links", 2, "stale", "slow")
        .tips("nondeterministic_output")
        .doc("cluster", "7.0.0", "Returns a list of all TCP links to and from peer nodes in cluster")
        .complexity("O(N) where N is the total number of Cluster nodes"),
    sub("cluster|meet", -4, ADMIN, ADMIN_ACL).doc(
        "cluster",
        "3.0.0",
        "Force a node cluster to handshake with another node",
    ),
    sub("cluster|myid", 2, "stale", "slow").doc("cluster", "3.0.0", "Return the node id"),
    sub("cluster|nodes", 2, "stale", "slow")
        .tips("nondeterministic_output")
        .doc("cluster", "3.0.0", "Get Cluster config for the node")
        .complexity("O(N) where N is the total number of Cluster nodes"),
    sub("cluster|replicas", 3, ADMIN_SYNC, ADMIN_ACL)
        .tips("nondeterministic_output")
        .doc("cluster", "5.0.0", "List replica nodes of the specified master node"),
    sub("cluster|replicate", 3, ADMIN, ADMIN_ACL).doc(
        "cluster",
        "3.0.0",
        "Reconfigure a node as a replica of the specified master node",
    ),
    sub("cluster|reset", -2, "admin noscript stale", ADMIN_ACL)
        .doc("cluster", "3.0.0", "Reset a Redis Cluster node")
        .complexity("O(N) where N is the number of known nodes. The command may execute a FLUSHALL as a side effect."),
    sub("cluster|saveconfig", 2, ADMIN, ADMIN_ACL).doc(
        "cluster",
        "3.0.0",
        "Forces the node to save cluster state on disk",
    ),
    sub("cluster|set-config-epoch", 3, ADMIN, ADMIN_ACL).doc(
        "cluster",
        "3.0.0",
        "Set the configuration epoch in a new node",
    ),
    sub("cluster|setslot", -4, ADMIN, ADMIN_ACL).doc(
        "cluster",
        "3.0.0",
        "Bind a hash slot to a specific node",
    ),
    sub("cluster|shards", 2, "stale", "slow")
        .tips("nondeterministic_output")
        .doc("cluster", "7.0.0", "Get array of cluster slots to node mappings")
        .complexity("O(N) where N is the total number of cluster nodes"),
    sub("cluster|slaves", 3, ADMIN_SYNC, ADMIN_ACL)
        .tips("nondeterministic_output")
        .doc("cluster", "3.0.0", "List replica nodes of the specified master node"),
    sub("cluster|slots", 2, "stale", "slow")
        .tips("nondeterministic_output")
        .doc("cluster", "3.0.0", "Get array of Cluster slot to node mappings")
        .complexity("O(N) where N is the total number of Cluster nodes"),
];

/// Every cluster command on a server without cluster support, CLUSTER HELP included
/// (Redis checks `cluster_enabled` before looking at the subcommand).
fn disabled(_c: &mut Client, _argv: &[Bytes]) -> Reply {
    Reply::err(DISABLED)
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
            assert_eq!(f(&mut c, &argv(&["cluster", "x"])), Reply::err(DISABLED));
        }
        assert_eq!(CLUSTER.len(), 27, "Redis 7.0 has 27 CLUSTER subcommands");
    }
}
