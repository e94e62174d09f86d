//! What a Sentinel knows of each instance it watches: a monitored master, the replicas
//! it learns of from the master's INFO, and the other Sentinels it learns of from hello
//! messages. Plain data: the rules that change it live in `monitor` and `failover`.

use super::link::Conn;
use std::collections::BTreeMap;

/// Subjectively down: no valid PING reply for `down-after-milliseconds`.
pub const S_DOWN: u32 = 1 << 0;
/// Objectively down: a quorum of Sentinels agree (masters only).
pub const O_DOWN: u32 = 1 << 1;
/// This other Sentinel says the master is down (its last is-master-down-by-addr reply).
pub const MASTER_DOWN: u32 = 1 << 2;
pub const FAILOVER_IN_PROGRESS: u32 = 1 << 3;
/// The replica chosen for promotion.
pub const PROMOTED: u32 = 1 << 4;
pub const RECONF_SENT: u32 = 1 << 5;
pub const RECONF_INPROG: u32 = 1 << 6;
pub const RECONF_DONE: u32 = 1 << 7;
/// SENTINEL FAILOVER: no election needed.
pub const FORCE_FAILOVER: u32 = 1 << 8;
pub const SCRIPT_KILL_SENT: u32 = 1 << 9;
/// The master restarted (new run id) and `master-reboot-down-after-period` is set.
pub const MASTER_REBOOT: u32 = 1 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Master,
    Replica,
    Sentinel,
}

impl Kind {
    /// The word events and replies use.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Master => "master",
            Kind::Replica => "slave",
            Kind::Sentinel => "sentinel",
        }
    }
}

/// An instance's address: the name it was given (IP or hostname) and the IP it
/// resolved to (equal to the name unless `resolve-hostnames` is on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addr {
    pub hostname: String,
    pub ip: String,
    pub port: u16,
}

impl Addr {
    /// Redis's `sentinelAddrOrHostnameEqual`.
    pub fn same(&self, other: &Addr) -> bool {
        self.port == other.port
            && (self.ip == other.ip || self.hostname.eq_ignore_ascii_case(&other.hostname))
    }

    /// True if `host` names this address (by IP, or by hostname when it cannot be
    /// resolved).
    pub fn is_host(&self, host: &str) -> bool {
        self.ip.eq_ignore_ascii_case(host) || self.hostname.eq_ignore_ascii_case(host)
    }

    /// `ip:port`, bracketed for IPv6 as Redis's `anetFormatAddr`.
    pub fn with_port(&self, announce_hostnames: bool) -> String {
        let a = self.announced(announce_hostnames);
        if a.contains(':') {
            format!("[{a}]:{}", self.port)
        } else {
            format!("{a}:{}", self.port)
        }
    }

    pub fn announced(&self, announce_hostnames: bool) -> &str {
        if announce_hostnames {
            &self.hostname
        } else {
            &self.ip
        }
    }
}

/// The connections to one instance and their clocks (ms since the epoch; 0 = never).
#[derive(Default)]
pub struct Link {
    /// The command connection (PING, INFO, PUBLISH of hellos, failover commands).
    pub cc: Option<Conn>,
    /// The Pub/Sub connection listening on `__sentinel__:hello` (masters, replicas).
    pub pc: Option<Conn>,
    pub disconnected: bool,
    pub pending_commands: i64,
    pub cc_conn_time: u64,
    pub pc_conn_time: u64,
    pub pc_last_activity: u64,
    /// Last valid PING reply (PONG, LOADING, MASTERDOWN).
    pub last_avail_time: u64,
    /// When the oldest unanswered PING was sent (0: none pending).
    pub act_ping_time: u64,
    pub last_ping_time: u64,
    /// Last PING reply of any kind.
    pub last_pong_time: u64,
    pub last_reconn_time: u64,
    /// Our address as the command link's socket shows it (what hellos announce
    /// without `announce-ip`); known once the link is up.
    pub local_ip: Option<String>,
}

/// One watched instance: master, replica or other Sentinel.
pub struct Instance {
    pub kind: Kind,
    /// A master's configured name; `ip:port` for a replica; the run id of a Sentinel.
    pub name: String,
    pub addr: Addr,
    pub runid: Option<String>,
    pub flags: u32,
    pub link: Link,
    pub down_after: u64,
    pub s_down_since: u64,
    pub o_down_since: u64,
    pub last_pub_time: u64,
    pub last_hello_time: u64,
    pub last_master_down_reply_time: u64,
    /// The last INFO reply and when it came.
    pub info: Option<String>,
    pub info_refresh: u64,
    pub role_reported: Kind,
    pub role_reported_time: u64,
    pub slave_conf_change_time: u64,
    // What a replica's INFO says.
    pub master_link_down_time: u64,
    pub slave_master_host: Option<String>,
    pub slave_master_port: u16,
    pub slave_master_link_up: bool,
    pub slave_priority: i64,
    pub slave_repl_offset: u64,
    pub replica_announced: i64,
    pub slave_reconf_sent_time: u64,
    // What another Sentinel voted for (its is-master-down-by-addr replies).
    pub leader: Option<String>,
    pub leader_epoch: u64,
}

