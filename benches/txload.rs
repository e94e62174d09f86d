//! Load generator for MULTI/EXEC blocks, which `redis-benchmark` cannot send: several
//! connections, one OS thread each, send whole transactions
//! `MULTI; SET k0 v; INCR k1; GET k2; SET k3 v; INCR k4; EXEC` (5 queued commands) in raw
//! RESP, optionally pipelining several blocks per write, and report transactions per
//! second and the round-trip time of each write.
//!
//! The one idea to hold: the five keys of a block are drawn from five pools whose keys
//! lie in five evenly spaced slot ranges (slot = CRC16-XMODEM(key) & 16383, and Shardis
//! gives shard `slot * nshards / 16384`), so with two or more shards every block spans
//! shards, and with five or more it touches five; the same bytes go to redis-server, so
//! the two servers do identical work. Only `std` is used, so `benches/load.sh` builds this
//! file with plain `rustc` in seconds, without a release build of the crate.
//!
//! ```text
//! cargo bench --bench txload -- --port 6379 [--conns 16] [--txs 20000] [--pipeline 1]
//! txload --tags 10        # print 10 hash tags with evenly spread slots (for MSET keys)
//! txload --port 6379 --tag t1   # every key under hash tag {t1}: each block on one shard
//! ```
//! Output: a human-readable line on stderr and one tab-separated line on stdout:
//! `tx_per_s  p50_ms  p99_ms  txs  errors  secs` (p50/p99 of one write's round trip).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::exit;
use std::time::{Duration, Instant};

/// Commands queued per transaction.
const CMDS: usize = 5;
/// Keys per pool: enough that blocks do not all hit one key, few enough to stay hot.
const POOL: usize = 1000;

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn slot(key: &[u8]) -> usize {
    (crc16_xmodem(key) & 16383) as usize
}

/// `count` names `<prefix><n>` whose slot lies in range `part` of `parts` equal ranges.
fn names_in_range(prefix: &str, part: usize, parts: usize, count: usize) -> Vec<String> {
    let (lo, hi) = (part * 16384 / parts, (part + 1) * 16384 / parts);
    (0u64..)
        .map(|n| format!("{prefix}{n}"))
        .filter(|k| (lo..hi).contains(&slot(k.as_bytes())))
        .take(count)
        .collect()
}

fn encode(out: &mut Vec<u8>, argv: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", argv.len()).as_bytes());
    for a in argv {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Length of the complete reply at the front of `buf`, if it is all there.
fn reply_len(buf: &[u8]) -> Option<usize> {
    let eol = buf.windows(2).position(|w| w == b"\r\n")?;
    let head = eol + 2;
    let num = || -> i64 {
        std::str::from_utf8(&buf[1..eol])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1)
    };
    match buf.first()? {
        b'$' => {
            let n = num();
            if n < 0 {
                Some(head)
            } else {
                let end = head + n as usize + 2;
                (buf.len() >= end).then_some(end)
            }
        }
        b'*' => {
            let mut used = head;
            for _ in 0..num().max(0) {
                used += reply_len(&buf[used..])?;
            }
            Some(used)
        }
        _ => Some(head),
    }
}

struct Opts {
    port: u16,
    conns: usize,
    txs: usize,
    pipeline: usize,
    /// Every key under this hash tag (one slot) instead of five slot ranges.
    tag: Option<String>,
}

struct Outcome {
    txs: usize,
    errors: usize,
    rtts_us: Vec<u32>,
}

/// A small xorshift: the key choice needs speed and spread, not quality.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn client(port: u16, seed: u64, txs: usize, pipeline: usize, pools: &[Vec<String>]) -> Outcome {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| {
        eprintln!("txload: connect to port {port}: {e}");
        exit(1)
    });
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let value = b"vvvvvvvvvvvvvvvv";
    let mut out = Outcome {
        txs: 0,
        errors: 0,
        rtts_us: Vec::with_capacity(txs / pipeline + 1),
    };
    let mut req = Vec::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut tmp = vec![0u8; 64 * 1024];
    while out.txs < txs {
        let blocks = pipeline.min(txs - out.txs);
        req.clear();
        for _ in 0..blocks {
            let k: Vec<&[u8]> = pools
                .iter()
                .map(|p| p[rng.below(p.len())].as_bytes())
                .collect();
            encode(&mut req, &[b"MULTI"]);
            encode(&mut req, &[b"SET", k[0], value]);
            encode(&mut req, &[b"INCR", k[1]]);
            encode(&mut req, &[b"GET", k[2]]);
            encode(&mut req, &[b"SET", k[3], value]);
            encode(&mut req, &[b"INCR", k[4]]);
            encode(&mut req, &[b"EXEC"]);
        }
        let start = Instant::now();
        if let Err(e) = s.write_all(&req) {
            eprintln!("txload: write: {e}");
            exit(1)
        }
        let want = blocks * (CMDS + 2);
        let mut got = 0;
        buf.clear();
        let mut pos = 0;
        while got < want {
            while let Some(n) = reply_len(&buf[pos..]) {
                let reply = &buf[pos..pos + n];
                let is_exec = got % (CMDS + 2) == CMDS + 1;
                let good = if is_exec {
                    reply.starts_with(format!("*{CMDS}\r\n").as_bytes())
                        && !reply.windows(3).any(|w| w == b"\r\n-")
                } else {
                    reply[0] == b'+'
                };
                out.errors += !good as usize;
                pos += n;
                got += 1;
                if got == want {
                    break;
                }
            }
            if got == want {
                break;
            }
            match s.read(&mut tmp) {
                Ok(0) => {
                    eprintln!("txload: server closed the connection");
                    exit(1)
                }
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
                Err(e) => {
                    eprintln!("txload: read: {e}");
                    exit(1)
                }
            }
        }
        out.rtts_us
            .push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
        out.txs += blocks;
    }
    out
}

