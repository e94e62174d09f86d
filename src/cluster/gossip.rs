//! The cluster bus's rules, as Redis 7.0's `cluster.c` has them: what a node does
//! with each message (`clusterProcessPacket`), what its cron does every 100 ms
//! (`clusterCron`), failure detection (PFAIL, FAIL by a majority of masters), slot
//! ownership by config epoch (`clusterUpdateSlotsConfigWith`, UPDATE messages, the
//! epoch collision rule) and the cluster state (`clusterUpdateState`).

use super::bus::{self, Body, Gossip, Header, Message};
use super::link::{self, LinkInfo};
use super::node::{self, name_bytes, name_str, Node};
use super::State;
use crate::config::Config;
use crate::runtime::slots::SLOTS;
use crate::runtime::Shards;
use std::collections::BTreeMap;

/// The bus port: `cluster-port`, else port + 10000.
pub fn bus_port(cfg: &Config) -> u16 {
    *BUS_PORT.get_or_init(|| match cfg.get_int("cluster-port") {
        0 => cfg.port.wrapping_add(10000),
        p => p as u16,
    })
}

/// The bus port, fixed where the bus listens at start: a CONFIG SET port later moves
/// the clients' listener, not the bus (Redis's `myself->cport` stays too).
static BUS_PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();

/// The address to announce: the `cluster-announce-*` options over what we know.
pub fn announce_of(cfg: &Config, ip: &str) -> super::Announce {
    let get = |k: &str| cfg.get(k).unwrap_or("").to_string();
    let port = match cfg.get_int("cluster-announce-port") {
        0 => cfg.port,
        p => p as u16,
    };
    let cport = match cfg.get_int("cluster-announce-bus-port") {
        0 => bus_port(cfg),
        p => p as u16,
    };
    let announced_ip = get("cluster-announce-ip");
    super::Announce {
        from_config: !announced_ip.is_empty(),
        ip: if announced_ip.is_empty() {
            ip.to_string()
        } else {
            announced_ip
        },
        port,
        cport,
        hostname: get("cluster-announce-hostname"),
    }
}

/// A message header from this node (Redis's `clusterBuildMessageHdr`).
pub fn header(st: &State, kind: u16) -> Header {
    let me = st.me();
    let master = me
        .slaveof
        .as_ref()
        .and_then(|m| st.nodes.get(m))
        .filter(|_| me.has(node::SLAVE))
        .unwrap_or(me);
    Header {
        port: st.announce.port,
        kind,
        count: 0,
        current_epoch: st.current_epoch,
        config_epoch: master.config_epoch,
        offset: st.repl_offset,
        sender: name_bytes(&st.myself),
        myslots: master.slots.clone(),
        slaveof: me
            .slaveof
            .as_deref()
            .map(name_bytes)
            .unwrap_or([0; node::NAMELEN]),
        // Set only by `cluster-announce-ip`: otherwise the receiver uses the address
        // it sees us at.
        myip: if st.announce.from_config {
            st.announce.ip.clone()
        } else {
            String::new()
        },
        extensions: 0,
        pport: 0,
        cport: st.announce.cport,
        flags: me.flags,
        state: if st.ok { 0 } else { 1 },
        mflags: [
            if me.is_master() && st.mf_end != 0 {
                bus::FLAG0_PAUSED
            } else {
                0
            },
            0,
            0,
        ],
    }
}

/// A PING, PONG or MEET with gossip about a few other nodes (Redis's
/// `clusterSendPing`): a tenth of the nodes (at least 3) picked at random among those
/// worth telling about, and every node in PFAIL.
pub fn ping(st: &State, kind: u16) -> Vec<u8> {
    let mut h = header(st, kind);
    let candidates: Vec<&Node> = st
        .nodes
        .values()
        .filter(|n| {
            n.name != st.myself
                && n.flags & (node::PFAIL | node::HANDSHAKE | node::NOADDR) == 0
                && (n.link.is_some() || n.numslots > 0)
        })
        .collect();
    let wanted = (st.nodes.len() / 10)
        .max(3)
        .min(st.nodes.len().saturating_sub(2));
    let mut gossip: Vec<Gossip> = Vec::new();
    let mut picked = std::collections::BTreeSet::new();
    for _ in 0..wanted * 3 {
        if gossip.len() >= wanted || candidates.is_empty() {
            break;
        }
        let n = candidates[rand::random::<usize>() % candidates.len()];
        if picked.insert(n.name.clone()) {
            gossip.push(gossip_entry(n));
        }
    }
    for n in st.nodes.values() {
        if n.has(node::PFAIL) && !n.has(node::HANDSHAKE) && !n.has(node::NOADDR) {
            gossip.push(gossip_entry(n));
        }
    }
    h.count = gossip.len() as u16;
    let hostname = Some(st.announce.hostname.clone()).filter(|h| !h.is_empty());
    bus::encode(&h, &Body::Ping { gossip, hostname })
}

fn gossip_entry(n: &Node) -> Gossip {
    Gossip {
        name: name_bytes(&n.name),
        ping_sent: (n.ping_sent / 1000) as u32,
        pong_received: (n.pong_received / 1000) as u32,
        ip: n.ip.clone(),
        port: n.port,
        cport: n.cport,
        flags: n.flags,
        pport: n.pport,
    }
}

/// Send `msg` to every node we have a link to (not in handshake).
fn broadcast(st: &State, msg: &[u8]) {
    for n in st.nodes.values() {
        if n.name == st.myself || n.has(node::HANDSHAKE) {
            continue;
        }
        if let Some(l) = &n.link {
            l.send(msg.to_vec());
        }
    }
}

/// Send a published message over the bus (see `cluster::propagate_publish`).
pub fn publish(st: &State, shard: bool, channel: &[u8], message: &[u8]) {
    let kind = if shard {
        bus::PUBLISHSHARD
    } else {
        bus::PUBLISH
    };
    let msg = bus::encode(
        &header(st, kind),
        &Body::Publish {
            channel: channel.to_vec(),
            message: message.to_vec(),
        },
    );
    if !shard {
        broadcast(st, &msg);
        return;
    }
    let me = st.me();
    let master = me.slaveof.clone().unwrap_or_else(|| st.myself.clone());
    for n in st.nodes.values() {
        let same_shard = n.name == master || n.slaveof.as_deref() == Some(master.as_str());
        if same_shard && n.name != st.myself {
            if let Some(l) = &n.link {
                l.send(msg.clone());
            }
        }
    }
}

