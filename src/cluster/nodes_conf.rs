//! nodes.conf: the node's view of the cluster kept across restarts, in Redis's format
//! (one CLUSTER NODES line per node, then `vars currentEpoch N lastVoteEpoch N`),
//! written whole to a temporary file, fsynced and renamed over the old one.

use super::node::{self, Node};
use super::State;

/// One node's line, as CLUSTER NODES and nodes.conf show it.
pub fn node_line(st: &State, n: &Node, now_for_links: bool) -> String {
    let epoch = st.epoch_of(n);
    let link = if n.link.is_some() || n.has(node::MYSELF) || !now_for_links {
        "connected"
    } else {
        "disconnected"
    };
    let mut line = format!(
        "{} {} {} {} {} {} {} {}",
        n.name,
        n.address(),
        node::flags_text(n.flags),
        n.slaveof.as_deref().unwrap_or("-"),
        n.ping_sent,
        n.pong_received,
        epoch,
        link
    );
    for (a, b) in node::ranges(&n.slots) {
        if a == b {
            line += &format!(" {a}");
        } else {
            line += &format!(" {a}-{b}");
        }
    }
    // Our own open slots, in slot order, migrations before imports of the same slot.
    if n.has(node::MYSELF) {
        let mut open: Vec<(usize, &str, &String)> = st
            .migrating
            .iter()
            .map(|(s, to)| (*s, "->-", to))
            .chain(
                st.importing
                    .iter()
                    .filter(|(s, _)| !st.migrating.contains_key(s))
                    .map(|(s, from)| (*s, "-<-", from)),
            )
            .collect();
        open.sort_by_key(|(s, _, _)| *s);
        for (s, dir, other) in open {
            line += &format!(" [{s}{dir}{other}]");
        }
    }
    line
}

/// The whole file.
pub fn render(st: &State) -> String {
    let mut out = String::new();
    for n in st.nodes.values() {
        // Nodes still in handshake are not saved, as in Redis.
        if n.has(node::HANDSHAKE) {
            continue;
        }
        out += &node_line(st, n, false);
        out.push('\n');
    }
    out += &format!(
        "vars currentEpoch {} lastVoteEpoch {}\n",
        st.current_epoch, st.last_vote_epoch
    );
    out
}

/// Replace the file, fsynced, for a change that must survive a power loss (`sync`: an
/// epoch or a vote, Redis's CLUSTER_TODO_FSYNC_CONFIG); else overwrite it without
/// fsync, as Redis saves slot and node changes (a slot migration saves at every
/// SETSLOT).
pub fn write(path: &str, text: &str, sync: bool) -> std::io::Result<()> {
    if sync {
        crate::atomic_file::replace(path, text)
    } else {
        crate::atomic_file::overwrite_unsynced(path, text)
    }
}