fn usage() -> ! {
    eprintln!(
        "usage: txload --port PORT [--conns N] [--txs N] [--pipeline N] [--tag T]\n       \
         txload --tags N"
    );
    exit(2)
}

fn main() {
    let mut opts = Opts {
        port: 0,
        conns: 16,
        txs: 20_000,
        pipeline: 1,
        tag: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage())
        };
        match a.as_str() {
            "--port" => opts.port = num() as u16,
            "--conns" => opts.conns = num().max(1),
            "--txs" => opts.txs = num().max(1),
            "--pipeline" => opts.pipeline = num().max(1),
            "--tag" => opts.tag = Some(args.next().unwrap_or_else(|| usage())),
            "--tags" => {
                let n = num().max(1);
                for part in 0..n {
                    println!("{}", names_in_range("s", part, n, 1)[0]);
                }
                return;
            }
            // `cargo bench` passes --bench (and filters) to every bench target.
            "--bench" => {}
            _ if !a.starts_with("--") => {}
            _ => usage(),
        }
    }
    if opts.port == 0 {
        // Plain `cargo bench` runs every bench target: there is no server to load here.
        eprintln!("txload: no --port given, nothing to do (see benches/README.md)");
        return;
    }
    let pools: Vec<Vec<String>> = (0..CMDS)
        .map(|i| match &opts.tag {
            Some(t) => (0..POOL).map(|n| format!("{{{t}}}tx{i}:{n}")).collect(),
            None => names_in_range(&format!("tx{i}:"), i, CMDS, POOL),
        })
        .collect();
    let per_conn = opts.txs.div_ceil(opts.conns);
    let start = Instant::now();
    let handles: Vec<_> = (0..opts.conns)
        .map(|c| {
            let pools = pools.clone();
            let (port, pipeline) = (opts.port, opts.pipeline);
            std::thread::spawn(move || client(port, c as u64 + 1, per_conn, pipeline, &pools))
        })
        .collect();
    let mut txs = 0;
    let mut errors = 0;
    let mut rtts = Vec::new();
    for h in handles {
        let o = h.join().unwrap_or_else(|_| exit(1));
        txs += o.txs;
        errors += o.errors;
        rtts.extend(o.rtts_us);
    }
    let secs = start.elapsed().as_secs_f64();
    rtts.sort_unstable();
    let pct = |p: f64| -> f64 {
        if rtts.is_empty() {
            return 0.0;
        }
        let i = ((rtts.len() as f64 * p).ceil() as usize).clamp(1, rtts.len()) - 1;
        rtts[i] as f64 / 1000.0
    };
    let tps = txs as f64 / secs;
    eprintln!(
        "txload: port {} conns {} pipeline {}: {txs} transactions of {CMDS} commands in \
         {secs:.2} s = {tps:.0} tx/s, write round trip p50 {:.3} ms p99 {:.3} ms, {errors} \
         unexpected replies",
        opts.port,
        opts.conns,
        opts.pipeline,
        pct(0.50),
        pct(0.99)
    );
    println!(
        "{tps:.0}\t{:.3}\t{:.3}\t{txs}\t{errors}\t{secs:.3}",
        pct(0.50),
        pct(0.99)
    );
    if errors > 0 {
        exit(1);
    }
}
