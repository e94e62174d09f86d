//! Failover: the leader election by epoch votes, the choice of the replica to
//! promote, and the state machine that promotes it and points the other replicas at
//! it, as Redis 7.0's `sentinel.c` runs them (states `wait_start` → `select_slave`
//! → `send_slaveof_noone` → `wait_promotion` → `reconf_slaves` → `update_config`).
//! Also the reconfiguration of replicas outside a failover (`+convert-to-slave`,
//! `+fix-slave-config`) and the reset of a master to a new address.

use super::instance::*;
use super::link::Then;
use super::monitor::{force_hello_update, learn_replica, send, View};
use super::{event, replica_event, Effects, Globals, Level, MAX_DESYNC};

fn desync() -> u64 {
    rand::random::<u64>() % MAX_DESYNC
}

/// Vote for `runid` as the leader of epoch `req_epoch` unless we voted in that epoch
/// already; our vote for this master, and its epoch (Redis's `sentinelVoteLeader`).
pub fn vote_leader(
    g: &mut Globals,
    fx: &mut Effects,
    m: &mut Master,
    req_epoch: u64,
    runid: &str,
    now: u64,
) -> (Option<String>, u64) {
    if req_epoch > g.current_epoch {
        g.current_epoch = req_epoch;
        fx.flush_config = true;
        fx.event(
            Level::Warning,
            "+new-epoch",
            g.current_epoch.to_string(),
            m.notification_script.as_ref(),
        );
    }
    if m.leader_epoch < req_epoch && g.current_epoch <= req_epoch {
        m.leader = Some(runid.to_string());
        m.leader_epoch = g.current_epoch;
        fx.flush_config = true;
        let msg = format!("{runid} {}", m.leader_epoch);
        fx.event(
            Level::Warning,
            "+vote-for-leader",
            msg,
            m.notification_script.as_ref(),
        );
        // Not us: don't start our own failover of this master for a while.
        if !runid.eq_ignore_ascii_case(&g.myid) {
            m.failover_start_time = now + desync();
        }
    }
    (m.leader.clone(), m.leader_epoch)
}

/// The leader of `epoch` if one has a majority of the Sentinels and at least
/// `quorum` votes; we vote for the most voted so far, or ourselves.
pub fn get_leader(
    g: &mut Globals,
    fx: &mut Effects,
    m: &mut Master,
    epoch: u64,
    now: u64,
) -> Option<String> {
    let voters = m.sentinels.len() as u64 + 1;
    let mut counts: Vec<(String, u64)> = Vec::new();
    let add = |counts: &mut Vec<(String, u64)>, id: &str| -> u64 {
        match counts.iter_mut().find(|(k, _)| k == id) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                counts.push((id.to_string(), 1));
                1
            }
        }
    };
    for s in m.sentinels.values() {
        if let Some(l) = &s.leader {
            if s.leader_epoch == g.current_epoch {
                add(&mut counts, l);
            }
        }
    }
    let mut winner: Option<String> = None;
    let mut max_votes = 0;
    for (id, n) in &counts {
        if *n > max_votes {
            max_votes = *n;
            winner = Some(id.clone());
        }
    }
    let candidate = winner.clone().unwrap_or_else(|| g.myid.clone());
    let (my_vote, leader_epoch) = vote_leader(g, fx, m, epoch, &candidate, now);
    if let Some(v) = my_vote {
        if leader_epoch == epoch {
            let n = add(&mut counts, &v);
            if n > max_votes {
                max_votes = n;
                winner = Some(v);
            }
        }
    }
    let quorum = voters / 2 + 1;
    winner.filter(|_| max_votes >= quorum && max_votes >= m.quorum as u64)
}

/// Begin a failover of `m` at a new epoch.
pub fn start(g: &mut Globals, fx: &mut Effects, m: &mut Master, now: u64) {
    m.failover_state = FailoverState::WaitStart;
    m.inst.flags |= FAILOVER_IN_PROGRESS;
    g.current_epoch += 1;
    m.failover_epoch = g.current_epoch;
    fx.event(
        Level::Warning,
        "+new-epoch",
        g.current_epoch.to_string(),
        m.notification_script.as_ref(),
    );
    event(g, fx, Level::Warning, "+try-failover", m, None, "");
    m.failover_start_time = now + desync();
    m.failover_state_change_time = now;
}