/// Take a new config epoch unless ours is already the only greatest one (Redis's
/// `clusterBumpConfigEpochWithoutConsensus`, for BUMPEPOCH and a closed import).
/// True if it was bumped.
pub fn bump_epoch_without_consensus(st: &mut State) -> bool {
    let max = st.nodes.values().map(|n| n.config_epoch).max().unwrap_or(0);
    let mine = st.me().config_epoch;
    if mine != 0 && mine == max {
        return false;
    }
    st.current_epoch += 1;
    let e = st.current_epoch;
    st.me_mut().config_epoch = e;
    st.fx.save_config = true;
    true
}

/// A PONG to every node: spreads a configuration change at once.
pub fn broadcast_pong(st: &State) {
    broadcast(st, &ping(st, bus::PONG));
}

/// CLUSTER MEET: a node in handshake, named at random until it answers.
pub fn start_handshake(st: &mut State, ip: &str, port: u16, cport: u16, now: u64) -> bool {
    let ip = match ip.parse::<std::net::IpAddr>() {
        Ok(a) => a.to_string(),
        Err(_) => return false,
    };
    let busy = st.nodes.values().any(|n| {
        n.has(node::HANDSHAKE)
            && n.ip.eq_ignore_ascii_case(&ip)
            && n.port == port
            && n.cport == cport
    });
    if busy {
        return true;
    }
    let mut n = Node::new(node::random_name(), node::HANDSHAKE | node::MEET, now);
    n.ip = ip;
    n.port = port;
    n.cport = cport;
    st.nodes.insert(n.name.clone(), n);
    true
}

/// The node an outbound link belongs to.
fn node_of_link(st: &State, id: u64) -> Option<String> {
    st.nodes
        .values()
        .find(|n| n.link.as_ref().is_some_and(|l| l.id == id))
        .map(|n| n.name.clone())
}

/// An outbound link failed or closed: the cron opens a new one.
pub fn link_closed(st: &mut State, id: u64) {
    let now = crate::clock::now_ms();
    if let Some(name) = node_of_link(st, id) {
        let n = st.nodes.get_mut(&name).expect("found above");
        n.link = None;
        // So a node we cannot reach times out like one that stopped answering.
        if n.ping_sent == 0 {
            n.ping_sent = now;
        }
    }
}

/// The cron (Redis's `clusterCron`), every 100 ms.
pub fn cron(st: &mut State, cfg: &Config, now: u64) {
    st.cron_iterations += 1;
    st.node_timeout = cfg.get_int("cluster-node-timeout").max(1) as u64;
    st.require_full_coverage = cfg.get_bool("cluster-require-full-coverage");
    st.allow_replica_migration = cfg.get_bool("cluster-allow-replica-migration");
    st.allow_reads_when_down = cfg.get_bool("cluster-allow-reads-when-down");
    st.allow_pubsubshard_when_down = cfg.get_bool("cluster-allow-pubsubshard-when-down");
    st.endpoint = super::Endpoint::of(cfg);
    let myip = st.me().ip.clone();
    let a = announce_of(cfg, &myip);
    if a.from_config && st.me().ip != a.ip {
        st.me_mut().ip = a.ip.clone();
    }
    {
        let me = st.me_mut();
        me.port = a.port;
        me.cport = a.cport;
        me.hostname = a.hostname.clone();
    }
    st.announce = a;
    let timeout = st.node_timeout;
    let handshake_timeout = timeout.max(1000);
    st.blacklist.retain(|_, until| *until > now / 1000);
    // Links, and handshakes that took too long.
    let names: Vec<String> = st.nodes.keys().cloned().collect();
    st.stats_pfail_nodes = 0;
    for name in &names {
        let Some(n) = st.nodes.get(name) else {
            continue;
        };
        if n.has(node::MYSELF) || n.has(node::NOADDR) {
            continue;
        }
        if n.has(node::PFAIL) {
            st.stats_pfail_nodes += 1;
        }
        if n.has(node::HANDSHAKE) && now.saturating_sub(n.ctime) > handshake_timeout {
            st.delete_node(name);
            continue;
        }
        if n.link.is_none() {
            let id = super::next_link_id();
            let addr = if n.ip.contains(':') {
                format!("[{}]:{}", n.ip, n.cport)
            } else {
                format!("{}:{}", n.ip, n.cport)
            };
            let (conn, connect) = link::new_outbound(id, addr);
            let kind = if n.has(node::MEET) {
                bus::MEET
            } else {
                bus::PING
            };
            let msg = ping(st, kind);
            let n = st.nodes.get_mut(name).expect("listed above");
            conn.send(msg);
            let old_ping_sent = n.ping_sent;
            if kind == bus::PING && old_ping_sent == 0 {
                n.ping_sent = now;
            }
            n.flags &= !node::MEET;
            n.link = Some(conn);
            n.link_ctime = now;
            st.fx.connect.push(connect);
        }
    }
    // Every second, PING the node with the oldest PONG among five picked at random.
    if st.cron_iterations.is_multiple_of(10) {
        let eligible: Vec<&Node> = st
            .nodes
            .values()
            .filter(|n| {
                n.link.is_some()
                    && n.ping_sent == 0
                    && n.flags & (node::MYSELF | node::HANDSHAKE) == 0
            })
            .collect();
        let mut oldest: Option<&Node> = None;
        for _ in 0..5.min(eligible.len()) {
            let n = eligible[rand::random::<usize>() % eligible.len()];
            if oldest.is_none_or(|o| n.pong_received < o.pong_received) {
                oldest = Some(n);
            }
        }
        if let Some(name) = oldest.map(|n| n.name.clone()) {
            send_ping_to(st, &name, now);
        }
    }
    for name in &names {
        let Some(n) = st.nodes.get(name) else {
            continue;
        };
        if n.flags & (node::MYSELF | node::NOADDR | node::HANDSHAKE) != 0 {
            continue;
        }
        let ping_delay = if n.ping_sent != 0 {
            now.saturating_sub(n.ping_sent)
        } else {
            0
        };
        let data_delay = now.saturating_sub(n.data_received);
        // A link that stopped answering is dropped and opened again (by the next
        // run), unless it was opened again recently.
        if n.link.is_some()
            && now.saturating_sub(n.link_ctime) > timeout
            && n.ping_sent != 0
            && ping_delay > timeout / 2
            && data_delay > timeout / 2
        {
            st.nodes.get_mut(name).expect("listed above").link = None;
        }
        let Some(n) = st.nodes.get(name) else {
            continue;
        };
        if n.link.is_some() && n.ping_sent == 0 && now.saturating_sub(n.pong_received) > timeout / 2
        {
            send_ping_to(st, name, now);
            continue;
        }
        let n = st.nodes.get_mut(name).expect("listed above");
        let delay = ping_delay.min(data_delay);
        if n.ping_sent != 0 && delay > timeout && n.flags & (node::PFAIL | node::FAIL) == 0 {
            crate::log::log(&format!("*** NODE {} possibly failing", n.name));
            n.flags |= node::PFAIL;
        }
    }
    handle_manual_failover(st, now);
    handle_replica_failover(st, cfg, now);
    handle_replica_migration(st, cfg, now);
    update_state(st, now);
}