impl Instance {
    pub fn new(kind: Kind, name: String, addr: Addr, down_after: u64, now: u64) -> Instance {
        Instance {
            kind,
            name,
            addr,
            runid: None,
            flags: 0,
            link: Link {
                disconnected: true,
                last_avail_time: now,
                last_pong_time: now,
                act_ping_time: now,
                ..Link::default()
            },
            down_after,
            s_down_since: 0,
            o_down_since: 0,
            last_pub_time: now,
            last_hello_time: now,
            last_master_down_reply_time: now,
            info: None,
            info_refresh: 0,
            role_reported: kind,
            role_reported_time: now,
            slave_conf_change_time: now,
            master_link_down_time: 0,
            slave_master_host: None,
            slave_master_port: 0,
            slave_master_link_up: false,
            slave_priority: 100,
            slave_repl_offset: 0,
            replica_announced: 1,
            slave_reconf_sent_time: 0,
            leader: None,
            leader_epoch: 0,
        }
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// No SDOWN or ODOWN in the last `ms` milliseconds.
    pub fn no_down_for(&self, ms: u64, now: u64) -> bool {
        let recent = self.s_down_since.max(self.o_down_since);
        recent == 0 || now.saturating_sub(recent) > ms
    }

    /// Close both connections (their tasks end when they see the handle dropped).
    pub fn close_links(&mut self) {
        self.link.cc = None;
        self.link.pc = None;
        self.link.disconnected = true;
        self.link.pending_commands = 0;
    }
}

/// Where a failover of a master stands (Redis's `SENTINEL_FAILOVER_STATE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailoverState {
    None,
    WaitStart,
    SelectSlave,
    SendSlaveofNoone,
    WaitPromotion,
    ReconfSlaves,
    UpdateConfig,
}

impl FailoverState {
    pub fn name(self) -> &'static str {
        match self {
            FailoverState::None => "none",
            FailoverState::WaitStart => "wait_start",
            FailoverState::SelectSlave => "select_slave",
            FailoverState::SendSlaveofNoone => "send_slaveof_noone",
            FailoverState::WaitPromotion => "wait_promotion",
            FailoverState::ReconfSlaves => "reconf_slaves",
            FailoverState::UpdateConfig => "update_config",
        }
    }
}

/// A monitored master with its replicas and the other Sentinels that watch it.
pub struct Master {
    pub inst: Instance,
    pub quorum: u32,
    pub failover_timeout: u64,
    pub parallel_syncs: i64,
    pub auth_pass: Option<String>,
    pub auth_user: Option<String>,
    pub notification_script: Option<String>,
    pub client_reconfig_script: Option<String>,
    /// `rename-command`: the name to send for a command, by its lower-case name.
    pub renamed_commands: Vec<(String, String)>,
    pub master_reboot_down_after_period: u64,
    pub master_reboot_since_time: u64,
    /// By `ip:port`.
    pub replicas: BTreeMap<String, Instance>,
    /// By run id.
    pub sentinels: BTreeMap<String, Instance>,
    pub config_epoch: u64,
    /// Our vote in `leader_epoch`.
    pub leader: Option<String>,
    pub leader_epoch: u64,
    pub failover_epoch: u64,
    pub failover_state: FailoverState,
    pub failover_state_change_time: u64,
    pub failover_start_time: u64,
    pub failover_delay_logged: u64,
    /// The key (in `replicas`) of the replica being promoted.
    pub promoted: Option<String>,
}

impl Master {
    pub fn new(name: String, addr: Addr, quorum: u32, t: &super::Timing, now: u64) -> Master {
        Master {
            inst: Instance::new(Kind::Master, name, addr, t.default_down_after, now),
            quorum,
            failover_timeout: t.default_failover_timeout,
            parallel_syncs: 1,
            auth_pass: None,
            auth_user: None,
            notification_script: None,
            client_reconfig_script: None,
            renamed_commands: Vec::new(),
            master_reboot_down_after_period: 0,
            master_reboot_since_time: 0,
            replicas: BTreeMap::new(),
            sentinels: BTreeMap::new(),
            config_epoch: 0,
            leader: None,
            leader_epoch: 0,
            failover_epoch: 0,
            failover_state: FailoverState::None,
            failover_state_change_time: 0,
            failover_start_time: 0,
            failover_delay_logged: 0,
            promoted: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.inst.name
    }

    /// The address clients should use: the promoted replica's once it took the new
    /// configuration (Redis's `sentinelGetCurrentMasterAddress`).
    pub fn current_addr(&self) -> &Addr {
        if self.inst.has(FAILOVER_IN_PROGRESS) && self.failover_state >= FailoverState::ReconfSlaves
        {
            if let Some(p) = self.promoted.as_ref().and_then(|k| self.replicas.get(k)) {
                return &p.addr;
            }
        }
        &self.inst.addr
    }

    /// Set `down-after-milliseconds` here and on every replica and Sentinel.
    pub fn set_down_after(&mut self, ms: u64) {
        self.inst.down_after = ms;
        for i in self
            .replicas
            .values_mut()
            .chain(self.sentinels.values_mut())
        {
            i.down_after = ms;
        }
    }

    /// The master looks healthy: it says it is a master, is not down and its INFO is
    /// recent (Redis's `sentinelMasterLooksSane`).
    pub fn looks_sane(&self, info_period: u64, now: u64) -> bool {
        self.inst.role_reported == Kind::Master
            && self.inst.flags & (S_DOWN | O_DOWN) == 0
            && now.saturating_sub(self.inst.info_refresh) < info_period.saturating_mul(2)
    }
}