/// Start a failover if the master is ODOWN, none runs, and none was tried in the
/// last two failover timeouts.
pub fn start_if_needed(g: &mut Globals, fx: &mut Effects, m: &mut Master, now: u64) -> bool {
    if !m.inst.has(O_DOWN) || m.inst.has(FAILOVER_IN_PROGRESS) {
        return false;
    }
    if now.saturating_sub(m.failover_start_time) < m.failover_timeout.saturating_mul(2) {
        if m.failover_delay_logged != m.failover_start_time {
            m.failover_delay_logged = m.failover_start_time;
            let at = m
                .failover_start_time
                .saturating_add(m.failover_timeout.saturating_mul(2))
                / 1000;
            crate::log::warning(&format!(
                "Next failover delay: I will not start a failover before {}",
                ctime(at)
            ));
        }
        return false;
    }
    start(g, fx, m, now);
    true
}

/// A Unix time as C's `ctime` prints it (UTC), without the newline.
fn ctime(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = crate::log::civil(secs as i64);
    format!(
        "{} {} {d:2} {h:02}:{mi:02}:{s:02} {y}",
        DAYS[(secs / 86400 % 7) as usize],
        MONTHS[(mo - 1) as usize],
    )
}

/// The replica to promote: reachable, recent INFO, not too long cut from the master,
/// priority > 0; the lowest priority, then the highest offset, then the lowest run id.
pub fn select_replica(g: &Globals, m: &Master, now: u64) -> Option<String> {
    let t = &g.timing;
    let mut max_down = m.inst.down_after.saturating_mul(10);
    if m.inst.has(S_DOWN) {
        max_down = max_down.saturating_add(now.saturating_sub(m.inst.s_down_since));
    }
    let validity = if m.inst.has(S_DOWN) {
        t.ping_period.saturating_mul(5)
    } else {
        t.info_period.saturating_mul(3)
    };
    let mut candidates: Vec<&Instance> = m
        .replicas
        .values()
        .filter(|r| {
            r.flags & (S_DOWN | O_DOWN) == 0
                && !r.link.disconnected
                && now.saturating_sub(r.link.last_avail_time) <= t.ping_period.saturating_mul(5)
                && r.slave_priority != 0
                && now.saturating_sub(r.info_refresh) <= validity
                && r.master_link_down_time <= max_down
        })
        .collect();
    candidates.sort_by(|a, b| {
        a.slave_priority
            .cmp(&b.slave_priority)
            .then(b.slave_repl_offset.cmp(&a.slave_repl_offset))
            .then_with(|| match (&a.runid, &b.runid) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (Some(x), Some(y)) => x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase()),
            })
    });
    candidates.first().map(|r| r.name.clone())
}

/// `MULTI / SLAVEOF host port (or NO ONE) / CONFIG REWRITE / CLIENT KILL TYPE normal /
/// CLIENT KILL TYPE pubsub / EXEC` on the instance's command link.
pub fn send_slaveof(
    i: &mut Instance,
    view: &View,
    to: Option<&Addr>,
    announce_hostnames: bool,
) -> bool {
    if i.link.cc.is_none() {
        return false;
    }
    let (host, port) = match to {
        Some(a) => (
            a.announced(announce_hostnames).to_string(),
            a.port.to_string(),
        ),
        None => ("NO".to_string(), "ONE".to_string()),
    };
    let cmds = [
        view.cmd(&["MULTI"]),
        view.cmd(&["SLAVEOF", &host, &port]),
        view.cmd(&["CONFIG", "REWRITE"]),
        view.cmd(&["CLIENT", "KILL", "TYPE", "normal"]),
        view.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]),
        view.cmd(&["EXEC"]),
    ];
    cmds.into_iter().all(|argv| send(i, argv, Then::Discard))
}

/// One step of a failover in progress.
pub fn state_machine(g: &mut Globals, fx: &mut Effects, m: &mut Master, now: u64) {
    if !m.inst.has(FAILOVER_IN_PROGRESS) {
        return;
    }
    match m.failover_state {
        FailoverState::WaitStart => wait_start(g, fx, m, now),
        FailoverState::SelectSlave => select_slave(g, fx, m, now),
        FailoverState::SendSlaveofNoone => send_slaveof_noone(g, fx, m, now),
        FailoverState::WaitPromotion => {
            abort_if_timed_out(g, fx, m, now);
        }
        FailoverState::ReconfSlaves => reconf_next_replica(g, fx, m, now),
        _ => {}
    }
}