/// A replica of a master with more working replicas than any other moves to a
/// master left with none (Redis's `clusterCron` tail and
/// `clusterHandleSlaveMigration`).
///
/// Orphaned: a working master with slots, no replica that is not FAIL, and the local
/// MIGRATE_TO flag (it had replicas, took over from a master that had, or got its
/// first slot while other masters had replicas). One replica moves, chosen without
/// messages: the cluster must be ok, our master must keep more working (neither
/// FAIL nor PFAIL) replicas than `cluster-migration-barrier`, we must have the
/// smallest name among the replicas of the masters with the most working replicas
/// (at least two), and the target must have been orphaned for 5 s, so that the
/// replicas of a failed-over master have time to announce their new master first.
fn handle_replica_migration(st: &mut State, cfg: &Config, now: u64) {
    const DELAY_MS: u64 = 5000;
    let me = st.me();
    let Some(my_master) = me.slaveof.clone().filter(|_| me.has(node::SLAVE)) else {
        return;
    };
    if !st.allow_replica_migration {
        return;
    }
    // Working replicas per master, we included.
    let mut ok_replicas: BTreeMap<&str, usize> = BTreeMap::new();
    for n in st.nodes.values().filter(|n| !n.has(node::FAIL)) {
        if let Some(m) = &n.slaveof {
            *ok_replicas.entry(m.as_str()).or_default() += 1;
        }
    }
    let ok_of = |n: &Node| ok_replicas.get(n.name.as_str()).copied().unwrap_or(0);
    let (mut orphans, mut max, mut mine) = (0, 0, 0);
    for n in st.nodes.values() {
        if n.flags & (node::MYSELF | node::NOADDR | node::HANDSHAKE) != 0
            || !n.is_master()
            || n.has(node::FAIL)
        {
            continue;
        }
        let ok = ok_of(n);
        if ok == 0 && n.numslots > 0 && n.has(node::MIGRATE_TO) {
            orphans += 1;
        }
        max = max.max(ok);
        if n.name == my_master {
            mine = ok;
        }
    }
    if orphans == 0 || max < 2 || mine != max || !st.ok {
        return;
    }
    let barrier = cfg.get_int("cluster-migration-barrier").max(0) as usize;
    let staying = st
        .nodes
        .values()
        .filter(|n| n.slaveof.as_deref() == Some(my_master.as_str()))
        .filter(|n| n.flags & (node::FAIL | node::PFAIL) == 0)
        .count();
    if staying <= barrier {
        return;
    }
    let mut target = None;
    let mut candidate = st.myself.as_str();
    let mut orphaned = Vec::new();
    for n in st.nodes.values() {
        let is_orphan =
            n.is_master() && !n.has(node::FAIL) && n.has(node::MIGRATE_TO) && ok_of(n) == 0;
        orphaned.push((n.name.clone(), is_orphan));
        if is_orphan && target.is_none() && n.numslots > 0 {
            target = Some(n.name.clone());
        }
        if n.is_master() && ok_of(n) == max {
            for r in st.nodes.values() {
                if r.slaveof.as_deref() == Some(n.name.as_str()) && r.name.as_str() < candidate {
                    candidate = r.name.as_str();
                }
            }
        }
    }
    let chosen = candidate == st.myself;
    drop(ok_replicas);
    for (name, is_orphan) in orphaned {
        let n = st.nodes.get_mut(&name).expect("listed above");
        n.orphaned_time = match (is_orphan, n.orphaned_time) {
            (false, _) => 0,
            (true, 0) => now,
            (true, t) => t,
        };
    }
    let Some(target) = target else {
        return;
    };
    if chosen && now.saturating_sub(st.nodes[&target].orphaned_time) > DELAY_MS {
        crate::log::warning(&format!("Migrating to orphaned master {target}"));
        set_master(st, &target);
    }
}

fn send_ping_to(st: &mut State, name: &str, now: u64) {
    let msg = ping(st, bus::PING);
    if let Some(n) = st.nodes.get_mut(name) {
        if let Some(l) = &n.link {
            l.send(msg);
            n.ping_sent = now;
        }
    }
}

/// The link a message came on must close (it belongs to a node we forgot, renamed
/// away or found at another address).
#[derive(Debug)]
pub struct CloseLink;

