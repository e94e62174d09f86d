//! Cluster mode (`cluster-enabled yes`): this process is one node of a Redis Cluster.
//! Its slots are spread over its cores as in standalone mode; other nodes (Shardis or
//! redis-server) see an ordinary node, over a bus that speaks Redis 7.0's `clusterMsg`.
//!
//! # The plan
//!
//! **One view per process.** What the node knows of the cluster (its own name, the
//! current epoch, every node with its flags, address, config epoch and slots, the owner
//! of each slot) is one [`State`] behind one mutex, as in Redis's `clusterState`.
//! Three kinds of step change it: the cron (every 100 ms on core 0: links, PINGs,
//! failure detection, the cluster state), a message arriving on a bus link
//! (`gossip::process`), and a CLUSTER command. Steps do not wait on the network under
//! the lock: messages to other nodes go to their link's queue, links to open and the
//! nodes.conf rewrite are carried out by [`with`] once the lock is released.
//!
//! **The data path reads no lock.** Which slots this node serves is mirrored in an
//! atomic bitmap ([`serves`]); a request whose keys hash to one slot we serve runs
//! without looking further. Only a request for a slot served elsewhere, unassigned,
//! or spanning slots locks the state to build its redirection (`redirect`), with
//! Redis's errors: `-MOVED slot ip:port`, `-CROSSSLOT`, `-CLUSTERDOWN`.
//!
//! **The bus is Redis's protocol** (`bus` for the bytes, `gossip` for the rules of
//! `cluster.c`): MEET to join, PING/PONG every second to a random node and to any
//! node not heard from in half the node timeout, a few gossip sections per message,
//! PFAIL after the node timeout and FAIL once a majority of masters report it, FAIL
//! broadcast, slot ownership decided by config epoch (UPDATE messages for stale
//! owners, and the collision rule when two masters share one).
//!
//! **Replicas** (CLUSTER REPLICATE) replicate through the ordinary replication link;
//! when their master is FAIL they run Redis's election (`gossip::
//! handle_replica_failover`): a delay by rank, votes asked of the masters in a new
//! epoch, and a winner that takes the master's slots with that epoch, after which the
//! other replicas follow it (`update_slots_config_with`).
//!
//! CLUSTER FAILOVER runs the same election with FORCEACK (TAKEOVER skips it), after
//! MFSTART has paused the master's writers and the replica caught up with the offset
//! the master then announces (default mode).
//!
//! **Slot migration** (SETSLOT MIGRATING / IMPORTING, then MIGRATE, then SETSLOT
//! NODE, as `redis-cli --cluster reshard` drives it): the open slots are kept in the
//! state and nodes.conf, and mirrored in a second atomic bitmap ([`open`]) so that a
//! request on a stable slot still reads no lock. A request on an open slot is routed
//! by [`route`]; whether it gets `-ASK` or `-TRYAGAIN` depends on which of its keys
//! exist, which only the shard owning the slot knows: that shard makes the
//! [`SlotCheck`] just before it runs the request, in the same job, so no command can
//! come between the check and the run (MIGRATE claims its keys for its whole
//! exchange, so a command on them waits, then finds them gone and is sent on).
//!
//! The keys of each slot are indexed per shard (`storage::db::SlotKeys`), so the
//! slot commands a migration drives cost what they return.
//!
//! **Replica migration** (`gossip::handle_replica_migration`): a master left with no
//! working replica, that had one or took over from one that had, is orphaned; after
//! 5 s, one replica of a master with the most working replicas (at least two, and
//! more than `cluster-migration-barrier`) moves to it: the one with the smallest
//! name, so that the replicas agree without messages.

pub mod bus;
pub mod gossip;
pub mod link;
pub mod node;
pub mod nodes_conf;