fn wait_start(g: &mut Globals, fx: &mut Effects, m: &mut Master, now: u64) {
    let epoch = m.failover_epoch;
    let leader = get_leader(g, fx, m, epoch, now);
    let is_leader = leader.is_some_and(|l| l.eq_ignore_ascii_case(&g.myid));
    if !is_leader && !m.inst.has(FORCE_FAILOVER) {
        let timeout = g.timing.election_timeout.min(m.failover_timeout);
        if now.saturating_sub(m.failover_start_time) > timeout {
            event(
                g,
                fx,
                Level::Warning,
                "-failover-abort-not-elected",
                m,
                None,
                "",
            );
            abort(m, now);
        }
        return;
    }
    event(g, fx, Level::Warning, "+elected-leader", m, None, "");
    if g.simfailure & 1 != 0 {
        fx.crash = true;
    }
    m.failover_state = FailoverState::SelectSlave;
    m.failover_state_change_time = now;
    event(
        g,
        fx,
        Level::Warning,
        "+failover-state-select-slave",
        m,
        None,
        "",
    );
}

fn select_slave(g: &mut Globals, fx: &mut Effects, m: &mut Master, now: u64) {
    match select_replica(g, m, now) {
        None => {
            event(
                g,
                fx,
                Level::Warning,
                "-failover-abort-no-good-slave",
                m,
                None,
                "",
            );
            abort(m, now);
        }
        Some(key) => {
            replica_event(g, fx, Level::Warning, "+selected-slave", m, &key);
            if let Some(r) = m.replicas.get_mut(&key) {
                r.flags |= PROMOTED;
            }
            m.promoted = Some(key.clone());
            m.failover_state = FailoverState::SendSlaveofNoone;
            m.failover_state_change_time = now;
            let r = m.replicas.get(&key);
            event(
                g,
                fx,
                Level::Notice,
                "+failover-state-send-slaveof-noone",
                m,
                r,
                "",
            );
        }
    }
}

fn send_slaveof_noone(g: &mut Globals, fx: &mut Effects, m: &mut Master, now: u64) {
    let view = View::of(m);
    let Some(key) = m.promoted.clone() else {
        return;
    };
    let Some(r) = m.replicas.get_mut(&key) else {
        return;
    };
    if r.link.disconnected {
        abort_if_timed_out(g, fx, m, now);
        return;
    }
    if !send_slaveof(r, &view, None, g.announce_hostnames) {
        return;
    }
    replica_event(
        g,
        fx,
        Level::Notice,
        "+failover-state-wait-promotion",
        m,
        &key,
    );
    m.failover_state = FailoverState::WaitPromotion;
    m.failover_state_change_time = now;
}

fn reconf_next_replica(g: &mut Globals, fx: &mut Effects, m: &mut Master, now: u64) {
    let view = View::of(m);
    let Some(to) = m
        .promoted
        .as_ref()
        .and_then(|k| m.replicas.get(k))
        .map(|r| r.addr.clone())
    else {
        return;
    };
    let mut in_progress = m
        .replicas
        .values()
        .filter(|r| r.flags & (RECONF_SENT | RECONF_INPROG) != 0)
        .count() as i64;
    let keys: Vec<String> = m.replicas.keys().cloned().collect();
    for key in keys {
        if in_progress >= m.parallel_syncs {
            break;
        }
        let r = m.replicas.get_mut(&key).expect("listed above");
        if r.flags & (PROMOTED | RECONF_DONE) != 0 {
            continue;
        }
        if r.has(RECONF_SENT)
            && now.saturating_sub(r.slave_reconf_sent_time) > g.timing.slave_reconf_timeout
        {
            r.flags &= !RECONF_SENT;
            r.flags |= RECONF_DONE;
            replica_event(g, fx, Level::Notice, "-slave-reconf-sent-timeout", m, &key);
            continue;
        }
        if r.flags & (RECONF_SENT | RECONF_INPROG) != 0 || r.link.disconnected {
            continue;
        }
        if send_slaveof(r, &view, Some(&to), g.announce_hostnames) {
            r.flags |= RECONF_SENT;
            r.slave_reconf_sent_time = now;
            in_progress += 1;
            replica_event(g, fx, Level::Notice, "+slave-reconf-sent", m, &key);
        }
    }
    detect_end(g, fx, m, &view, &to, now);
}

