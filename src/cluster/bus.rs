//! The cluster bus's wire format: Redis 7.0's `clusterMsg` (`cluster.h`), byte for
//! byte, so Shardis and redis-server nodes understand each other.
//!
//! A message is a 2256-byte header (signature `RCmb`, total length, version 1, the
//! sender's ports, type, count, epochs, replication offset, name, slot bitmap, master's
//! name, IP, extension count, flags, cluster state, message flags) followed by the
//! type's data: gossip sections (104 bytes each) and ping extensions for PING / PONG /
//! MEET, a node name for FAIL, a config epoch, name and slot bitmap for UPDATE, a
//! channel and message for PUBLISH. Every integer is big-endian. Decoding checks the
//! length each type implies, as `clusterProcessPacket` does: a message that does not
//! add up is an error, which closes the link it came on.

use super::node::NAMELEN;

pub const SIG: &[u8; 4] = b"RCmb";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 2256;
pub const GOSSIP_LEN: usize = 104;
pub const IP_LEN: usize = 46;
/// The largest message read (a PUBLISH of a big message is the largest in practice).
pub const MAX_LEN: usize = 512 << 20;

pub const PING: u16 = 0;
pub const PONG: u16 = 1;
pub const MEET: u16 = 2;
pub const FAIL: u16 = 3;
pub const PUBLISH: u16 = 4;
pub const FAILOVER_AUTH_REQUEST: u16 = 5;
pub const FAILOVER_AUTH_ACK: u16 = 6;
pub const UPDATE: u16 = 7;
pub const MFSTART: u16 = 8;
pub const MODULE: u16 = 9;
pub const PUBLISHSHARD: u16 = 10;
pub const TYPES: usize = 11;

/// `mflags[0]`: the sender is a master paused for a manual failover.
pub const FLAG0_PAUSED: u8 = 1 << 0;
/// `mflags[0]`: vote even though the master is not failed (manual failover).
pub const FLAG0_FORCEACK: u8 = 1 << 1;
/// `mflags[0]`: the message carries ping extensions.
pub const FLAG0_EXT_DATA: u8 = 1 << 2;
/// Ping extension type: the sender's hostname.
pub const EXT_HOSTNAME: u16 = 0;

/// Redis's names for the message types (CLUSTER INFO's `cluster_stats_messages_*`).
pub fn type_name(t: usize) -> &'static str {
    [
        "ping",
        "pong",
        "meet",
        "fail",
        "publish",
        "auth-req",
        "auth-ack",
        "update",
        "mfstart",
        "module",
        "publishshard",
    ]
    .get(t)
    .copied()
    .unwrap_or("unknown")
}

/// The header's fields.
#[derive(Clone, Debug)]
pub struct Header {
    pub port: u16,
    pub kind: u16,
    pub count: u16,
    pub current_epoch: u64,
    pub config_epoch: u64,
    pub offset: u64,
    pub sender: [u8; NAMELEN],
    pub myslots: Vec<u8>,
    pub slaveof: [u8; NAMELEN],
    pub myip: String,
    pub extensions: u16,
    pub pport: u16,
    pub cport: u16,
    pub flags: u16,
    pub state: u8,
    pub mflags: [u8; 3],
}

/// One gossip section: what the sender knows of another node.
#[derive(Clone, Debug)]
pub struct Gossip {
    pub name: [u8; NAMELEN],
    pub ping_sent: u32,
    pub pong_received: u32,
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub flags: u16,
    pub pport: u16,
}

/// A decoded message.
#[derive(Clone, Debug)]
pub enum Body {
    Ping {
        gossip: Vec<Gossip>,
        hostname: Option<String>,
    },
    Fail {
        about: [u8; NAMELEN],
    },
    Publish {
        channel: Vec<u8>,
        message: Vec<u8>,
    },
    Update {
        config_epoch: u64,
        name: [u8; NAMELEN],
        slots: Vec<u8>,
    },
    /// FAILOVER_AUTH_REQUEST, FAILOVER_AUTH_ACK, MFSTART, MODULE: the header alone
    /// is used (or the message is ignored).
    Other,
}