use crate::runtime::slots::SLOTS;
use crate::runtime::Shards;
use node::Node;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// True when `cluster-enabled yes`.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The slots this node serves, one bit each (the data path's lock-free view).
static SERVED: [AtomicU64; SLOTS / 64] = [const { AtomicU64::new(0) }; SLOTS / 64];
/// The cluster state is `ok` (else every key command gets `-CLUSTERDOWN`).
static STATE_OK: AtomicBool = AtomicBool::new(false);
/// Slots being migrated to or imported from another node, one bit each: requests on
/// them take the slow path, which may check that their keys are here.
static OPEN: [AtomicU64; SLOTS / 64] = [const { AtomicU64::new(0) }; SLOTS / 64];
static NEXT_LINK: AtomicU64 = AtomicU64::new(1);
static SENT: [AtomicU64; bus::TYPES] = [const { AtomicU64::new(0) }; bus::TYPES];
static RECEIVED: [AtomicU64; bus::TYPES] = [const { AtomicU64::new(0) }; bus::TYPES];

pub fn serves(slot: u16) -> bool {
    SERVED[slot as usize / 64].load(Ordering::Relaxed) & (1 << (slot % 64)) != 0
}

/// True while `slot` is being migrated or imported (CLUSTER SETSLOT MIGRATING/IMPORTING).
pub fn open(slot: u16) -> bool {
    OPEN[slot as usize / 64].load(Ordering::Relaxed) & (1 << (slot % 64)) != 0
}

pub fn state_ok() -> bool {
    STATE_OK.load(Ordering::Relaxed)
}

pub fn next_link_id() -> u64 {
    NEXT_LINK.fetch_add(1, Ordering::Relaxed)
}

/// Count the messages of a write by type (CLUSTER INFO's stats).
pub fn count_sent(buf: &[u8]) {
    let mut at = 0;
    while let Some(len) = bus::claimed_len(&buf[at..]) {
        if len < 16 || buf.len() < at + len {
            break;
        }
        let t = u16::from_be_bytes([buf[at + 12], buf[at + 13]]) as usize;
        if t < bus::TYPES {
            SENT[t].fetch_add(1, Ordering::Relaxed);
        }
        at += len;
    }
}