fn detect_end(g: &mut Globals, fx: &mut Effects, m: &mut Master, view: &View, to: &Addr, now: u64) {
    let promoted_down = m
        .promoted
        .as_ref()
        .and_then(|k| m.replicas.get(k))
        .is_none_or(|p| p.has(S_DOWN));
    if promoted_down {
        return;
    }
    let mut not_reconfigured = m
        .replicas
        .values()
        .filter(|r| r.flags & (PROMOTED | RECONF_DONE) == 0 && !r.has(S_DOWN))
        .count();
    let timeout = now.saturating_sub(m.failover_state_change_time) > m.failover_timeout;
    if timeout {
        not_reconfigured = 0;
        event(
            g,
            fx,
            Level::Warning,
            "+failover-end-for-timeout",
            m,
            None,
            "",
        );
    }
    if not_reconfigured == 0 {
        event(g, fx, Level::Warning, "+failover-end", m, None, "");
        m.failover_state = FailoverState::UpdateConfig;
        m.failover_state_change_time = now;
    }
    if timeout {
        // Send the new configuration to everyone not yet told, whatever
        // parallel-syncs says: the failover is over.
        let keys: Vec<String> = m.replicas.keys().cloned().collect();
        for key in keys {
            let r = m.replicas.get_mut(&key).expect("listed above");
            if r.flags & (PROMOTED | RECONF_DONE | RECONF_SENT) != 0 || r.link.disconnected {
                continue;
            }
            if send_slaveof(r, view, Some(to), g.announce_hostnames) {
                r.flags |= RECONF_SENT;
                replica_event(g, fx, Level::Notice, "+slave-reconf-sent-be", m, &key);
            }
        }
    }
}

/// Abort the failover if its current step has waited longer than the failover
/// timeout for the promoted replica.
fn abort_if_timed_out(g: &Globals, fx: &mut Effects, m: &mut Master, now: u64) {
    if now.saturating_sub(m.failover_state_change_time) > m.failover_timeout {
        event(
            g,
            fx,
            Level::Warning,
            "-failover-abort-slave-timeout",
            m,
            None,
            "",
        );
        abort(m, now);
    }
}

/// Give up a failover that has not promoted anyone yet.
pub fn abort(m: &mut Master, now: u64) {
    m.inst.flags &= !(FAILOVER_IN_PROGRESS | FORCE_FAILOVER);
    m.failover_state = FailoverState::None;
    m.failover_state_change_time = now;
    if let Some(r) = m.promoted.take().and_then(|k| m.replicas.get_mut(&k)) {
        r.flags &= !PROMOTED;
    }
}

/// The failover ended: the master is now the promoted replica.
pub fn switch_to_promoted(g: &mut Globals, fx: &mut Effects, m: &mut Master, now: u64) {
    let to = m
        .promoted
        .as_ref()
        .and_then(|k| m.replicas.get(k))
        .map(|r| r.addr.clone())
        .unwrap_or_else(|| m.inst.addr.clone());
    let from = &m.inst.addr;
    let msg = format!(
        "{} {} {} {} {}",
        m.name(),
        from.announced(g.announce_hostnames),
        from.port,
        to.announced(g.announce_hostnames),
        to.port
    );
    fx.event(
        Level::Warning,
        "+switch-master",
        msg,
        m.notification_script.as_ref(),
    );
    reset_and_change_address(g, fx, m, &to.hostname, to.port, now);
}

/// Forget what was learnt of a master (replicas, optionally Sentinels, failover
/// state, links): SENTINEL RESET, and the first half of a switch.
pub fn reset_master(
    g: &Globals,
    fx: &mut Effects,
    m: &mut Master,
    keep_sentinels: bool,
    announce: bool,
    now: u64,
) {
    m.replicas.clear();
    if !keep_sentinels {
        m.sentinels.clear();
    }
    m.inst.close_links();
    m.inst.flags = 0;
    m.leader = None;
    m.failover_state = FailoverState::None;
    m.failover_state_change_time = 0;
    m.failover_start_time = 0;
    m.promoted = None;
    m.inst.runid = None;
    m.inst.slave_master_host = None;
    let l = &mut m.inst.link;
    l.act_ping_time = now;
    l.last_ping_time = 0;
    l.last_avail_time = now;
    l.last_pong_time = now;
    m.inst.role_reported_time = now;
    m.inst.role_reported = Kind::Master;
    if announce {
        event(g, fx, Level::Warning, "+reset-master", m, None, "");
    }
}

/// Point the master at a new address: the replicas known so far (but the new master)
/// and the old master become its replicas.
pub fn reset_and_change_address(
    g: &Globals,
    fx: &mut Effects,
    m: &mut Master,
    host: &str,
    port: u16,
    now: u64,
) -> bool {
    let Some(new) = super::config::resolve(host, port, false) else {
        return false;
    };
    let mut replicas: Vec<Addr> = m
        .replicas
        .values()
        .filter(|r| !r.addr.same(&new))
        .map(|r| r.addr.clone())
        .collect();
    if !new.same(&m.inst.addr) {
        replicas.push(m.inst.addr.clone());
    }
    reset_master(g, fx, m, true, false, now);
    m.inst.addr = new;
    m.inst.o_down_since = 0;
    m.inst.s_down_since = 0;
    for a in replicas {
        learn_replica(g, fx, m, a, now);
    }
    fx.flush_config = true;
    true
}

