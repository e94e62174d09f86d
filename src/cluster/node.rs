//! What a node knows of every node of the cluster, itself included (Redis's
//! `clusterNode`): name, flags, address, config epoch, slots, master, the clocks of
//! the failure detector, and the failure reports other masters sent about it.

use super::link::Conn;

pub const NAMELEN: usize = 40;
pub const SLOT_BYTES: usize = 2048;

pub const MASTER: u16 = 1;
pub const SLAVE: u16 = 2;
pub const PFAIL: u16 = 4;
pub const FAIL: u16 = 8;
pub const MYSELF: u16 = 16;
pub const HANDSHAKE: u16 = 32;
pub const NOADDR: u16 = 64;
pub const MEET: u16 = 128;
pub const MIGRATE_TO: u16 = 256;
pub const NOFAILOVER: u16 = 512;

/// A random node name: 40 hex characters.
pub fn random_name() -> String {
    (0..NAMELEN)
        .map(|_| format!("{:x}", rand::random::<u8>() & 15))
        .collect()
}

/// The name field of a message as text (40 bytes).
pub fn name_str(b: &[u8; NAMELEN]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A name as the 40 bytes messages carry.
pub fn name_bytes(s: &str) -> [u8; NAMELEN] {
    let mut out = [0u8; NAMELEN];
    let b = s.as_bytes();
    let n = b.len().min(NAMELEN);
    out[..n].copy_from_slice(&b[..n]);
    out
}

pub struct Node {
    pub name: String,
    pub flags: u16,
    pub ctime: u64,
    pub config_epoch: u64,
    pub slots: Vec<u8>,
    pub numslots: usize,
    /// The master's name, for a replica.
    pub slaveof: Option<String>,
    pub ping_sent: u64,
    pub pong_received: u64,
    pub data_received: u64,
    pub fail_time: u64,
    /// When we last voted for a replica of this master.
    pub voted_time: u64,
    pub repl_offset: u64,
    pub ip: String,
    pub port: u16,
    pub pport: u16,
    pub cport: u16,
    pub hostname: String,
    /// Our outbound link to it, and when it was opened.
    pub link: Option<Conn>,
    pub link_ctime: u64,
    /// Masters that reported it PFAIL or FAIL, and when.
    pub fail_reports: Vec<(String, u64)>,
    /// Since when a master has been seen orphaned (a migration target without a
    /// working replica) by a replica considering migration; 0: not orphaned.
    pub orphaned_time: u64,
}

impl Node {
    pub fn new(name: String, flags: u16, now: u64) -> Node {
        Node {
            name,
            flags,
            ctime: now,
            config_epoch: 0,
            slots: vec![0; SLOT_BYTES],
            numslots: 0,
            slaveof: None,
            ping_sent: 0,
            pong_received: 0,
            data_received: 0,
            fail_time: 0,
            voted_time: 0,
            repl_offset: 0,
            ip: String::new(),
            port: 0,
            pport: 0,
            cport: 0,
            hostname: String::new(),
            link: None,
            link_ctime: 0,
            fail_reports: Vec::new(),
            orphaned_time: 0,
        }
    }

    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    pub fn is_master(&self) -> bool {
        self.has(MASTER)
    }

    pub fn has_slot(&self, slot: usize) -> bool {
        slot_bit(&self.slots, slot)
    }

    /// Set or clear a slot's bit; true if it changed.
    pub fn set_slot(&mut self, slot: usize, on: bool) -> bool {
        let (byte, bit) = (slot / 8, 1u8 << (slot % 8));
        let was = self.slots[byte] & bit != 0;
        if was == on {
            return false;
        }
        if on {
            self.slots[byte] |= bit;
            self.numslots += 1;
        } else {
            self.slots[byte] &= !bit;
            self.numslots -= 1;
        }
        true
    }

    /// `ip:port@cport[,hostname]` as CLUSTER NODES shows it.
    pub fn address(&self) -> String {
        if self.hostname.is_empty() {
            format!("{}:{}@{}", self.ip, self.port, self.cport)
        } else {
            format!("{}:{}@{},{}", self.ip, self.port, self.cport, self.hostname)
        }
    }
}

/// A slot's bit in a slot bitmap (Redis's bit order: slot 0 is bit 0 of byte 0).
pub fn slot_bit(bitmap: &[u8], slot: usize) -> bool {
    bitmap[slot / 8] & (1 << (slot % 8)) != 0
}

/// The flags as CLUSTER NODES lists them (`myself,master`, `slave`, `fail?` ...).
pub fn flags_text(flags: u16) -> String {
    let names = [
        (MYSELF, "myself"),
        (MASTER, "master"),
        (SLAVE, "slave"),
        (PFAIL, "fail?"),
        (FAIL, "fail"),
        (HANDSHAKE, "handshake"),
        (NOADDR, "noaddr"),
        (NOFAILOVER, "nofailover"),
    ];
    let out: Vec<&str> = names
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|(_, n)| *n)
        .collect();
    if out.is_empty() {
        "noflags".into()
    } else {
        out.join(",")
    }
}

/// Slot ranges of a bitmap: `[(start, end)]`.
pub fn ranges(bitmap: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    let mut s = 0;
    while s < crate::runtime::slots::SLOTS {
        // Whole bytes that continue the current run (or its absence) are skipped.
        match (bitmap[s / 8], start) {
            (0, None) | (0xff, Some(_)) if s % 8 == 0 => {
                s += 8;
                continue;
            }
            _ => {}
        }
        match (slot_bit(bitmap, s), start) {
            (true, None) => start = Some(s),
            (false, Some(b)) => {
                out.push((b, s - 1));
                start = None;
            }
            _ => {}
        }
        s += 1;
    }
    if let Some(b) = start {
        out.push((b, crate::runtime::slots::SLOTS - 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::slots::SLOTS;

    /// The byte-skipping scan finds what a bit-by-bit one finds.
    #[test]
    fn ranges_match_a_bit_by_bit_scan() {
        let naive = |b: &[u8]| {
            let on: Vec<usize> = (0..SLOTS).filter(|&s| slot_bit(b, s)).collect();
            let mut out: Vec<(usize, usize)> = Vec::new();
            for s in on {
                match out.last_mut() {
                    Some((_, e)) if *e + 1 == s => *e = s,
                    _ => out.push((s, s)),
                }
            }
            out
        };
        let mut seed = 7u64;
        for case in 0..200 {
            let mut b = vec![0u8; SLOTS / 8];
            for byte in b.iter_mut() {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *byte = match (seed >> 60) % 4 {
                    0 => 0,
                    1 => 0xff,
                    _ if case % 2 == 0 => (seed >> 32) as u8,
                    _ => 0,
                };
            }
            assert_eq!(ranges(&b), naive(&b));
        }
        assert_eq!(ranges(&vec![0xff; SLOTS / 8]), vec![(0, SLOTS - 1)]);
        assert!(ranges(&vec![0; SLOTS / 8]).is_empty());
    }
}