#[derive(Clone, Debug)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn name_at(b: &[u8], at: usize) -> [u8; NAMELEN] {
    b[at..at + NAMELEN].try_into().expect("40 bytes")
}
/// A NUL-terminated string field.
fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The total length a buffer's first message claims, once 8 bytes are there.
pub fn claimed_len(buf: &[u8]) -> Option<usize> {
    (buf.len() >= 8).then(|| u32_at(buf, 4) as usize)
}

/// Decode one whole message (`buf` is exactly its `totlen` bytes).
pub fn decode(buf: &[u8]) -> Result<Message, String> {
    if buf.len() < 16 || &buf[..4] != SIG {
        return Err("bad signature".into());
    }
    let totlen = u32_at(buf, 4) as usize;
    if totlen != buf.len() {
        return Err("length mismatch".into());
    }
    if u16_at(buf, 8) != VERSION {
        return Err(format!("unsupported protocol version {}", u16_at(buf, 8)));
    }
    if buf.len() < HEADER_LEN {
        return Err(format!(
            "packet of {} bytes is shorter than a header",
            buf.len()
        ));
    }
    let h = Header {
        port: u16_at(buf, 10),
        kind: u16_at(buf, 12),
        count: u16_at(buf, 14),
        current_epoch: u64_at(buf, 16),
        config_epoch: u64_at(buf, 24),
        offset: u64_at(buf, 32),
        sender: name_at(buf, 40),
        myslots: buf[80..2128].to_vec(),
        slaveof: name_at(buf, 2128),
        myip: cstr(&buf[2168..2168 + IP_LEN]),
        extensions: u16_at(buf, 2214),
        pport: u16_at(buf, 2246),
        cport: u16_at(buf, 2248),
        flags: u16_at(buf, 2250),
        state: buf[2252],
        mflags: [buf[2253], buf[2254], buf[2255]],
    };
    let data = &buf[HEADER_LEN..];
    let wrong = |want: usize| {
        Err(format!(
            "invalid {} packet of length {totlen} but expected length {want}",
            type_name(h.kind as usize)
        ))
    };
    let body = match h.kind {
        PING | PONG | MEET => {
            let n = h.count as usize;
            let gossip_end = n * GOSSIP_LEN;
            if data.len() < gossip_end {
                return wrong(HEADER_LEN + gossip_end);
            }
            let gossip = (0..n)
                .map(|i| {
                    let g = &data[i * GOSSIP_LEN..(i + 1) * GOSSIP_LEN];
                    Gossip {
                        name: name_at(g, 0),
                        ping_sent: u32_at(g, 40),
                        pong_received: u32_at(g, 44),
                        ip: cstr(&g[48..48 + IP_LEN]),
                        port: u16_at(g, 94),
                        cport: u16_at(g, 96),
                        flags: u16_at(g, 98),
                        pport: u16_at(g, 100),
                    }
                })
                .collect();
            let mut at = gossip_end;
            let mut hostname = None;
            if h.mflags[0] & FLAG0_EXT_DATA != 0 {
                for _ in 0..h.extensions {
                    if data.len() < at + 8 {
                        return Err("ping extension past the end".into());
                    }
                    let len = u32_at(data, at) as usize;
                    if !len.is_multiple_of(8) || len < 8 || data.len() < at + len {
                        return Err(format!("ping extension of {len} bytes"));
                    }
                    if u16_at(data, at + 4) == EXT_HOSTNAME {
                        hostname = Some(cstr(&data[at + 8..at + len]));
                    }
                    at += len;
                }
            }
            if at != data.len() {
                return wrong(HEADER_LEN + at);
            }
            Body::Ping { gossip, hostname }
        }
        FAIL => {
            if data.len() != NAMELEN {
                return wrong(HEADER_LEN + NAMELEN);
            }
            Body::Fail {
                about: name_at(data, 0),
            }
        }
        PUBLISH | PUBLISHSHARD => {
            if data.len() < 8 {
                return wrong(HEADER_LEN + 16);
            }
            let (cl, ml) = (u32_at(data, 0) as usize, u32_at(data, 4) as usize);
            // Redis's length: the struct less its 8-byte placeholder, plus both.
            let want = 8 + cl + ml;
            if data.len() != want {
                return wrong(HEADER_LEN + want);
            }
            Body::Publish {
                channel: data[8..8 + cl].to_vec(),
                message: data[8 + cl..8 + cl + ml].to_vec(),
            }
        }
        UPDATE => {
            if data.len() != 8 + NAMELEN + 2048 {
                return wrong(HEADER_LEN + 8 + NAMELEN + 2048);
            }
            Body::Update {
                config_epoch: u64_at(data, 0),
                name: name_at(data, 8),
                slots: data[8 + NAMELEN..].to_vec(),
            }
        }
        _ => Body::Other,
    };
    Ok(Message { header: h, body })
}