/// Run the master's client-reconfig-script: `<name> <role> start <from-ip>
/// <from-port> <to-ip> <to-port>`.
pub fn reconfig_script(
    g: &Globals,
    fx: &mut Effects,
    m: &Master,
    role: &str,
    from: &Addr,
    to: &Addr,
) {
    let Some(path) = &m.client_reconfig_script else {
        return;
    };
    fx.scripts.push(vec![
        path.clone(),
        m.name().to_string(),
        role.to_string(),
        "start".to_string(),
        from.announced(g.announce_hostnames).to_string(),
        from.port.to_string(),
        to.announced(g.announce_hostnames).to_string(),
        to.port.to_string(),
    ]);
}

/// A replica's INFO arrived: follow its role changes (Redis's tail of
/// `sentinelRefreshInstanceInfo`): a promotion we asked for, a replica that thinks
/// it is a master or follows the wrong master, and replicas reconfigured during a
/// failover.
pub fn after_replica_info(
    g: &mut Globals,
    fx: &mut Effects,
    m: &mut Master,
    key: &str,
    role: Option<Kind>,
    now: u64,
) {
    let view = View::of(m);
    let sane = m.looks_sane(g.timing.info_period, now);
    let in_failover = m.inst.has(FAILOVER_IN_PROGRESS);
    let master_addr = m.inst.addr.clone();
    let promoted_addr = m
        .promoted
        .as_ref()
        .and_then(|k| m.replicas.get(k))
        .map(|r| r.addr.clone());
    let Some(r) = m.replicas.get_mut(key) else {
        return;
    };
    if role == Some(Kind::Master) {
        if r.has(PROMOTED) && in_failover && m.failover_state == FailoverState::WaitPromotion {
            let to = r.addr.clone();
            m.config_epoch = m.failover_epoch;
            m.failover_state = FailoverState::ReconfSlaves;
            m.failover_state_change_time = now;
            fx.flush_config = true;
            replica_event(g, fx, Level::Warning, "+promoted-slave", m, key);
            if g.simfailure & 2 != 0 {
                fx.crash = true;
            }
            event(
                g,
                fx,
                Level::Warning,
                "+failover-state-reconf-slaves",
                m,
                None,
                "",
            );
            reconfig_script(g, fx, m, "leader", &master_addr, &to);
            force_hello_update(m, g.timing.publish_period);
        } else {
            let wait = g.timing.publish_period.saturating_mul(4);
            if !r.has(PROMOTED)
                && sane
                && r.no_down_for(wait, now)
                && now.saturating_sub(r.role_reported_time) > wait
                && send_slaveof(r, &view, Some(&master_addr), g.announce_hostnames)
            {
                replica_event(g, fx, Level::Notice, "+convert-to-slave", m, key);
            }
        }
        return;
    }
    if role != Some(Kind::Replica) {
        return;
    }
    let follows_master = r.slave_master_port == master_addr.port
        && r.slave_master_host
            .as_deref()
            .is_some_and(|h| master_addr.is_host(h));
    if !follows_master {
        let wait = m.failover_timeout;
        if sane
            && r.no_down_for(wait, now)
            && now.saturating_sub(r.slave_conf_change_time) > wait
            && send_slaveof(r, &view, Some(&master_addr), g.announce_hostnames)
        {
            replica_event(g, fx, Level::Notice, "+fix-slave-config", m, key);
            return;
        }
    }
    let Some(r) = m.replicas.get_mut(key) else {
        return;
    };
    if r.flags & (RECONF_SENT | RECONF_INPROG) == 0 {
        return;
    }
    if r.has(RECONF_SENT) {
        let at_promoted = promoted_addr.as_ref().is_some_and(|p| {
            r.slave_master_port == p.port
                && r.slave_master_host.as_deref().is_some_and(|h| p.is_host(h))
        });
        if at_promoted {
            r.flags &= !RECONF_SENT;
            r.flags |= RECONF_INPROG;
            replica_event(g, fx, Level::Notice, "+slave-reconf-inprog", m, key);
        }
    }
    let Some(r) = m.replicas.get_mut(key) else {
        return;
    };
    if r.has(RECONF_INPROG) && r.slave_master_link_up {
        r.flags &= !RECONF_INPROG;
        r.flags |= RECONF_DONE;
        replica_event(g, fx, Level::Notice, "+slave-reconf-done", m, key);
    }
}