/// Handle one message (Redis's `clusterProcessPacket`); the messages to write back on
/// the same link.
pub fn process(st: &mut State, link: &LinkInfo, m: Message) -> Result<Vec<Vec<u8>>, CloseLink> {
    let now = crate::clock::now_ms();
    let h = &m.header;
    super::count_received(h.kind);
    let mut out = Vec::new();
    let sender_name = name_str(&h.sender);
    let link_node = if link.inbound {
        None
    } else {
        node_of_link(st, link.id)
    };
    if !link.inbound && link_node.is_none() {
        // Our outbound link whose node was forgotten or replaced.
        return Err(CloseLink);
    }
    let link_node_in_handshake = link_node
        .as_ref()
        .and_then(|n| st.nodes.get(n))
        .is_some_and(|n| n.has(node::HANDSHAKE));
    let sender: Option<String> = match &link_node {
        Some(n) if !link_node_in_handshake => Some(n.clone()),
        _ => st
            .nodes
            .get(&sender_name)
            .filter(|n| !n.has(node::HANDSHAKE))
            .map(|n| n.name.clone()),
    };
    let mut sender_config_epoch = 0;
    if let Some(s) = &sender {
        let n = st.nodes.get_mut(s).expect("looked up");
        n.data_received = now;
        sender_config_epoch = h.config_epoch;
        if h.current_epoch > st.current_epoch {
            st.current_epoch = h.current_epoch;
            st.fx.save_config = true;
        }
        let n = st.nodes.get_mut(s).expect("looked up");
        if h.config_epoch > n.config_epoch {
            n.config_epoch = h.config_epoch;
            st.fx.save_config = true;
        }
        n.repl_offset = h.offset;
    }
    if st.mf_end != 0
        && st.me().has(node::SLAVE)
        && sender.is_some()
        && st.me().slaveof == sender
        && h.mflags[0] & bus::FLAG0_PAUSED != 0
        && st.mf_master_offset.is_none()
    {
        st.mf_master_offset = Some(h.offset);
        crate::log::warning(&format!(
            "Received replication offset for paused master manual failover: {}",
            h.offset
        ));
    }
    let is_ping = matches!(h.kind, bus::PING | bus::MEET);
    if is_ping {
        // Learn our own IP from the address the other node reached us at.
        if (h.kind == bus::MEET || st.me().ip.is_empty())
            && !st.announce.from_config
            && !link.local_ip.is_empty()
            && st.me().ip != link.local_ip
        {
            st.me_mut().ip = link.local_ip.clone();
            crate::log::warning(&format!(
                "IP address for this node updated to {}",
                link.local_ip
            ));
            st.fx.save_config = true;
        }
        if sender.is_none() && h.kind == bus::MEET {
            let mut n = Node::new(node::random_name(), node::HANDSHAKE, now);
            n.ip = if h.myip.is_empty() {
                link.peer_ip.clone()
            } else {
                h.myip.clone()
            };
            n.port = h.port;
            n.pport = h.pport;
            n.cport = h.cport;
            st.nodes.insert(n.name.clone(), n);
            st.fx.save_config = true;
            if let Body::Ping { gossip, .. } = &m.body {
                process_gossip(st, None, gossip, now);
            }
        }
        out.push(ping(st, bus::PONG));
    }
    if matches!(h.kind, bus::PING | bus::PONG | bus::MEET) {
        if let Some(ln) = link_node.clone() {
            if link_node_in_handshake {
                if let Some(s) = &sender {
                    // We already know it: the handshake node was a duplicate.
                    update_address(st, s, &ln, h);
                    st.delete_node(&ln);
                    return Err(CloseLink);
                }
                rename_node(st, &ln, &sender_name);
                let n = st.nodes.get_mut(&sender_name).expect("renamed");
                n.flags &= !node::HANDSHAKE;
                n.flags |= h.flags & (node::MASTER | node::SLAVE);
                st.fx.save_config = true;
                crate::log::log(&format!("Handshake with node {sender_name} completed."));
            } else if ln != sender_name {
                // The node at this address is not the one we knew there.
                let n = st.nodes.get_mut(&ln).expect("link node");
                n.flags |= node::NOADDR;
                n.ip.clear();
                n.port = 0;
                n.pport = 0;
                n.cport = 0;
                n.link = None;
                st.fx.save_config = true;
                return Err(CloseLink);
            }
        }
        let sender = st
            .nodes
            .get(&sender_name)
            .filter(|n| !n.has(node::HANDSHAKE))
            .map(|n| n.name.clone());
        if let Some(s) = &sender {
            let n = st.nodes.get_mut(s).expect("known");
            n.flags = (n.flags & !node::NOFAILOVER) | (h.flags & node::NOFAILOVER);
            // A PING on a link of its own: the address it comes from is its address.
            if h.kind == bus::PING && link.inbound {
                let ip = if h.myip.is_empty() {
                    link.peer_ip.clone()
                } else {
                    h.myip.clone()
                };
                if !ip.is_empty() {
                    set_address(st, s, ip, h);
                }
            }
        }
        if !link.inbound && h.kind == bus::PONG {
            if let Some(n) = node_of_link(st, link.id).and_then(|n| st.nodes.get_mut(&n)) {
                n.pong_received = now;
                n.ping_sent = 0;
                if n.has(node::PFAIL) {
                    n.flags &= !node::PFAIL;
                } else if n.has(node::FAIL) {
                    clear_failure_if_needed(n, st.node_timeout, now);
                }
            }
        }
        if let Some(s) = &sender {
            // Master or replica, as the sender says.
            if h.slaveof == [0; node::NAMELEN] {
                if st.set_node_as_master(s) {
                    st.fx.save_config = true;
                }
            } else {
                let master = name_str(&h.slaveof);
                let n = st.nodes.get_mut(s).expect("known");
                if n.is_master() {
                    n.flags = (n.flags & !(node::MASTER | node::MIGRATE_TO)) | node::SLAVE;
                    st.fx.save_config = true;
                    for slot in 0..SLOTS {
                        if st.slots[slot].as_deref() == Some(s.as_str()) {
                            st.assign(slot, None);
                        }
                    }
                }
                let known = st.nodes.contains_key(&master);
                if known && st.nodes[s].slaveof.as_deref() != Some(master.as_str()) {
                    st.set_replica_of(s, Some(&master));
                    st.fx.save_config = true;
                }
            }
            // Slots: a master claiming slots we think are elsewhere.
            let sender_master = {
                let n = &st.nodes[s];
                if n.is_master() {
                    Some(s.clone())
                } else {
                    n.slaveof.clone()
                }
            };
            let dirty = sender_master
                .as_ref()
                .and_then(|m| st.nodes.get(m))
                .is_some_and(|m| m.slots != h.myslots);
            if dirty && st.nodes[s].is_master() {
                update_slots_config_with(st, s, sender_config_epoch, &h.myslots, now);
            }
            if dirty {
                // Tell a sender with stale claims who owns the slot now.
                for slot in 0..SLOTS {
                    if !node::slot_bit(&h.myslots, slot) {
                        continue;
                    }
                    let Some(owner) = st.slots[slot].clone() else {
                        continue;
                    };
                    if owner == *s {
                        continue;
                    }
                    if st.nodes[&owner].config_epoch > sender_config_epoch {
                        let msg = update_message(st, &owner);
                        if let Some(l) = &st.nodes[s].link {
                            l.send(msg);
                        }
                        break;
                    }
                }
            }
            let me = st.me();
            if me.is_master() && st.nodes[s].is_master() && sender_config_epoch == me.config_epoch {
                handle_epoch_collision(st, s);
            }
            if let Body::Ping { gossip, hostname } = &m.body {
                process_gossip(st, Some(s), gossip, now);
                let n = st.nodes.get_mut(s).expect("known");
                let host = hostname.clone().unwrap_or_default();
                if n.hostname != host {
                    n.hostname = host;
                    st.fx.save_config = true;
                }
            }
        }
    } else if h.kind == bus::FAIL {
        if let (Some(_), Body::Fail { about }) = (&sender, &m.body) {
            let failing = name_str(about);
            if let Some(n) = st.nodes.get_mut(&failing) {
                if n.flags & (node::FAIL | node::MYSELF) == 0 {
                    crate::log::log(&format!(
                        "FAIL message received from {sender_name} about {failing}"
                    ));
                    n.flags |= node::FAIL;
                    n.fail_time = now;
                    n.flags &= !node::PFAIL;
                    st.fx.save_config = true;
                }
            }
        }
    } else if matches!(h.kind, bus::PUBLISH | bus::PUBLISHSHARD) {
        if let (Some(_), Body::Publish { channel, message }) = (&sender, m.body) {
            let kind = if h.kind == bus::PUBLISH {
                crate::client::Subscription::Channel
            } else {
                crate::client::Subscription::ShardChannel
            };
            st.fx.published.push((kind, channel.into(), message.into()));
        }
    } else if h.kind == bus::MFSTART {
        // One of our replicas asks for a manual failover: pause writers, and tell it
        // our offset in PINGs flagged PAUSED.
        let mine = sender
            .as_ref()
            .and_then(|s| st.nodes.get(s))
            .is_some_and(|n| n.slaveof.as_deref() == Some(st.myself.as_str()));
        if mine {
            crate::log::warning(&format!(
                "Manual failover requested by replica {sender_name}."
            ));
            reset_manual_failover(st);
            st.mf_end = now + MF_TIMEOUT;
            st.mf_replica = sender.clone();
            st.fx.pause_writes_until = Some(now + MF_TIMEOUT * 2);
            let msg = ping(st, bus::PING);
            if let Some(l) = sender.as_ref().and_then(|s| st.nodes[s].link.as_ref()) {
                l.send(msg);
            }
        }
    } else if h.kind == bus::FAILOVER_AUTH_REQUEST {
        if let Some(s) = &sender {
            vote_for_replica(st, s, h, now);
        }
    } else if h.kind == bus::FAILOVER_AUTH_ACK {
        // A vote counts from a master with slots, in our election's epoch.
        let voter_ok = sender
            .as_ref()
            .and_then(|s| st.nodes.get(s))
            .is_some_and(|n| n.is_master() && n.numslots > 0);
        if voter_ok && h.current_epoch >= st.failover_auth_epoch {
            st.failover_auth_count += 1;
        }
    } else if h.kind == bus::UPDATE {
        if let (
            Some(_),
            Body::Update {
                config_epoch,
                name,
                slots,
            },
        ) = (&sender, &m.body)
        {
            let owner = name_str(name);
            let known = st.nodes.get(&owner).map(|n| n.config_epoch);
            if let Some(epoch) = known {
                if epoch < *config_epoch {
                    st.set_node_as_master(&owner);
                    st.nodes.get_mut(&owner).expect("known").config_epoch = *config_epoch;
                    update_slots_config_with(st, &owner, *config_epoch, slots, now);
                    st.fx.save_config = true;
                }
            }
        }
    }
    update_state(st, now);
    Ok(out)
}

