//! Cluster commands (Redis's `cluster.c`): CLUSTER and its subcommands, READONLY,
//! READWRITE and ASKING.
//!
//! Without `cluster-enabled yes` they answer as a redis-server without it: every one
//! with `-ERR This instance has cluster support disabled` (they still have their
//! table entries, with Redis 7.0's arity, flags and ACL categories, so that arity and
//! unknown-subcommand errors and COMMAND INFO / DOCS are Redis's). With it they read
//! and change the node's view of the cluster (`crate::cluster`), with Redis's replies
//! and error texts.

use super::{args, errors, Command, Exec, LocalBoxFuture};
use crate::client::{Client, ClientRef};
use crate::cluster::{self, gossip, node, nodes_conf, State};
use crate::protocol::Reply;
use crate::runtime::slots::{key_slot, SLOTS};
use crate::runtime::Shards;
use bytes::Bytes;

pub static COMMANDS: &[Command] = &[
    Command::new("cluster", -2, "", "slow", Exec::Container).subcommands(CLUSTER),
    Command::new(
        "readonly",
        1,
        "loading stale fast",
        "fast connection",
        Exec::Conn(readonly),
    ),
    Command::new(
        "readwrite",
        1,
        "loading stale fast",
        "fast connection",
        Exec::Conn(readwrite),
    ),
    Command::new("asking", 1, "fast", "fast connection", Exec::Conn(asking)),
];

/// Flags and ACL categories shared by most subcommands, as Redis 7.0 lists them.
const ADMIN: &str = "admin stale no_async_loading";
const ADMIN_SYNC: &str = "admin stale";
const ADMIN_ACL: &str = "admin slow dangerous";