pub fn count_received(kind: u16) {
    if (kind as usize) < bus::TYPES {
        RECEIVED[kind as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// (sent, received) message counts by type.
pub fn message_stats() -> Vec<(usize, u64, u64)> {
    (0..bus::TYPES)
        .map(|t| {
            (
                t,
                SENT[t].load(Ordering::Relaxed),
                RECEIVED[t].load(Ordering::Relaxed),
            )
        })
        .collect()
}

/// What a step decided to do once the lock is released.
#[derive(Default)]
pub struct Effects {
    pub connect: Vec<link::Connect>,
    pub save_config: bool,
    /// Slots this node lost to another owner: their keys are deleted.
    pub lost_slots: Vec<u16>,
    /// Start replicating from this address (we became a replica, or our master
    /// changed), or promote ourselves (`None` inside): Redis's `replicationSetMaster`
    /// and `replicationUnsetMaster`.
    pub replicate: Option<Option<(String, u16)>>,
    /// Pause writes until this unix time in ms (a manual failover's master side),
    /// or end that pause.
    pub pause_writes_until: Option<u64>,
    pub unpause: bool,
    /// Messages other nodes published (PUBLISH over the bus), to deliver here.
    pub published: Vec<(crate::client::Subscription, bytes::Bytes, bytes::Bytes)>,
}

/// The node's view of the cluster (Redis's `clusterState`).
pub struct State {
    pub myself: String,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
    pub nodes: BTreeMap<String, Node>,
    /// The owner of each slot.
    pub slots: Vec<Option<String>>,
    /// Slots we own and are moving to another node (SETSLOT MIGRATING), and slots we
    /// are receiving from another (SETSLOT IMPORTING): Redis's `migrating_slots_to`
    /// and `importing_slots_from`. Change them with [`State::set_migrating`] and
    /// [`State::set_importing`], which keep the data path's bitmap in step.
    pub migrating: BTreeMap<usize, String>,
    pub importing: BTreeMap<usize, String>,
    pub ok: bool,
    /// Masters serving at least one slot.
    pub size: usize,
    /// Nodes forgotten with CLUSTER FORGET, until when (their gossip is ignored).
    pub blacklist: BTreeMap<String, u64>,
    pub config_file: String,
    /// The epochs (current, last vote, ours) as last saved: a save that changes them
    /// is fsynced.
    pub saved_epochs: (u64, u64, u64),
    pub stats_pfail_nodes: usize,
    /// A replica's election (Redis's `failover_auth_*`): when it may ask for votes,
    /// whether it did, in which epoch, and the votes it got.
    pub failover_auth_time: u64,
    pub failover_auth_sent: bool,
    pub failover_auth_epoch: u64,
    pub failover_auth_count: usize,
    /// A manual failover (CLUSTER FAILOVER) in progress, until `mf_end` (0: none).
    /// On the replica: whether the election may start, and the offset its paused
    /// master announced; on the master: the replica it paused its clients for.
    pub mf_end: u64,
    pub mf_can_start: bool,
    pub mf_master_offset: Option<u64>,
    pub mf_replica: Option<String>,
    /// Our replication offset (a master's stream end, a replica's processed offset),
    /// refreshed by every cron: messages carry it, and replicas rank by it.
    pub repl_offset: u64,
    /// A replica's [`crate::replication::data_age_ms`], for
    /// `cluster-replica-validity-factor`.
    pub repl_data_age_ms: u64,
    /// When "Currently unable to failover" was last logged (ms), and why.
    pub cant_failover_logged: (u64, &'static str),
    pub cron_iterations: u64,
    pub fx: Effects,
    /// From the configuration, refreshed by every cron.
    pub node_timeout: u64,
    pub require_full_coverage: bool,
    pub allow_replica_migration: bool,
    pub allow_reads_when_down: bool,
    pub allow_pubsubshard_when_down: bool,
    pub announce: Announce,
    /// `cluster-preferred-endpoint-type`: what redirects and CLUSTER SLOTS / SHARDS
    /// give as a node's address.
    pub endpoint: Endpoint,
}

/// `cluster-preferred-endpoint-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Ip,
    Hostname,
    Unknown,
}

impl Endpoint {
    pub fn of(cfg: &crate::config::Config) -> Endpoint {
        match cfg.get("cluster-preferred-endpoint-type") {
            Some("hostname") => Endpoint::Hostname,
            Some("unknown-endpoint") => Endpoint::Unknown,
            _ => Endpoint::Ip,
        }
    }
}

/// The address this node announces on the bus.
#[derive(Clone, Default)]
pub struct Announce {
    /// `cluster-announce-ip` is set: `ip` is it, and messages carry it.
    pub from_config: bool,
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub hostname: String,
}

impl State {
    /// A node's address as redirects and CLUSTER SLOTS give it (Redis's
    /// `getPreferredEndpoint`): its IP, its hostname (`?` if it announced none), or
    /// nothing.
    pub fn endpoint_of<'a>(&self, n: &'a Node) -> &'a str {
        match self.endpoint {
            Endpoint::Ip => &n.ip,
            Endpoint::Hostname if n.hostname.is_empty() => "?",
            Endpoint::Hostname => &n.hostname,
            Endpoint::Unknown => "",
        }
    }

    pub fn me(&self) -> &Node {
        &self.nodes[&self.myself]
    }

    /// A node's config epoch as shown: a replica shows its master's.
    pub fn epoch_of(&self, n: &Node) -> u64 {
        if n.has(node::SLAVE) {
            n.slaveof
                .as_ref()
                .and_then(|m| self.nodes.get(m))
                .map_or(n.config_epoch, |m| m.config_epoch)
        } else {
            n.config_epoch
        }
    }

    pub fn me_mut(&mut self) -> &mut Node {
        self.nodes
            .get_mut(&self.myself)
            .expect("myself is always known")
    }

    /// Give `slot` to `owner` (or nobody), keeping the owners' bitmaps and our atomic
    /// view in step.
    pub fn assign(&mut self, slot: usize, owner: Option<&str>) {
        if let Some(old) = self.slots[slot].take() {
            if let Some(n) = self.nodes.get_mut(&old) {
                n.set_slot(slot, false);
            }
        }
        if let Some(o) = owner {
            // A master's first slot makes it a target for replica migration when
            // other masters have replicas (Redis's `clusterNodeSetSlotBit`).
            let first = self.nodes.get(o).is_some_and(|n| n.numslots == 0);
            let target = first && self.masters_have_replicas();
            if let Some(n) = self.nodes.get_mut(o) {
                n.set_slot(slot, true);
                if target {
                    n.flags |= node::MIGRATE_TO;
                }
                self.slots[slot] = Some(o.to_string());
            }
        }
        let mine = self.slots[slot].as_deref() == Some(self.myself.as_str());
        let word = &SERVED[slot / 64];
        if mine {
            word.fetch_or(1 << (slot % 64), Ordering::Relaxed);
        } else {
            word.fetch_and(!(1 << (slot % 64)), Ordering::Relaxed);
        }
    }

    /// Mark `slot` as migrating to `to` (or not).
    pub fn set_migrating(&mut self, slot: usize, to: Option<String>) {
        match to {
            Some(n) => self.migrating.insert(slot, n),
            None => self.migrating.remove(&slot),
        };
        self.mirror_open(slot);
    }

    /// Mark `slot` as being imported from `from` (or not).
    pub fn set_importing(&mut self, slot: usize, from: Option<String>) {
        match from {
            Some(n) => self.importing.insert(slot, n),
            None => self.importing.remove(&slot),
        };
        self.mirror_open(slot);
    }

    fn mirror_open(&self, slot: usize) {
        let open = self.migrating.contains_key(&slot) || self.importing.contains_key(&slot);
        let word = &OPEN[slot / 64];
        if open {
            word.fetch_or(1 << (slot % 64), Ordering::Relaxed);
        } else {
            word.fetch_and(!(1 << (slot % 64)), Ordering::Relaxed);
        }
    }

    /// Whether any master has a replica (Redis's `clusterMastersHaveSlaves`).
    fn masters_have_replicas(&self) -> bool {
        self.nodes.values().any(|n| {
            n.slaveof
                .as_ref()
                .and_then(|m| self.nodes.get(m))
                .is_some_and(|m| !m.has(node::SLAVE))
        })
    }

    /// Make `name` a replica of `master`, or of nobody. Masters keep their local
    /// MIGRATE_TO flag as Redis's `clusterNodeAddSlave` / `clusterNodeRemoveSlave`
    /// do: gained with a replica, lost with the last one. (Our replica lists are
    /// the nodes naming a master, so "the last one" is read from them.)
    pub fn set_replica_of(&mut self, name: &str, master: Option<&str>) {
        let Some(n) = self.nodes.get_mut(name) else {
            return;
        };
        let old = std::mem::replace(&mut n.slaveof, master.map(str::to_string));
        if let Some(old) = old.filter(|o| Some(o.as_str()) != master) {
            let orphaned = !self
                .nodes
                .values()
                .any(|n| n.slaveof.as_deref() == Some(old.as_str()));
            if let Some(m) = self.nodes.get_mut(&old).filter(|_| orphaned) {
                m.flags &= !node::MIGRATE_TO;
            }
        }
        if let Some(m) = master.and_then(|m| self.nodes.get_mut(m)) {
            m.flags |= node::MIGRATE_TO;
        }
    }

    /// A node we knew as a replica now acts as a master (Redis's
    /// `clusterSetNodeAsMaster`). Another node that took over from a master becomes
    /// a target for replica migration; true if anything changed.
    pub fn set_node_as_master(&mut self, name: &str) -> bool {
        let Some(n) = self.nodes.get(name).filter(|n| !n.is_master()) else {
            return false;
        };
        let had_master = n.slaveof.is_some();
        self.set_replica_of(name, None);
        let me = name == self.myself;
        let n = self.nodes.get_mut(name).expect("looked up above");
        if had_master && !me {
            n.flags |= node::MIGRATE_TO;
        }
        n.flags = (n.flags & !node::SLAVE) | node::MASTER;
        true
    }

    /// Forget a node: its slots become unassigned, its link closes, reports by it go,
    /// and so do migrations to or from it.
    pub fn delete_node(&mut self, name: &str) {
        for s in 0..SLOTS {
            if self.slots[s].as_deref() == Some(name) {
                self.assign(s, None);
            }
        }
        let open: Vec<usize> = self
            .migrating
            .iter()
            .chain(self.importing.iter())
            .filter(|(_, n)| *n == name)
            .map(|(s, _)| *s)
            .collect();
        for s in open {
            if self.migrating.get(&s).is_some_and(|n| n == name) {
                self.set_migrating(s, None);
            }
            if self.importing.get(&s).is_some_and(|n| n == name) {
                self.set_importing(s, None);
            }
        }
        self.set_replica_of(name, None);
        for n in self.nodes.values_mut() {
            n.fail_reports.retain(|(by, _)| by != name);
            if n.slaveof.as_deref() == Some(name) {
                n.slaveof = None;
            }
        }
        self.nodes.remove(name);
    }

    /// Set the cluster state and mirror it for the data path.
    pub fn set_ok(&mut self, ok: bool) {
        self.ok = ok;
        STATE_OK.store(ok, Ordering::Relaxed);
    }
}

impl State {
    /// A node that knows only the configuration: no name, no other node, no slot.
    pub fn new(cfg: &crate::config::Config, config_file: String) -> State {
        State {
            myself: String::new(),
            current_epoch: 0,
            last_vote_epoch: 0,
            nodes: BTreeMap::new(),
            slots: vec![None; SLOTS],
            migrating: BTreeMap::new(),
            importing: BTreeMap::new(),
            ok: false,
            size: 0,
            blacklist: BTreeMap::new(),
            config_file,
            saved_epochs: (0, 0, 0),
            stats_pfail_nodes: 0,
            failover_auth_time: 0,
            failover_auth_sent: false,
            failover_auth_epoch: 0,
            failover_auth_count: 0,
            repl_offset: 0,
            repl_data_age_ms: 0,
            cant_failover_logged: (0, ""),
            mf_end: 0,
            mf_can_start: false,
            mf_master_offset: None,
            mf_replica: None,
            cron_iterations: 0,
            fx: Effects::default(),
            node_timeout: cfg.get_int("cluster-node-timeout").max(1) as u64,
            require_full_coverage: cfg.get_bool("cluster-require-full-coverage"),
            allow_replica_migration: cfg.get_bool("cluster-allow-replica-migration"),
            allow_reads_when_down: cfg.get_bool("cluster-allow-reads-when-down"),
            allow_pubsubshard_when_down: cfg.get_bool("cluster-allow-pubsubshard-when-down"),
            announce: gossip::announce_of(cfg, ""),
            endpoint: Endpoint::of(cfg),
        }
    }
}

static CLUSTER: OnceLock<Mutex<State>> = OnceLock::new();

fn lock() -> Option<MutexGuard<'static, State>> {
    CLUSTER
        .get()
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Run one step on the state, then carry out its effects. None if cluster mode is off.
pub fn with<R>(shards: &Shards, f: impl FnOnce(&mut State) -> R) -> Option<R> {
    let (r, fx, save) = {
        let mut st = lock()?;
        let r = f(&mut st);
        let fx = std::mem::take(&mut st.fx);
        let epochs = (st.current_epoch, st.last_vote_epoch, st.me().config_epoch);
        let sync = epochs != st.saved_epochs;
        let save = fx.save_config.then(|| {
            st.saved_epochs = epochs;
            (st.config_file.clone(), nodes_conf::render(&st))
        });
        (r, fx, save.map(|s| (s, sync)))
    };
    if let Some(((path, text), sync)) = save {
        if let Err(e) = nodes_conf::write(&path, &text, sync) {
            crate::log::warning(&format!(
                "Could not save the cluster configuration {path}: {e}"
            ));
        }
    }
    for c in fx.connect {
        link::spawn(shards.detached(), c);
    }
    if !fx.lost_slots.is_empty() {
        gossip::delete_keys_in_slots(shards, fx.lost_slots);
    }
    if let Some(to) = fx.replicate {
        let shards = shards.detached();
        crate::runtime::backend::spawn(async move {
            match to {
                Some((host, port)) => crate::replication::replica::start(&shards, host, port).await,
                None => {
                    crate::replication::replica::promote(&shards).await;
                }
            }
        })
        .detach();
    }
    if let Some(end) = fx.pause_writes_until {
        let shards = shards.detached();
        crate::runtime::backend::spawn(async move {
            crate::runtime::pause::pause(&shards, crate::runtime::pause::Kind::Write, end as i64)
                .await;
        })
        .detach();
    }
    if fx.unpause {
        let shards = shards.detached();
        crate::runtime::backend::spawn(async move {
            crate::runtime::pause::unpause(&shards).await;
        })
        .detach();
    }
    for (kind, channel, message) in fx.published {
        crate::runtime::pubsub::publish(shards, kind, &channel, &message);
    }
    Some(r)
}

/// Read-only access (CLUSTER NODES, INFO, redirections).
pub fn read<R>(f: impl FnOnce(&State) -> R) -> Option<R> {
    lock().map(|st| f(&st))
}

/// PUBLISH / SPUBLISH in cluster mode: send the message over the bus, to every node
/// (PUBLISH) or to the other nodes of this node's shard, its master and replicas
/// (SPUBLISH), as Redis's `clusterPropagatePublish`.
pub fn propagate_publish(shard: bool, channel: &[u8], message: &[u8]) {
    read(|st| gossip::publish(st, shard, channel, message));
}

/// Load or create nodes.conf; called once before the runtime starts.
pub fn init(cfg: &crate::config::Config) -> Result<(), String> {
    if !cfg.get_bool("cluster-enabled") {
        return Ok(());
    }
    ENABLED.store(true, Ordering::Relaxed);
    let file = {
        let f = cfg.get("cluster-config-file").unwrap_or("nodes.conf");
        let p = std::path::Path::new(f);
        if p.is_absolute() {
            f.to_string()
        } else {
            std::path::Path::new(&cfg.dir).join(p).display().to_string()
        }
    };
    let now = crate::clock::now_ms();
    let mut st = State::new(cfg, file.clone());
    match std::fs::read_to_string(&file) {
        Ok(text) if !text.trim().is_empty() => {
            nodes_conf::load(&mut st, &text, now).map_err(|e| {
                format!("Unrecoverable error: corrupted cluster config file \"{file}\": {e}")
            })?
        }
        _ => {
            let name = node::random_name();
            let mut me = Node::new(name.clone(), node::MYSELF | node::MASTER, now);
            me.port = st.announce.port;
            me.cport = st.announce.cport;
            me.hostname = st.announce.hostname.clone();
            st.nodes.insert(name.clone(), me);
            st.myself = name;
            crate::log::log(&format!(
                "No cluster configuration found, I'm {}",
                st.myself
            ));
            let text = nodes_conf::render(&st);
            nodes_conf::write(&file, &text, true)
                .map_err(|e| format!("Can't open {file} for writing: {e}"))?;
        }
    }
    st.saved_epochs = (st.current_epoch, st.last_vote_epoch, st.me().config_epoch);
    gossip::update_state(&mut st, now);
    CLUSTER
        .set(Mutex::new(st))
        .map_err(|_| "cluster state set twice".to_string())
}

/// On core 0: listen on the bus port and run the cron for as long as the process lives.
pub async fn run(shards: Rc<Shards>) {
    let cfg = shards.local.borrow().config.clone();
    let cport = gossip::bus_port(&cfg);
    let addrs: Vec<std::net::SocketAddr> = cfg
        .bind
        .iter()
        .map(|a| a.trim_start_matches('-'))
        .filter_map(|a| {
            format!("{a}:{cport}")
                .parse()
                .ok()
                .or_else(|| format!("[{a}]:{cport}").parse().ok())
        })
        .collect();
    if let Err(e) = link::listen(shards.clone(), addrs) {
        crate::log::warning(&e);
        crate::runtime::backend::exit(1);
    }
    // A replica in nodes.conf follows its master again.
    let master = read(|st| {
        let me = st.me();
        me.slaveof
            .as_ref()
            .and_then(|m| st.nodes.get(m))
            .filter(|m| !m.ip.is_empty())
            .map(|m| (m.ip.clone(), m.port))
    })
    .flatten();
    if let Some((host, port)) = master {
        crate::replication::replica::start(&shards, host, port).await;
    }
    loop {
        crate::runtime::backend::sleep(std::time::Duration::from_millis(100)).await;
        let cfg = shards.local.borrow().config.clone();
        let offset = crate::replication::of(&shards.server).lock().end;
        let data_age = crate::replication::data_age_ms(&shards.server);
        with(&shards, |st| {
            st.repl_offset = offset;
            st.repl_data_age_ms = data_age;
            gossip::cron(st, &cfg, crate::clock::now_ms())
        });
    }
}

/// What the data path knows of a request with keys, for [`route`].
pub struct Query {
    /// The first key's slot.
    pub first: u16,
    /// Every key hashes to `first`.
    pub one_slot: bool,
    /// Some key differs from the first (Redis's `multiple_keys`).
    pub multiple_keys: bool,
    pub write: bool,
    /// The client sent READONLY.
    pub readonly_client: bool,
    /// The client sent ASKING, or the command is one that implies it (RESTORE-ASKING).
    pub asking: bool,
    /// MIGRATE, which always runs here while its slot is open.
    pub migrate: bool,
    /// SPUBLISH / SSUBSCRIBE / SUNSUBSCRIBE: channels, not keys, so no key is looked up.
    pub pubsub_shard: bool,
}

/// Where a request goes (Redis's `getNodeByQuery`).
pub enum Route {
    Here,
    /// Refused with this error (`-MOVED`, `-CROSSSLOT`, `-CLUSTERDOWN`).
    Refuse(crate::protocol::Reply),
    /// Its slot is open: it runs here only if the shard holding its keys finds them
    /// there (see [`SlotCheck`]).
    Check(SlotCheck),
}

/// A request on a slot being migrated or imported, which this node serves only if
/// it holds the request's keys. Which keys exist is known only on the shard that
/// owns the slot, so that shard decides, just before running the request: the
/// admission on the accepting core cannot look.
#[derive(Clone, Debug)]
pub enum SlotCheck {
    /// We are moving the slot to the node at `to` ("ip:port"): a request whose keys
    /// are all gone gets `-ASK` there, one with only some of them `-TRYAGAIN`.
    Migrating { slot: u16, to: String },
    /// We are importing the slot and the client asked: a request naming several keys
    /// runs only if all of them have arrived, else `-TRYAGAIN`.
    Importing,
}

impl SlotCheck {
    /// The refusal, given how many of the request's keys exist here and how many do not.
    pub fn verdict(&self, existing: usize, missing: usize) -> Option<crate::protocol::Reply> {
        use crate::protocol::Reply;
        if missing == 0 {
            return None;
        }
        match self {
            SlotCheck::Migrating { slot, to } if existing == 0 => {
                Some(Reply::error(format!("ASK {slot} {to}")))
            }
            _ => Some(Reply::err(TRYAGAIN)),
        }
    }
}

pub const TRYAGAIN: &str = "TRYAGAIN Multiple keys request during rehashing of slot";

/// A request's route (Redis's `getNodeByQuery`), in Redis's order: the first key's
/// slot unassigned, keys in several slots, the cluster down, MIGRATE on an open slot,
/// a slot we are migrating (ASK / TRYAGAIN once its keys are looked up), a slot we
/// are importing for an asking client, a replica's reads for READONLY clients, the
/// slot served elsewhere (MOVED).
pub fn route(q: &Query) -> Route {
    use crate::protocol::Reply;
    if q.one_slot && state_ok() && serves(q.first) && !open(q.first) {
        return Route::Here;
    }
    read(|st| {
        let slot = q.first as usize;
        let Some(owner) = st.slots[slot].as_ref() else {
            return Route::Refuse(Reply::err("CLUSTERDOWN Hash slot not served"));
        };
        if !q.one_slot {
            return Route::Refuse(Reply::err(
                "CROSSSLOT Keys in request don't hash to the same slot",
            ));
        }
        // Down: only reads (`cluster-allow-reads-when-down`) and shard channels
        // (`cluster-allow-pubsubshard-when-down`) may still be served.
        if !st.ok {
            let down = Reply::err("CLUSTERDOWN The cluster is down");
            if q.pubsub_shard {
                if !st.allow_pubsubshard_when_down {
                    return Route::Refuse(down);
                }
            } else if !st.allow_reads_when_down {
                return Route::Refuse(down);
            } else if q.write {
                return Route::Refuse(Reply::err(
                    "CLUSTERDOWN The cluster is down and only accepts read commands",
                ));
            }
        }
        let migrating = (*owner == st.myself)
            .then(|| st.migrating.get(&slot))
            .flatten();
        let importing = migrating.is_none() && st.importing.contains_key(&slot);
        if (migrating.is_some() || importing) && q.migrate {
            return Route::Here;
        }
        if let Some(to) = migrating.filter(|_| !q.pubsub_shard) {
            return match st.nodes.get(to) {
                Some(n) => Route::Check(SlotCheck::Migrating {
                    slot: q.first,
                    to: format!("{}:{}", st.endpoint_of(n), n.port),
                }),
                None => Route::Here,
            };
        }
        if importing && q.asking {
            return if q.multiple_keys && !q.pubsub_shard {
                Route::Check(SlotCheck::Importing)
            } else {
                Route::Here
            };
        }
        if *owner == st.myself {
            return Route::Here;
        }
        // A replica of the owner serves reads to READONLY clients.
        if (q.readonly_client || q.pubsub_shard)
            && !q.write
            && st.me().slaveof.as_ref() == Some(owner)
        {
            return Route::Here;
        }
        let n = &st.nodes[owner];
        Route::Refuse(Reply::error(format!(
            "MOVED {} {}:{}",
            q.first,
            st.endpoint_of(n),
            n.port
        )))
    })
    .unwrap_or(Route::Here)
}

/// The error that ends the wait of a client blocked on a key of `slot` (BLPOP,
/// XREAD BLOCK...) because this node no longer serves it (Redis's
/// `clusterRedirectBlockedClientIfNeeded`): the cluster is down, the slot is
/// unassigned, or another node owns it and we are not importing it. A READONLY
/// client's read on a slot of our master stays. `None` outside cluster mode.
pub fn blocked_redirect(slot: u16, readonly_read: bool) -> Option<crate::protocol::Reply> {
    use crate::protocol::Reply;
    read(|st| {
        if !st.ok {
            return Some(Reply::err("CLUSTERDOWN The cluster is down"));
        }
        let slot_ix = slot as usize;
        let owner = st.slots[slot_ix].as_ref();
        if owner == Some(&st.myself) || st.importing.contains_key(&slot_ix) {
            return None;
        }
        if readonly_read && owner.is_some() && st.me().slaveof.as_ref() == owner {
            return None;
        }
        Some(match owner {
            None => Reply::err("CLUSTERDOWN Hash slot not served"),
            Some(o) => {
                let n = &st.nodes[o];
                Reply::error(format!("MOVED {slot} {}:{}", st.endpoint_of(n), n.port))
            }
        })
    })
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_checks_answer_as_get_node_by_query() {
        let migrating = SlotCheck::Migrating {
            slot: 7,
            to: "10.0.0.1:7001".into(),
        };
        // Every key here: served. None: ASK. Some: TRYAGAIN.
        assert!(migrating.verdict(2, 0).is_none());
        let ask = migrating
            .verdict(0, 2)
            .and_then(|r| r.error_text().map(|t| t.to_string()));
        assert_eq!(ask.as_deref(), Some("ASK 7 10.0.0.1:7001"));
        let retry = migrating
            .verdict(1, 1)
            .and_then(|r| r.error_text().map(|t| t.to_string()));
        assert_eq!(retry.as_deref(), Some(TRYAGAIN));
        // Importing (an asking client, several keys): all of them, or TRYAGAIN.
        assert!(SlotCheck::Importing.verdict(3, 0).is_none());
        assert!(SlotCheck::Importing.verdict(0, 3).is_some());
    }
}