fn update_address(st: &mut State, known: &str, handshake: &str, h: &Header) {
    let ip = st.nodes[handshake].ip.clone();
    set_address(st, known, ip, h);
}

/// A node's address changed (Redis's `nodeUpdateAddressIfNeeded`): its link is
/// dropped, to be opened again at the new address.
fn set_address(st: &mut State, name: &str, ip: String, h: &Header) {
    let n = st.nodes.get_mut(name).expect("known");
    if n.ip != ip || n.port != h.port || n.cport != h.cport {
        n.ip = ip;
        n.port = h.port;
        n.cport = h.cport;
        n.link = None;
        n.flags &= !node::NOADDR;
        st.fx.save_config = true;
    }
}

fn rename_node(st: &mut State, old: &str, new: &str) {
    if let Some(mut n) = st.nodes.remove(old) {
        n.name = new.to_string();
        for s in 0..SLOTS {
            if st.slots[s].as_deref() == Some(old) {
                st.slots[s] = Some(new.to_string());
            }
        }
        st.nodes.insert(new.to_string(), n);
    }
}

/// Gossip about other nodes: failure reports (from masters), newer PONG times, and
/// nodes we did not know (Redis's `clusterProcessGossipSection`).
fn process_gossip(st: &mut State, sender: Option<&String>, gossip: &[Gossip], now: u64) {
    let sender_is_master = sender
        .and_then(|s| st.nodes.get(s))
        .is_some_and(|n| n.is_master());
    for g in gossip {
        let name = name_str(&g.name);
        if st.nodes.contains_key(&name) {
            if sender_is_master && name != st.myself {
                let s = sender.expect("checked").clone();
                let n = st.nodes.get_mut(&name).expect("known");
                if g.flags & (node::FAIL | node::PFAIL) != 0 {
                    match n.fail_reports.iter_mut().find(|(by, _)| *by == s) {
                        Some(r) => r.1 = now,
                        None => n.fail_reports.push((s, now)),
                    }
                    mark_failing_if_needed(st, &name, now);
                } else {
                    n.fail_reports.retain(|(by, _)| *by != s);
                }
            }
            let timeout = st.node_timeout;
            let n = st.nodes.get_mut(&name).expect("known");
            let valid_reports = n
                .fail_reports
                .iter()
                .filter(|(_, t)| now.saturating_sub(*t) <= timeout * 2)
                .count();
            if g.flags & (node::FAIL | node::PFAIL) == 0 && n.ping_sent == 0 && valid_reports == 0 {
                let pong = g.pong_received as u64 * 1000;
                if pong <= now + 500 && pong > n.pong_received {
                    n.pong_received = pong;
                }
            }
            if n.flags & (node::FAIL | node::PFAIL) != 0
                && g.flags & node::NOADDR == 0
                && g.flags & (node::FAIL | node::PFAIL) == 0
                && (n.ip != g.ip || n.port != g.port || n.cport != g.cport)
            {
                n.link = None;
                n.ip = g.ip.clone();
                n.port = g.port;
                n.pport = g.pport;
                n.cport = g.cport;
                n.flags &= !node::NOADDR;
            }
        } else if sender.is_some()
            && g.flags & node::NOADDR == 0
            && !st.blacklist.contains_key(&name)
            && name.len() == node::NAMELEN
        {
            let mut n = Node::new(name.clone(), g.flags & !(node::MYSELF), now);
            n.ip = g.ip.clone();
            n.port = g.port;
            n.pport = g.pport;
            n.cport = g.cport;
            st.nodes.insert(name, n);
            st.fx.save_config = true;
        }
    }
}