/// Encode a message: the header, then the body.
pub fn encode(h: &Header, body: &Body) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    out[..4].copy_from_slice(SIG);
    out[8..10].copy_from_slice(&VERSION.to_be_bytes());
    out[10..12].copy_from_slice(&h.port.to_be_bytes());
    out[12..14].copy_from_slice(&h.kind.to_be_bytes());
    out[16..24].copy_from_slice(&h.current_epoch.to_be_bytes());
    out[24..32].copy_from_slice(&h.config_epoch.to_be_bytes());
    out[32..40].copy_from_slice(&h.offset.to_be_bytes());
    out[40..80].copy_from_slice(&h.sender);
    out[80..2128].copy_from_slice(&h.myslots[..2048]);
    out[2128..2168].copy_from_slice(&h.slaveof);
    let ip = h.myip.as_bytes();
    let n = ip.len().min(IP_LEN - 1);
    out[2168..2168 + n].copy_from_slice(&ip[..n]);
    out[2246..2248].copy_from_slice(&h.pport.to_be_bytes());
    out[2248..2250].copy_from_slice(&h.cport.to_be_bytes());
    out[2250..2252].copy_from_slice(&h.flags.to_be_bytes());
    out[2252] = h.state;
    out[2253..2256].copy_from_slice(&h.mflags);
    let mut count = 0u16;
    let mut extensions = 0u16;
    match body {
        Body::Ping { gossip, hostname } => {
            count = gossip.len() as u16;
            for g in gossip {
                let mut e = [0u8; GOSSIP_LEN];
                e[..40].copy_from_slice(&g.name);
                e[40..44].copy_from_slice(&g.ping_sent.to_be_bytes());
                e[44..48].copy_from_slice(&g.pong_received.to_be_bytes());
                let ip = g.ip.as_bytes();
                let n = ip.len().min(IP_LEN - 1);
                e[48..48 + n].copy_from_slice(&ip[..n]);
                e[94..96].copy_from_slice(&g.port.to_be_bytes());
                e[96..98].copy_from_slice(&g.cport.to_be_bytes());
                e[98..100].copy_from_slice(&g.flags.to_be_bytes());
                e[100..102].copy_from_slice(&g.pport.to_be_bytes());
                out.extend_from_slice(&e);
            }
            if let Some(host) = hostname.as_ref().filter(|h| !h.is_empty()) {
                // Header, the name, its NUL, padding to 8 bytes.
                let len = (8 + host.len() + 1).div_ceil(8) * 8;
                out.extend_from_slice(&(len as u32).to_be_bytes());
                out.extend_from_slice(&EXT_HOSTNAME.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(host.as_bytes());
                out.resize(out.len() + len - 8 - host.len(), 0);
                out[2253] |= FLAG0_EXT_DATA;
                extensions = 1;
            }
        }
        Body::Fail { about } => out.extend_from_slice(about),
        Body::Publish { channel, message } => {
            out.extend_from_slice(&(channel.len() as u32).to_be_bytes());
            out.extend_from_slice(&(message.len() as u32).to_be_bytes());
            out.extend_from_slice(channel);
            out.extend_from_slice(message);
        }
        Body::Update {
            config_epoch,
            name,
            slots,
        } => {
            out.extend_from_slice(&config_epoch.to_be_bytes());
            out.extend_from_slice(name);
            out.extend_from_slice(&slots[..2048]);
        }
        Body::Other => {}
    }
    out[14..16].copy_from_slice(&count.to_be_bytes());
    out[2214..2216].copy_from_slice(&extensions.to_be_bytes());
    let len = out.len() as u32;
    out[4..8].copy_from_slice(&len.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u16) -> Header {
        Header {
            port: 7000,
            kind,
            current_epoch: 5,
            config_epoch: 3,
            sender: [b'a'; NAMELEN],
            myslots: {
                let mut s = vec![0u8; 2048];
                s[0] = 0b101;
                s
            },
            slaveof: [0; NAMELEN],
            myip: "10.0.0.1".into(),
            cport: 17000,
            flags: 1,
            count: 0,
            offset: 0,
            extensions: 0,
            pport: 0,
            state: 0,
            mflags: [0; 3],
        }
    }

    #[test]
    fn every_body_round_trips() {
        let bodies = [
            (
                PING,
                Body::Ping {
                    gossip: vec![Gossip {
                        name: [b'b'; NAMELEN],
                        ping_sent: 1,
                        pong_received: 2,
                        ip: "127.0.0.1".into(),
                        port: 7001,
                        cport: 17001,
                        flags: 1,
                        pport: 0,
                    }],
                    hostname: Some("node-a.example".into()),
                },
            ),
            (
                FAIL,
                Body::Fail {
                    about: [b'c'; NAMELEN],
                },
            ),
            (
                PUBLISH,
                Body::Publish {
                    channel: b"ch".to_vec(),
                    message: b"hello world".to_vec(),
                },
            ),
            (
                PUBLISH,
                Body::Publish {
                    channel: b"c".to_vec(),
                    message: b"m".to_vec(),
                },
            ),
            (
                UPDATE,
                Body::Update {
                    config_epoch: 9,
                    name: [b'd'; NAMELEN],
                    slots: vec![7; 2048],
                },
            ),
        ];
        for (kind, body) in bodies {
            let bytes = encode(&header(kind), &body);
            assert_eq!(claimed_len(&bytes), Some(bytes.len()));
            let m = decode(&bytes).unwrap();
            assert_eq!(m.header.kind, kind);
            assert_eq!(m.header.myip, "10.0.0.1");
            assert_eq!(m.header.cport, 17000);
            assert_eq!(m.header.myslots[0], 0b101);
            assert_eq!(format!("{:?}", m.body), format!("{body:?}"));
        }
        // A header alone is exactly Redis's sizeof(clusterMsg) - sizeof(union).
        assert_eq!(encode(&header(MFSTART), &Body::Other).len(), 2256);
    }

    #[test]
    fn bad_messages_are_errors() {
        let good = encode(
            &header(PING),
            &Body::Ping {
                gossip: vec![],
                hostname: None,
            },
        );
        let mut bad_sig = good.clone();
        bad_sig[0] = b'X';
        let mut bad_ver = good.clone();
        bad_ver[9] = 2;
        let mut bad_count = good.clone();
        bad_count[15] = 3;
        for b in [bad_sig, bad_ver, bad_count, good[..100].to_vec()] {
            assert!(decode(&b).is_err());
        }
    }
}