/// Read a nodes.conf into `st` (Redis's `clusterLoadConfig`).
pub fn load(st: &mut State, text: &str, now: u64) -> Result<(), String> {
    let mut masters: Vec<(String, String)> = Vec::new();
    // (slot, migrating, other node), set once every node is known.
    let mut open: Vec<(usize, bool, String)> = Vec::new();
    for line in text.lines() {
        let argv: Vec<&str> = line.split_whitespace().collect();
        if argv.is_empty() {
            continue;
        }
        if argv[0] == "vars" {
            let mut i = 1;
            while i + 1 < argv.len() {
                let v = argv[i + 1].parse::<u64>().map_err(|_| line.to_string())?;
                match argv[i] {
                    "currentEpoch" => st.current_epoch = v,
                    "lastVoteEpoch" => st.last_vote_epoch = v,
                    other => crate::log::warning(&format!(
                        "Skipping unknown cluster config variable '{other}'"
                    )),
                }
                i += 2;
            }
            continue;
        }
        if argv.len() < 8 || argv[0].len() != node::NAMELEN {
            return Err(format!("invalid line '{line}'"));
        }
        let mut n = Node::new(argv[0].to_string(), 0, now);
        // ip:port@cport[,hostname]; older files have no @cport.
        let (addr, hostname) = argv[1].split_once(',').unwrap_or((argv[1], ""));
        n.hostname = hostname.to_string();
        let (hostport, cport) = match addr.split_once('@') {
            Some((hp, c)) => (hp, c.parse::<u16>().ok()),
            None => (addr, None),
        };
        let (ip, port) = hostport
            .rsplit_once(':')
            .ok_or_else(|| format!("invalid address in '{line}'"))?;
        n.ip = ip.to_string();
        n.port = port
            .parse()
            .map_err(|_| format!("invalid port in '{line}'"))?;
        n.cport = cport.unwrap_or(n.port.wrapping_add(10000));
        for f in argv[2].split(',') {
            n.flags |= match f {
                "myself" => node::MYSELF,
                "master" => node::MASTER,
                "slave" => node::SLAVE,
                "fail?" => node::PFAIL,
                "fail" => node::FAIL,
                "handshake" => node::HANDSHAKE,
                "noaddr" => node::NOADDR,
                "nofailover" => node::NOFAILOVER,
                "noflags" => 0,
                other => return Err(format!("unknown flag '{other}'")),
            };
        }
        if n.has(node::FAIL) {
            n.fail_time = now;
        }
        if argv[3] != "-" {
            masters.push((n.name.clone(), argv[3].to_string()));
        }
        n.config_epoch = argv[6]
            .parse()
            .map_err(|_| format!("invalid epoch in '{line}'"))?;
        if n.has(node::MYSELF) {
            if !st.myself.is_empty() {
                return Err("more than one node is myself".into());
            }
            st.myself = n.name.clone();
        }
        let name = n.name.clone();
        st.nodes.insert(name.clone(), n);
        for tok in &argv[8..] {
            // Slots being migrated or imported: [slot->-node], [slot-<-node].
            if let Some(inner) = tok.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                let (at, migrating) = match (inner.find("->-"), inner.find("-<-")) {
                    (Some(i), _) => (i, true),
                    (None, Some(i)) => (i, false),
                    _ => return Err(format!("invalid open slot '{tok}'")),
                };
                let slot = inner[..at]
                    .parse::<usize>()
                    .ok()
                    .filter(|s| *s < crate::runtime::slots::SLOTS)
                    .ok_or_else(|| format!("invalid open slot '{tok}'"))?;
                let other = &inner[at + 3..];
                if other.len() != node::NAMELEN {
                    return Err(format!("invalid node in '{tok}'"));
                }
                open.push((slot, migrating, other.to_string()));
                continue;
            }
            let (a, b) = match tok.split_once('-') {
                Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
                None => (tok.parse::<usize>(), tok.parse::<usize>()),
            };
            let (Ok(a), Ok(b)) = (a, b) else {
                return Err(format!("invalid slot '{tok}'"));
            };
            if a > b || b >= crate::runtime::slots::SLOTS {
                return Err(format!("invalid slot range '{tok}'"));
            }
            for s in a..=b {
                st.assign(s, Some(&name));
            }
        }
    }
    if st.myself.is_empty() {
        return Err("no node is myself".into());
    }
    for (replica, master) in masters {
        if !st.nodes.contains_key(&master) {
            st.nodes
                .insert(master.clone(), Node::new(master.clone(), node::NOADDR, now));
        }
        st.set_replica_of(&replica, Some(&master));
    }
    for (slot, migrating, other) in open {
        if !st.nodes.contains_key(&other) {
            st.nodes
                .insert(other.clone(), Node::new(other.clone(), node::NOADDR, now));
        }
        if migrating {
            st.set_migrating(slot, Some(other));
        } else {
            st.set_importing(slot, Some(other));
        }
    }
    // Our own slots may have been read before the line that says which node we are.
    for s in 0..crate::runtime::slots::SLOTS {
        let owner = st.slots[s].clone();
        st.assign(s, owner.as_deref());
    }
    crate::log::log(&format!(
        "Node configuration loaded, I'm {}",
        &st.myself[..node::NAMELEN.min(st.myself.len())]
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca";
    const OTHER: &str = "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1";

    /// Open slots are written on our own line, in slot order, as Redis writes them,
    /// and read back, including for a node whose line comes later in the file.
    #[test]
    fn open_slots_round_trip() {
        let text = format!(
            "{ME} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-10 [3->-{OTHER}] [20-<-{OTHER}]\n\
             {OTHER} 127.0.0.1:7001@17001 master - 0 0 2 connected 11-30\n\
             vars currentEpoch 2 lastVoteEpoch 0\n"
        );
        let mut st = State::new(&crate::config::Config::default(), String::new());
        load(&mut st, &text, 0).unwrap();
        assert_eq!(st.migrating.get(&3).map(String::as_str), Some(OTHER));
        assert_eq!(st.importing.get(&20).map(String::as_str), Some(OTHER));
        assert!(super::super::open(3) && super::super::open(20) && !super::super::open(4));
        let again = render(&st);
        let mine = again.lines().find(|l| l.starts_with(ME)).unwrap();
        assert!(
            mine.ends_with(&format!("0-10 [3->-{OTHER}] [20-<-{OTHER}]")),
            "{mine}"
        );
        st.set_migrating(3, None);
        st.delete_node(OTHER);
        assert!(st.importing.is_empty() && !super::super::open(3) && !super::super::open(20));
        let mut bad = State::new(&crate::config::Config::default(), String::new());
        let broken = text.replace("[3->-", "[3>>-");
        assert!(load(&mut bad, &broken, 0).is_err());
    }
}