/// PFAIL becomes FAIL once a majority of the masters (us included, if a master)
/// report it; then everyone is told.
fn mark_failing_if_needed(st: &mut State, name: &str, now: u64) {
    let needed = st.size / 2 + 1;
    let timeout = st.node_timeout;
    let me_master = st.me().is_master();
    let Some(n) = st.nodes.get_mut(name) else {
        return;
    };
    if !n.has(node::PFAIL) || n.has(node::FAIL) {
        return;
    }
    n.fail_reports
        .retain(|(_, t)| now.saturating_sub(*t) <= timeout * 2);
    let failures = n.fail_reports.len() + usize::from(me_master);
    if failures < needed {
        return;
    }
    crate::log::log(&format!("Marking node {name} as failing (quorum reached)."));
    n.flags &= !node::PFAIL;
    n.flags |= node::FAIL;
    n.fail_time = now;
    let mut h = header(st, bus::FAIL);
    h.count = 0;
    let msg = bus::encode(
        &h,
        &Body::Fail {
            about: name_bytes(name),
        },
    );
    broadcast(st, &msg);
    st.fx.save_config = true;
}

/// A FAIL that no longer holds: a replica or slot-less master at once, a master with
/// slots after twice the node timeout with nobody taking them.
fn clear_failure_if_needed(n: &mut Node, timeout: u64, now: u64) {
    if n.has(node::SLAVE) || n.numslots == 0 {
        crate::log::log(&format!(
            "Clear FAIL state for node {}: is reachable again.",
            n.name
        ));
        n.flags &= !node::FAIL;
    } else if now.saturating_sub(n.fail_time) > timeout * 2 {
        crate::log::log(&format!(
            "Clear FAIL state for node {}: is reachable again and nobody is serving its slots after some time.",
            n.name
        ));
        n.flags &= !node::FAIL;
    }
}

/// Give `sender` the slots it claims whose owners have an older config epoch
/// (Redis's `clusterUpdateSlotsConfigWith`).
pub fn update_slots_config_with(st: &mut State, sender: &str, epoch: u64, slots: &[u8], _now: u64) {
    if sender == st.myself {
        return;
    }
    let me = st.me();
    let cur_master = if me.is_master() {
        Some(st.myself.clone())
    } else {
        me.slaveof.clone()
    };
    let mut took_ours = 0;
    let mut lost = Vec::new();
    for slot in 0..SLOTS {
        if !node::slot_bit(slots, slot) {
            continue;
        }
        // (Every message from a master lands here: the common case, the slot already
        // the sender's, costs one comparison and no allocation.)
        if st.slots[slot].as_deref() == Some(sender) {
            continue;
        }
        let owner = st.slots[slot].clone();
        // A slot we are importing changes hands only by SETSLOT, even when its old
        // owner already advertises the new one.
        if st.importing.contains_key(&slot) {
            continue;
        }
        let older = match &owner {
            None => true,
            Some(o) => st.nodes.get(o).is_none_or(|n| n.config_epoch < epoch),
        };
        if older {
            if owner.is_some() && owner == cur_master {
                took_ours += 1;
            }
            if owner.as_deref() == Some(st.myself.as_str()) {
                lost.push(slot as u16);
            }
            st.assign(slot, Some(sender));
            st.fx.save_config = true;
        }
    }
    // Our master (or we) lost every slot to the sender: follow the sender, as the
    // replicas of a failed-over master do (Redis's clusterSetMaster here).
    let emptied = cur_master
        .as_ref()
        .and_then(|m| st.nodes.get(m))
        .is_some_and(|m| m.numslots == 0);
    if took_ours > 0 && emptied {
        crate::log::log(&format!(
            "Configuration change detected. Reconfiguring myself as a replica of {sender}"
        ));
        set_master(st, sender);
        return;
    }
    if !lost.is_empty() {
        crate::log::warning(&format!(
            "{} slot(s) of this node were taken over by {sender} (higher config epoch): their keys are deleted",
            lost.len()
        ));
        st.fx.lost_slots.extend(lost);
    }
}

/// Become a replica of `master` (Redis's `clusterSetMaster`): our slots go, the
/// replication link starts.
pub fn set_master(st: &mut State, master: &str) {
    let mine: Vec<usize> = (0..SLOTS)
        .filter(|s| st.slots[*s].as_deref() == Some(st.myself.as_str()))
        .collect();
    for s in mine {
        st.assign(s, None);
    }
    let me = st.me_mut();
    me.flags = (me.flags & !(node::MASTER | node::MIGRATE_TO)) | node::SLAVE;
    let myself = st.myself.clone();
    st.set_replica_of(&myself, Some(master));
    let addr = st.nodes.get(master).map(|m| (m.ip.clone(), m.port));
    st.fx.replicate = addr.map(Some);
    st.failover_auth_time = 0;
    st.failover_auth_sent = false;
    reset_manual_failover(st);
    st.fx.save_config = true;
}