const fn sub(name: &'static str, arity: i32, flags: &'static str, acl: &'static str) -> Command {
    Command::new(name, arity, flags, acl, Exec::Server(subcommand))
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

fn readonly(c: &mut Client, _argv: &[Bytes]) -> Reply {
    if !cluster::enabled() {
        return Reply::err(errors::CLUSTER_DISABLED);
    }
    c.cluster_readonly = true;
    Reply::ok()
}

fn readwrite(c: &mut Client, _argv: &[Bytes]) -> Reply {
    if !cluster::enabled() {
        return Reply::err(errors::CLUSTER_DISABLED);
    }
    c.cluster_readonly = false;
    Reply::ok()
}

fn asking(c: &mut Client, _argv: &[Bytes]) -> Reply {
    if !cluster::enabled() {
        return Reply::err(errors::CLUSTER_DISABLED);
    }
    c.asking = true;
    Reply::ok()
}

fn subcommand<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        if !cluster::enabled() {
            return Reply::err(errors::CLUSTER_DISABLED);
        }
        let sub = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
        match sub.as_str() {
            "countkeysinslot" => count_keys_in_slot(s, &argv[2]).await,
            "getkeysinslot" => get_keys_in_slot(s, &argv[2], &argv[3]).await,
            "keyslot" => Reply::Int(key_slot(&argv[2]) as i64),
            "replicate" => replicate(s, &argv[2]).await,
            "reset" => {
                let keys: usize = db0_keys(s).await;
                let master = cluster::read(|st| st.me().is_master()).unwrap_or(true);
                let well_formed = argv.len() == 2
                    || (argv.len() == 3
                        && (argv[2].eq_ignore_ascii_case(b"hard")
                            || argv[2].eq_ignore_ascii_case(b"soft")));
                if master && keys != 0 && well_formed {
                    return Reply::err(
                        "ERR CLUSTER RESET can't be called with master nodes containing keys",
                    );
                }
                cluster::with(s, |st| run(st, &sub, argv))
                    .unwrap_or_else(|| Reply::err(errors::CLUSTER_DISABLED))
            }
            "setslot" => {
                let held = match slot_arg(&argv[2]) {
                    Ok(slot) => slot_key_count(s, slot as u16).await,
                    Err(_) => 0,
                };
                cluster::with(s, |st| {
                    let r = setslot(st, argv, held);
                    gossip::update_state(st, crate::clock::now_ms());
                    r
                })
                .unwrap_or_else(|| Reply::err(errors::CLUSTER_DISABLED))
            }
            "help" => help(),
            // A node whose slots hold keys would keep them unreachable.
            "flushslots" if argv.len() == 2 && db0_keys(s).await != 0 => {
                Reply::err("ERR DB must be empty to perform CLUSTER FLUSHSLOTS.")
            }
            _ => cluster::with(s, |st| run(st, &sub, argv))
                .unwrap_or_else(|| Reply::err(errors::CLUSTER_DISABLED)),
        }
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn bulk(s: impl AsRef<str>) -> Reply {
    Reply::bulk_str(s.as_ref())
}

/// A slot argument: `Invalid or out of range slot` as Redis's `getSlotOrReply`.
fn slot_arg(b: &[u8]) -> Result<usize, Reply> {
    match args::int(b) {
        Ok(n) if (0..SLOTS as i64).contains(&n) => Ok(n as usize),
        _ => Err(Reply::err("ERR Invalid or out of range slot")),
    }
}

fn unknown_node(name: &[u8]) -> Reply {
    Reply::error(format!("ERR Unknown node {}", text(name)))
}

/// The subcommands that read or change the cluster state.
fn run(st: &mut State, sub: &str, argv: &[Bytes]) -> Reply {
    let now = crate::clock::now_ms();
    let r = match sub {
        "info" => Reply::Verbatim("txt", Bytes::from(info(st))),
        "myid" => bulk(&st.myself),
        "nodes" => {
            let mut out = String::new();
            for n in st.nodes.values() {
                out += &nodes_conf::node_line(st, n, true);
                out.push('\n');
            }
            Reply::Verbatim("txt", Bytes::from(out))
        }
        "slots" => slots(st),
        "shards" => shards(st),
        "addslots" | "delslots" => {
            let add = sub == "addslots";
            let mut list = Vec::new();
            for a in &argv[2..] {
                match slot_arg(a) {
                    Ok(s) => list.push(s),
                    Err(e) => return e,
                }
            }
            change_slots(st, &list, add)
        }
        "addslotsrange" | "delslotsrange" => {
            if argv.len() % 2 == 1 {
                return errors::wrong_arity(if sub == "addslotsrange" {
                    "cluster|addslotsrange"
                } else {
                    "cluster|delslotsrange"
                });
            }
            let mut list = Vec::new();
            for pair in argv[2..].chunks(2) {
                let (a, b) = match (slot_arg(&pair[0]), slot_arg(&pair[1])) {
                    (Ok(a), Ok(b)) => (a, b),
                    (Err(e), _) | (_, Err(e)) => return e,
                };
                if a > b {
                    return Reply::error(format!(
                        "ERR start slot number {a} is greater than end slot number {b}"
                    ));
                }
                list.extend(a..=b);
            }
            change_slots(st, &list, sub == "addslotsrange")
        }
        "flushslots" => {
            for s in 0..SLOTS {
                if st.slots[s].as_deref() == Some(st.myself.as_str()) {
                    st.assign(s, None);
                }
            }
            st.fx.save_config = true;
            Reply::ok()
        }
        "meet" => meet(st, argv, now),
        "forget" => {
            let name = text(&argv[2]);
            if name == st.myself {
                return Reply::err("ERR I tried hard but I can't forget myself...");
            }
            if !st.nodes.contains_key(&name) {
                return unknown_node(&argv[2]);
            }
            if st.me().slaveof.as_deref() == Some(name.as_str()) {
                return Reply::err("ERR Can't forget my master!");
            }
            st.blacklist.insert(name.clone(), now / 1000 + 60);
            st.delete_node(&name);
            st.fx.save_config = true;
            Reply::ok()
        }
        "count-failure-reports" => match st.nodes.get(&text(&argv[2])) {
            None => unknown_node(&argv[2]),
            Some(n) => {
                let timeout = st.node_timeout;
                Reply::Int(
                    n.fail_reports
                        .iter()
                        .filter(|(_, t)| now.saturating_sub(*t) <= timeout * 2)
                        .count() as i64,
                )
            }
        },
        "replicas" | "slaves" => match st.nodes.get(&text(&argv[2])) {
            None => unknown_node(&argv[2]),
            Some(n) if !n.is_master() => Reply::err("ERR The specified node is not a master"),
            Some(n) => Reply::Array(
                st.nodes
                    .values()
                    .filter(|r| r.slaveof.as_deref() == Some(n.name.as_str()))
                    .map(|r| bulk(nodes_conf::node_line(st, r, true)))
                    .collect(),
            ),
        },
        "set-config-epoch" => {
            let Ok(epoch) = args::int(&argv[2]) else {
                return Reply::err(errors::NOT_INTEGER);
            };
            if epoch < 0 {
                return Reply::error(format!("ERR Invalid config epoch specified: {epoch}"));
            }
            if st.nodes.len() > 1 {
                return Reply::err(
                    "ERR The user can assign a config epoch only when the node does not know any other node.",
                );
            }
            if st.me().config_epoch != 0 {
                return Reply::err("ERR Node config epoch is already non-zero");
            }
            st.me_mut().config_epoch = epoch as u64;
            if st.current_epoch < epoch as u64 {
                st.current_epoch = epoch as u64;
            }
            st.fx.save_config = true;
            Reply::ok()
        }
        "bumpepoch" => {
            let bumped = gossip::bump_epoch_without_consensus(st);
            let e = st.me().config_epoch;
            Reply::Status(format!("{} {e}", if bumped { "BUMPED" } else { "STILL" }).into())
        }
        "saveconfig" => {
            st.fx.save_config = true;
            Reply::ok()
        }
        "links" => links(st),
        "reset" => reset(st, argv, now),

        "failover" => {
            let (force, takeover) = match argv.get(2).map(|a| text(a).to_ascii_lowercase()) {
                None => (false, false),
                Some(o) if o == "force" && argv.len() == 3 => (true, false),
                Some(o) if o == "takeover" && argv.len() == 3 => (false, true),
                _ => return Reply::err(errors::SYNTAX),
            };
            match gossip::manual_failover(st, force, takeover, now) {
                Ok(()) => Reply::ok(),
                Err(e) => Reply::err(e),
            }
        }
        _ => errors::unknown_subcommand("cluster", &argv[1]),
    };
    gossip::update_state(st, now);
    r
}

/// CLUSTER REPLICATE node: become a replica of a master (we must hold no slot and,
/// as a master, no key).
async fn replicate(s: &Shards, name: &[u8]) -> Reply {
    let keys: usize = db0_keys(s).await;
    let name = text(name);
    cluster::with(s, |st| {
        let Some(n) = st.nodes.get(&name) else {
            return unknown_node(name.as_bytes());
        };
        if name == st.myself {
            return Reply::err("ERR Can't replicate myself");
        }
        if n.has(node::SLAVE) {
            return Reply::err("ERR I can only replicate a master, not a replica.");
        }
        let me = st.me();
        if me.is_master() && (me.numslots != 0 || keys != 0) {
            return Reply::err(
                "ERR To set a master the node must be empty and without assigned slots.",
            );
        }
        gossip::set_master(st, &name);
        Reply::ok()
    })
    .unwrap_or_else(|| Reply::err(errors::CLUSTER_DISABLED))
}

fn change_slots(st: &mut State, list: &[usize], add: bool) -> Reply {
    for &s in list {
        let owner = st.slots[s].is_some();
        if add && owner {
            return Reply::error(format!("ERR Slot {s} is already busy"));
        }
        if !add && !owner {
            return Reply::error(format!("ERR Slot {s} is already unassigned"));
        }
    }
    let me = st.myself.clone();
    for &s in list {
        st.assign(s, add.then_some(me.as_str()));
    }
    st.fx.save_config = true;
    Reply::ok()
}

fn meet(st: &mut State, argv: &[Bytes], now: u64) -> Reply {
    let ip = text(&argv[2]);
    let Ok(port) = args::int(&argv[3]) else {
        return Reply::error(format!(
            "ERR Invalid TCP base port specified: {}",
            text(&argv[3])
        ));
    };
    let cport = match argv.get(4) {
        Some(b) => match args::int(b) {
            Ok(p) => p,
            Err(_) => {
                return Reply::error(format!("ERR Invalid TCP bus port specified: {}", text(b)))
            }
        },
        None => port + 10000,
    };
    if argv.len() > 5 {
        return Reply::err(errors::SYNTAX);
    }
    let valid = (0..=65535).contains(&port)
        && (0..=65535).contains(&cport)
        && gossip::start_handshake(st, &ip, port as u16, cport as u16, now);
    if !valid {
        return Reply::error(format!("ERR Invalid node address specified: {ip}:{port}"));
    }
    Reply::ok()
}

fn reset(st: &mut State, argv: &[Bytes], now: u64) -> Reply {
    let hard = match argv.get(2).map(|a| text(a).to_ascii_lowercase()).as_deref() {
        None | Some("soft") => false,
        Some("hard") => true,
        _ => return Reply::err(errors::SYNTAX),
    };
    if argv.len() > 3 {
        return Reply::err(errors::SYNTAX);
    }
    // (A master with keys was refused by the caller, which sees the shards.)
    for s in 0..SLOTS {
        st.assign(s, None);
        st.set_migrating(s, None);
        st.set_importing(s, None);
    }
    let others: Vec<String> = st
        .nodes
        .keys()
        .filter(|n| **n != st.myself)
        .cloned()
        .collect();
    for n in others {
        st.delete_node(&n);
    }
    if hard {
        st.current_epoch = 0;
        st.last_vote_epoch = 0;
        st.me_mut().config_epoch = 0;
        let old = st.myself.clone();
        let mut me = st.nodes.remove(&old).expect("myself");
        me.name = node::random_name();
        crate::log::log(&format!("Node hard reset, now I'm {}", me.name));
        st.myself = me.name.clone();
        st.nodes.insert(me.name.clone(), me);
    }
    let me = st.me_mut();
    me.flags = node::MYSELF | node::MASTER;
    me.slaveof = None;
    me.ctime = now;
    st.fx.save_config = true;
    Reply::ok()
}

/// CLUSTER SETSLOT slot MIGRATING node | IMPORTING node | STABLE | NODE node, as
/// Redis's; `held`: how many keys we hold in the slot.
fn setslot(st: &mut State, argv: &[Bytes], held: usize) -> Reply {
    if st.me().has(node::SLAVE) {
        return Reply::err("ERR Please use SETSLOT only with masters.");
    }
    let slot = match slot_arg(&argv[2]) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let action = text(&argv[3]).to_ascii_lowercase();
    let target = argv.get(4).map(|a| text(a));
    let mine = st.slots[slot].as_deref() == Some(st.myself.as_str());
    match (action.as_str(), argv.len()) {
        ("migrating" | "importing", 5) => {
            let name = target.expect("five arguments");
            if action == "migrating" && !mine {
                return Reply::error(format!("ERR I'm not the owner of hash slot {slot}"));
            }
            if action == "importing" && mine {
                return Reply::error(format!("ERR I'm already the owner of hash slot {slot}"));
            }
            let Some(n) = st.nodes.get(&name) else {
                return Reply::error(format!("ERR I don't know about node {name}"));
            };
            if n.has(node::SLAVE) {
                return Reply::err("ERR Target node is not a master");
            }
            if action == "migrating" {
                st.set_migrating(slot, Some(name));
            } else {
                st.set_importing(slot, Some(name));
            }
        }
        ("stable", 4) => {
            st.set_migrating(slot, None);
            st.set_importing(slot, None);
        }
        ("node", 5) => {
            let name = target.expect("five arguments");
            let Some(n) = st.nodes.get(&name) else {
                return unknown_node(&argv[4]);
            };
            if n.has(node::SLAVE) {
                return Reply::err("ERR Target node is not a master");
            }
            let to_me = name == st.myself;
            if mine && !to_me && held != 0 {
                return Reply::error(format!("ERR Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."));
            }
            if held == 0 {
                st.set_migrating(slot, None);
            }
            st.assign(slot, Some(&name));
            // A master left without slots follows the node that took its last one.
            if mine && !to_me && st.me().numslots == 0 && st.allow_replica_migration {
                crate::log::warning(&format!(
                    "Configuration change detected. Reconfiguring myself as a replica of {name}"
                ));
                gossip::set_master(st, &name);
            }
            // Closing an import: take a new epoch without consensus so that the
            // cluster learns the new owner, and tell everyone at once.
            if to_me && st.importing.contains_key(&slot) {
                if gossip::bump_epoch_without_consensus(st) {
                    crate::log::warning(&format!(
                        "configEpoch updated after importing slot {slot}"
                    ));
                }
                st.set_importing(slot, None);
                gossip::broadcast_pong(st);
            }
        }
        _ => {
            return Reply::err(
                "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP",
            )
        }
    }
    st.fx.save_config = true;
    Reply::ok()
}

/// CLUSTER INFO.
fn info(st: &State) -> String {
    let (mut assigned, mut ok, mut pfail, mut fail) = (0, 0, 0, 0);
    for o in st.slots.iter().flatten() {
        assigned += 1;
        match st.nodes.get(o) {
            Some(n) if n.has(node::FAIL) => fail += 1,
            Some(n) if n.has(node::PFAIL) => pfail += 1,
            _ => ok += 1,
        }
    }
    let my_epoch = st.epoch_of(st.me());
    let mut out = format!(
        "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{ok}\r\n\
         cluster_slots_pfail:{pfail}\r\ncluster_slots_fail:{fail}\r\ncluster_known_nodes:{}\r\n\
         cluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{my_epoch}\r\n",
        if st.ok { "ok" } else { "fail" },
        st.nodes.len(),
        st.size,
        st.current_epoch,
    );
    let stats = cluster::message_stats();
    let mut total = 0;
    for (t, sent, _) in &stats {
        if *sent > 0 {
            out += &format!(
                "cluster_stats_messages_{}_sent:{sent}\r\n",
                crate::cluster::bus::type_name(*t)
            );
            total += sent;
        }
    }
    out += &format!("cluster_stats_messages_sent:{total}\r\n");
    let mut total = 0;
    for (t, _, received) in &stats {
        if *received > 0 {
            out += &format!(
                "cluster_stats_messages_{}_received:{received}\r\n",
                crate::cluster::bus::type_name(*t)
            );
            total += received;
        }
    }
    out += &format!("cluster_stats_messages_received:{total}\r\n");
    out += "total_cluster_links_buffer_limit_exceeded:0\r\n";
    out
}

/// `[endpoint, port, id, {other addresses}]`: a node in CLUSTER SLOTS (Redis's
/// `addNodeToNodeReply`): the preferred endpoint first (null for
/// `unknown-endpoint`), then what else is known of its address.
fn slot_node(st: &State, n: &node::Node) -> Reply {
    use crate::cluster::Endpoint;
    let first = match st.endpoint {
        Endpoint::Unknown => Reply::Null,
        _ => bulk(st.endpoint_of(n)),
    };
    let mut more = Vec::new();
    if st.endpoint != Endpoint::Ip {
        more.push((bulk("ip"), bulk(&n.ip)));
    }
    if st.endpoint != Endpoint::Hostname && !n.hostname.is_empty() {
        more.push((bulk("hostname"), bulk(&n.hostname)));
    }
    Reply::Array(vec![
        first,
        Reply::Int(n.port as i64),
        bulk(&n.name),
        Reply::Map(more),
    ])
}

fn slots(st: &State) -> Reply {
    let mut out = Vec::new();
    let mut s = 0;
    while s < SLOTS {
        let Some(owner) = st.slots[s].clone() else {
            s += 1;
            continue;
        };
        let mut e = s;
        while e + 1 < SLOTS && st.slots[e + 1].as_deref() == Some(owner.as_str()) {
            e += 1;
        }
        let n = &st.nodes[&owner];
        let mut entry = vec![Reply::Int(s as i64), Reply::Int(e as i64), slot_node(st, n)];
        for r in st.nodes.values() {
            if r.slaveof.as_deref() == Some(owner.as_str()) && !r.has(node::FAIL) {
                entry.push(slot_node(st, r));
            }
        }
        out.push(Reply::Array(entry));
        s = e + 1;
    }
    Reply::Array(out)
}

fn shard_node(st: &State, n: &node::Node) -> Reply {
    let role = if n.has(node::SLAVE) {
        "replica"
    } else {
        "master"
    };
    let health = if n.has(node::FAIL) { "fail" } else { "online" };
    let mut f = vec![
        (bulk("id"), bulk(&n.name)),
        (bulk("port"), Reply::Int(n.port as i64)),
        (bulk("ip"), bulk(&n.ip)),
        (bulk("endpoint"), bulk(st.endpoint_of(n))),
    ];
    if !n.hostname.is_empty() {
        f.push((bulk("hostname"), bulk(&n.hostname)));
    }
    f.push((bulk("role"), bulk(role)));
    // This node's own offset is its stream's (as Redis's), not a gossiped one.
    let offset = if n.name == st.myself {
        st.repl_offset
    } else {
        n.repl_offset
    };
    f.push((bulk("replication-offset"), Reply::Int(offset as i64)));
    f.push((bulk("health"), bulk(health)));
    Reply::Map(f)
}

fn shards(st: &State) -> Reply {
    let mut out = Vec::new();
    for m in st.nodes.values() {
        if !m.is_master() || m.has(node::HANDSHAKE) {
            continue;
        }
        let mut slot_list = Vec::new();
        for (a, b) in node::ranges(&m.slots) {
            slot_list.push(Reply::Int(a as i64));
            slot_list.push(Reply::Int(b as i64));
        }
        let mut nodes = vec![shard_node(st, m)];
        for r in st.nodes.values() {
            if r.slaveof.as_deref() == Some(m.name.as_str()) {
                nodes.push(shard_node(st, r));
            }
        }
        out.push(Reply::Map(vec![
            (bulk("slots"), Reply::Array(slot_list)),
            (bulk("nodes"), Reply::Array(nodes)),
        ]));
    }
    Reply::Array(out)
}

fn links(st: &State) -> Reply {
    Reply::Array(
        st.nodes
            .values()
            .filter(|n| n.link.is_some())
            .map(|n| {
                Reply::Map(vec![
                    (bulk("direction"), bulk("to")),
                    (bulk("node"), bulk(&n.name)),
                    (bulk("create-time"), Reply::Int(n.ctime as i64)),
                    (bulk("events"), bulk("rw")),
                    (bulk("send-buffer-allocated"), Reply::Int(0)),
                    (bulk("send-buffer-used"), Reply::Int(0)),
                ])
            })
            .collect(),
    )
}

async fn count_keys_in_slot(s: &Shards, arg: &[u8]) -> Reply {
    let Ok(slot) = args::int(arg) else {
        return Reply::err(errors::NOT_INTEGER);
    };
    if !(0..SLOTS as i64).contains(&slot) {
        return Reply::err("ERR Invalid slot");
    }
    Reply::Int(slot_key_count(s, slot as u16).await as i64)
}

/// The keys of db 0 in `slot`, counted by the one shard that holds them.
async fn slot_key_count(s: &Shards, slot: u16) -> usize {
    let sid = s.slots.shard_of_slot(slot);
    s.on(sid, move |sh| sh.db(0).count_in_slot(slot)).await
}

/// The keys of db 0 on every shard (a master must have none to be reset or to
/// become a replica).
async fn db0_keys(s: &Shards) -> usize {
    s.all(|sh| sh.db(0).len()).await.iter().sum()
}

/// Up to `count` keys of db 0 in `slot`, from the one shard that holds the slot's
/// keys (its slot index).
pub async fn keys_in_slot(s: &Shards, slot: u16, count: usize) -> Vec<Bytes> {
    let sid = s.slots.shard_of_slot(slot);
    s.on(sid, move |sh| sh.db(0).keys_in_slot(slot, count))
        .await
}

async fn get_keys_in_slot(s: &Shards, slot: &[u8], count: &[u8]) -> Reply {
    let (Ok(slot), Ok(count)) = (args::int(slot), args::int(count)) else {
        return Reply::err(errors::NOT_INTEGER);
    };
    if !(0..SLOTS as i64).contains(&slot) || count < 0 {
        return Reply::err("ERR Invalid slot or number of keys");
    }
    let keys = keys_in_slot(s, slot as u16, count as usize).await;
    Reply::Array(keys.into_iter().map(Reply::Bulk).collect())
}

fn help() -> Reply {
    super::config::help_reply(
        "CLUSTER",
        &[
            "ADDSLOTS <slot> [<slot> ...]",
            "    Assign slots to current node.",
            "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
            "    Assign slots which are between <start-slot> and <end-slot> to current node.",
            "BUMPEPOCH",
            "    Advance the cluster config epoch.",
            "COUNT-FAILURE-REPORTS <node-id>",
            "    Return number of failure reports for <node-id>.",
            "COUNTKEYSINSLOT <slot>",
            "    Return the number of keys in <slot>.",
            "DELSLOTS <slot> [<slot> ...]",
            "    Delete slots information from current node.",
            "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
            "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
            "FAILOVER [FORCE|TAKEOVER]",
            "    Promote current replica node to being a master.",
            "FORGET <node-id>",
            "    Remove a node from the cluster.",
            "GETKEYSINSLOT <slot> <count>",
            "    Return key names stored by current node in a slot.",
            "FLUSHSLOTS",
            "    Delete current node own slots information.",
            "INFO",
            "    Return information about the cluster.",
            "KEYSLOT <key>",
            "    Return the hash slot for <key>.",
            "MEET <ip> <port> [<bus-port>]",
            "    Connect nodes into a working cluster.",
            "MYID",
            "    Return the node id.",
            "NODES",
            "    Return cluster configuration seen by node. Output format:",
            "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
            "REPLICATE <node-id>",
            "    Configure current node as replica to <node-id>.",
            "RESET [HARD|SOFT]",
            "    Reset current node (default: soft).",
            "SET-CONFIG-EPOCH <epoch>",
            "    Set config epoch of current node.",
            "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
            "    Set slot state.",
            "REPLICAS <node-id>",
            "    Return <node-id> replicas.",
            "SAVECONFIG",
            "    Force saving cluster configuration on disk.",
            "SLOTS",
            "    Return information about slots range mappings. Each range is made of:",
            "    start, end, master and replicas IP addresses, ports and ids",
            "SHARDS",
            "    Return information about slot range mappings and the nodes associated with them.",
            "LINKS",
            "    Return information about all network links between this node and its peers.",
            "    Output format is an array where each array element is a map containing attributes of a link",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::argv;

    #[test]
    fn every_subcommand_is_named_under_cluster() {
        for s in CLUSTER {
            assert!(s.name.starts_with("cluster|"), "{}", s.name);
        }
        assert_eq!(CLUSTER.len(), 27, "Redis 7.0 has 27 CLUSTER subcommands");
        let mut c = Client::detached(1);
        assert_eq!(
            readonly(&mut c, &argv(&["readonly"])),
            Reply::err(errors::CLUSTER_DISABLED)
        );
    }
}