/// "Currently unable to failover: <why>" (Redis's `clusterLogCantFailover`): again
/// only when the reason changes or after 10 s, and not in the first node timeout +
/// 5 s after the master was marked failed.
fn log_cant_failover(st: &mut State, now: u64, master_fail_time: u64, why: &'static str) {
    let (last, reason) = st.cant_failover_logged;
    if reason == why && now.saturating_sub(last) < 10_000 {
        return;
    }
    st.cant_failover_logged.1 = why;
    if now.saturating_sub(master_fail_time) < st.node_timeout + 5000 {
        return;
    }
    st.cant_failover_logged.0 = now;
    crate::log::warning(&format!("Currently unable to failover: {why}"));
}

/// A replica of a failed master with slots: wait a delay that grows with our rank
/// (replicas with less data wait longer), ask the masters for their votes in a new
/// epoch, and take over once a majority voted (Redis's `clusterHandleSlaveFailover`).
pub fn handle_replica_failover(st: &mut State, cfg: &Config, now: u64) {
    let me = st.me();
    let Some(master) = me.slaveof.clone() else {
        return;
    };
    if !me.has(node::SLAVE)
        || me.has(node::NOFAILOVER)
        || cfg.get_bool("cluster-replica-no-failover")
    {
        return;
    }
    let Some(m) = st.nodes.get(&master) else {
        return;
    };
    let manual = st.mf_end != 0 && st.mf_can_start;
    if (!m.has(node::FAIL) && !manual) || m.numslots == 0 {
        return;
    }
    let master_fail_time = m.fail_time;
    // `cluster-replica-validity-factor`: a replica cut off from its master for too
    // long has data too old to take over with (a manual failover still may).
    let mut data_age = st.repl_data_age_ms;
    if data_age > st.node_timeout {
        data_age -= st.node_timeout;
    }
    let factor = cfg.get_int("cluster-replica-validity-factor").max(0) as u64;
    let ping_period = cfg.get_int("repl-ping-replica-period").max(0) as u64 * 1000;
    if factor > 0 && data_age > ping_period + st.node_timeout * factor && !manual {
        log_cant_failover(
            st,
            now,
            master_fail_time,
            "Disconnected from master for longer than allowed. Please check the 'cluster-replica-validity-factor' configuration option.",
        );
        return;
    }
    let auth_timeout = (st.node_timeout * 2).max(2000);
    let retry = auth_timeout * 2;
    if now.saturating_sub(st.failover_auth_time) > retry
        || st.failover_auth_time == 0
        || (manual && !st.failover_auth_sent && now > st.failover_auth_time + auth_timeout)
    {
        // Rank: replicas of the same master with a larger offset go first.
        let my_offset = st.repl_offset;
        let rank = st
            .nodes
            .values()
            .filter(|n| n.slaveof.as_deref() == Some(master.as_str()) && n.name != st.myself)
            .filter(|n| n.repl_offset > my_offset)
            .count() as u64;
        st.failover_auth_time = if manual {
            // A manual failover starts its election at once.
            now
        } else {
            now + 500 + rand::random::<u64>() % 500 + rank * 1000
        };
        st.failover_auth_count = 0;
        st.failover_auth_sent = false;
        crate::log::warning(&format!(
            "Start of election delayed for {} milliseconds (rank #{rank}, offset {my_offset}).",
            st.failover_auth_time - now
        ));
        broadcast_pong(st);
        return;
    }
    if now < st.failover_auth_time || now - st.failover_auth_time > auth_timeout {
        return;
    }
    if !st.failover_auth_sent {
        st.current_epoch += 1;
        st.failover_auth_epoch = st.current_epoch;
        crate::log::warning(&format!(
            "Starting a failover election for epoch {}.",
            st.current_epoch
        ));
        let mut h = header(st, bus::FAILOVER_AUTH_REQUEST);
        // The slots we claim are our master's.
        h.myslots = st.nodes[&master].slots.clone();
        if manual {
            h.mflags[0] |= bus::FLAG0_FORCEACK;
        }
        broadcast(st, &bus::encode(&h, &Body::Other));
        st.failover_auth_sent = true;
        st.fx.save_config = true;
        return;
    }
    let majority = st.size / 2 + 1;
    if st.failover_auth_count >= majority {
        crate::log::warning("Failover election won: I'm the new master.");
        replace_master(st, &master, now);
    }
}

/// We won the election: take every slot of our old master, with the election's epoch,
/// and tell everyone.
fn replace_master(st: &mut State, old: &str, now: u64) {
    let slots: Vec<usize> = (0..SLOTS)
        .filter(|s| st.slots[*s].as_deref() == Some(old))
        .collect();
    let epoch = st.failover_auth_epoch;
    let myself = st.myself.clone();
    st.set_node_as_master(&myself);
    st.me_mut().config_epoch = epoch;
    for s in slots {
        st.assign(s, Some(&myself));
    }
    st.fx.replicate = Some(None);
    st.fx.save_config = true;
    reset_manual_failover(st);
    update_state(st, now);
    broadcast_pong(st);
}

/// End a manual failover; a master that paused its writers for it lets them go.
pub fn reset_manual_failover(st: &mut State) {
    if st.mf_replica.is_some() {
        st.fx.unpause = true;
    }
    st.mf_end = 0;
    st.mf_can_start = false;
    st.mf_master_offset = None;
    st.mf_replica = None;
}

/// How long a manual failover may take (Redis's `CLUSTER_MF_TIMEOUT`).
pub const MF_TIMEOUT: u64 = 5000;

/// CLUSTER FAILOVER [FORCE|TAKEOVER] on a replica (Redis's `clusterCommand`): TAKEOVER
/// takes the slots at once with a new epoch; FORCE starts an election the masters
/// join though the master is alive; the default asks the master to pause its writers
/// (MFSTART) and starts the election once this replica has caught up.
pub fn manual_failover(
    st: &mut State,
    force: bool,
    takeover: bool,
    now: u64,
) -> Result<(), &'static str> {
    let me = st.me();
    if me.is_master() {
        return Err("ERR You should send CLUSTER FAILOVER to a replica");
    }
    let Some(master) = me.slaveof.clone().filter(|m| st.nodes.contains_key(m)) else {
        return Err("ERR I'm a replica but my master is unknown to me");
    };
    let m = &st.nodes[&master];
    if !force && !takeover && (m.has(node::FAIL) || m.link.is_none()) {
        return Err("ERR Master is down or failed, please use CLUSTER FAILOVER FORCE");
    }
    reset_manual_failover(st);
    st.mf_end = now + MF_TIMEOUT;
    if takeover {
        crate::log::warning("Taking over the master (user request).");
        st.current_epoch += 1;
        st.failover_auth_epoch = st.current_epoch;
        replace_master(st, &master, now);
    } else if force {
        crate::log::warning("Forced failover user request accepted.");
        st.mf_can_start = true;
    } else {
        crate::log::warning("Manual failover user request accepted.");
        let msg = bus::encode(&header(st, bus::MFSTART), &Body::Other);
        if let Some(l) = &st.nodes[&master].link {
            l.send(msg);
        }
    }
    Ok(())
}

/// A manual failover's progress in the cron: give up after its timeout; a replica
/// starts the election once it has the offset its paused master announced.
fn handle_manual_failover(st: &mut State, now: u64) {
    if st.mf_end == 0 {
        return;
    }
    if now > st.mf_end {
        crate::log::warning("Manual failover timed out.");
        reset_manual_failover(st);
        return;
    }
    if st.me().has(node::SLAVE) && !st.mf_can_start {
        if let Some(off) = st.mf_master_offset {
            if st.repl_offset >= off {
                st.mf_can_start = true;
                crate::log::warning(
                    "All master replication stream processed, manual failover can start.",
                );
            }
        }
    }
}

/// A replica asks for our vote (Redis's `clusterSendFailoverAuthIfNeeded`): a master
/// with slots votes once per epoch, for a replica of a master it sees as failed, not
/// twice for the same master within twice the node timeout, and only if no slot it
/// claims has a newer owner.
fn vote_for_replica(st: &mut State, sender: &str, h: &Header, now: u64) {
    let me = st.me();
    if !me.is_master() || me.numslots == 0 {
        return;
    }
    if h.current_epoch < st.current_epoch || st.last_vote_epoch == st.current_epoch {
        return;
    }
    let Some(master) = st.nodes.get(sender).and_then(|n| n.slaveof.clone()) else {
        return;
    };
    if st.nodes[sender].is_master() {
        return;
    }
    let Some(m) = st.nodes.get(&master) else {
        return;
    };
    let force = h.mflags[0] & bus::FLAG0_FORCEACK != 0;
    if (!m.has(node::FAIL) && !force) || now.saturating_sub(m.voted_time) < st.node_timeout * 2 {
        return;
    }
    for slot in 0..SLOTS {
        if !node::slot_bit(&h.myslots, slot) {
            continue;
        }
        let newer = st.slots[slot]
            .as_ref()
            .and_then(|o| st.nodes.get(o))
            .is_some_and(|o| o.config_epoch > h.config_epoch);
        if newer {
            return;
        }
    }
    st.last_vote_epoch = st.current_epoch;
    st.nodes.get_mut(&master).expect("known").voted_time = now;
    st.fx.save_config = true;
    crate::log::warning(&format!(
        "Failover auth granted to {sender} for epoch {}",
        st.current_epoch
    ));
    let ack = bus::encode(&header(st, bus::FAILOVER_AUTH_ACK), &Body::Other);
    if let Some(l) = &st.nodes[sender].link {
        l.send(ack);
    }
}

fn update_message(st: &State, owner: &str) -> Vec<u8> {
    let n = &st.nodes[owner];
    bus::encode(
        &header(st, bus::UPDATE),
        &Body::Update {
            config_epoch: n.config_epoch,
            name: name_bytes(owner),
            slots: n.slots.clone(),
        },
    )
}

/// Two masters with the same config epoch: the one with the smaller name takes a new
/// epoch (Redis's `clusterHandleConfigEpochCollision`).
fn handle_epoch_collision(st: &mut State, sender: &str) {
    if sender <= st.myself.as_str() {
        return;
    }
    st.current_epoch += 1;
    let e = st.current_epoch;
    st.me_mut().config_epoch = e;
    st.fx.save_config = true;
    crate::log::log(&format!(
        "WARNING: configEpoch collision with node {sender}. configEpoch set to {e}"
    ));
}

/// `cluster_state`: ok when every slot is served by a reachable master (unless
/// `cluster-require-full-coverage no`) and we see a majority of the masters.
pub fn update_state(st: &mut State, _now: u64) {
    let mut ok = true;
    if st.require_full_coverage {
        // Every slot has an owner not FAIL: the owners' counts add up to all slots.
        let covered: usize = st
            .nodes
            .values()
            .filter(|n| !n.has(node::FAIL))
            .map(|n| n.numslots)
            .sum();
        ok = covered == SLOTS;
    }
    let masters: Vec<&Node> = st
        .nodes
        .values()
        .filter(|n| n.is_master() && n.numslots > 0)
        .collect();
    st.size = masters.len();
    let reachable = masters
        .iter()
        .filter(|n| n.flags & (node::FAIL | node::PFAIL) == 0)
        .count();
    if reachable < st.size / 2 + 1 {
        ok = false;
    }
    if ok != st.ok {
        crate::log::warning(&format!(
            "Cluster state changed: {}",
            if ok { "ok" } else { "fail" }
        ));
    }
    st.set_ok(ok);
}

/// Delete the keys of slots this node no longer serves, on every shard.
pub fn delete_keys_in_slots(shards: &Shards, slots: Vec<u16>) {
    let shards = shards.detached();
    crate::runtime::backend::spawn(async move {
        shards
            .all(move |sh| {
                let db = sh.db(0);
                for &slot in &slots {
                    for k in db.keys_in_slot(slot, usize::MAX) {
                        db.remove(&k);
                    }
                }
            })
            .await;
    })
    .detach();
}
