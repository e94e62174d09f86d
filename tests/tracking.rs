//! Client-side caching (CLIENT TRACKING) against the real binary, beside a real
//! redis-server: the same script runs on both and every frame each connection
//! receives (replies and invalidation messages) is written to a transcript; the two
//! transcripts must be equal. Shardis runs 2 shards, the tracking client on core 0 and
//! the writer on core 1, the keys on both shards.
//!
//! The one idea to hold: an invalidation caused by another connection reaches the
//! tracker some time after the write's reply, so the script reads it (blocking) before
//! the tracker's next command; "no invalidation" is shown by a marker key written after,
//! whose invalidation must be the next frame. Client ids differ between the servers:
//! the transcript shows them as `<id>`.

mod common;

use common::{conn_on, keys_on_distinct_shards, show, wait_until, Frame, RawConn, Server};
use std::time::Duration;

/// One server's side of a script: its connections and what they received.
struct Side {
    shardis: bool,
    server: Server,
    conns: Vec<RawConn>,
    ids: Vec<i64>,
    log: Vec<String>,
}

impl Side {
    /// `cores[i]`: the core connection `i` is on (Shardis only).
    fn new(shardis: bool, cores: &[usize]) -> Side {
        let server = if shardis {
            Server::shardis(2)
        } else {
            Server::redis()
        };
        let mut conns: Vec<RawConn> = cores
            .iter()
            .map(|&c| {
                if shardis {
                    conn_on(&server, c)
                } else {
                    server.raw()
                }
            })
            .collect();
        let ids = conns
            .iter_mut()
            .map(|c| match c.cmd(&["CLIENT", "ID"]) {
                Frame::Int(i) => i,
                f => panic!("CLIENT ID: {}", show(&f)),
            })
            .collect();
        Side {
            shardis,
            server,
            conns,
            ids,
            log: Vec::new(),
        }
    }

    /// A frame as text, client ids (integers equal to one) replaced by `<idN>`.
    fn text(&self, f: &Frame) -> String {
        show(&self.masked(f))
    }

    fn masked(&self, f: &Frame) -> Frame {
        match f {
            Frame::Int(i) => match self.ids.iter().position(|id| id == i) {
                Some(n) => Frame::Simple(format!("<id{n}>")),
                None => f.clone(),
            },
            Frame::Array(xs) => Frame::Array(xs.iter().map(|x| self.masked(x)).collect()),
            Frame::Push(xs) => Frame::Push(xs.iter().map(|x| self.masked(x)).collect()),
            Frame::Set(xs) => Frame::Set(xs.iter().map(|x| self.masked(x)).collect()),
            Frame::Map(kv) => Frame::Map(
                kv.iter()
                    .map(|(k, v)| (self.masked(k), self.masked(v)))
                    .collect(),
            ),
            _ => f.clone(),
        }
    }

    /// Send a command on `c` (`{N}` in it: connection N's id) and log its reply.
    fn cmd(&mut self, c: usize, template: &str) -> Frame {
        let line = self.subst(template);
        let argv: Vec<&str> = line.split_whitespace().collect();
        let f = self.conns[c].cmd(&argv);
        // Only these replies hold client ids.
        let t = if template.contains("GETREDIR") || template.contains("TRACKINGINFO") {
            self.text(&f)
        } else {
            show(&f)
        };
        self.log.push(format!("[{c}] {template} -> {t}"));
        f
    }

    /// Read the next frame on `c` (an invalidation) and log it.
    fn read(&mut self, c: usize) {
        let f = self.conns[c].read_frame();
        let t = self.text(&f);
        self.log.push(format!("[{c}] <- {t}"));
    }

    /// Read `n` frames on `c` whose order is not deterministic, logged sorted.
    fn read_unordered(&mut self, c: usize, n: usize) {
        let mut got: Vec<String> = (0..n)
            .map(|_| {
                let f = self.conns[c].read_frame();
                self.text(&f)
            })
            .collect();
        got.sort();
        self.log
            .push(format!("[{c}] <- (any order) {}", got.join(" | ")));
    }

    fn subst(&self, line: &str) -> String {
        let mut s = line.to_string();
        for (i, id) in self.ids.iter().enumerate() {
            s = s.replace(&format!("{{{i}}}"), &id.to_string());
        }
        s
    }

    /// HELLO 3, its reply (server-specific) left out.
    fn hello3(&mut self, c: usize) {
        self.conns[c].cmd(&["HELLO", "3"]);
        self.log.push(format!("[{c}] HELLO 3"));
    }

    /// CLIENT INFO's `flags` and `redir` (a client id as `<idN>`).
    fn client_info(&mut self, c: usize) {
        let text = match self.conns[c].cmd(&["CLIENT", "INFO"]) {
            Frame::Bulk(b) | Frame::Verbatim(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("CLIENT INFO: {}", show(&other)),
        };
        let mut shown = Vec::new();
        for field in text.split_whitespace() {
            if field.starts_with("flags=") {
                shown.push(field.to_string());
            }
            if let Some(r) = field.strip_prefix("redir=") {
                let id = r
                    .parse()
                    .ok()
                    .and_then(|r: i64| self.ids.iter().position(|id| *id == r));
                shown.push(id.map_or(field.to_string(), |n| format!("redir=<id{n}>")));
            }
        }
        self.log
            .push(format!("[{c}] CLIENT INFO {}", shown.join(" ")));
    }

    /// One line of INFO.
    fn info(&mut self, c: usize, field: &str) {
        let f = self.conns[c].cmd(&["INFO", "everything"]);
        let text = match f {
            Frame::Bulk(b) | Frame::Verbatim(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("INFO: {}", show(&other)),
        };
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in INFO"))
            .to_string();
        self.log.push(format!("[{c}] INFO {line}"));
    }
}

/// Run `script` on Shardis and Redis with connections on `cores`; the transcripts
/// must be equal.
fn same(name: &str, cores: &[usize], script: impl Fn(&mut Side)) {
    let mut r = Side::new(false, cores);
    script(&mut r);
    let mut s = Side::new(true, cores);
    script(&mut s);
    let (rl, sl) = (r.log.join("\n"), s.log.join("\n"));
    if rl != sl {
        let first = r
            .log
            .iter()
            .zip(&s.log)
            .position(|(a, b)| a != b)
            .unwrap_or(r.log.len().min(s.log.len()));
        panic!(
            "{name}: transcripts differ at line {first}\n--- redis ---\n{rl}\n--- shardis ---\n{sl}\n--- shardis log ---\n{}",
            s.server.log_text()
        );
    }
    let _ = (r.shardis, s.shardis);
}

/// Two keys on different shards of a 2-shard Shardis, plus a marker on each.
fn keys() -> Vec<String> {
    keys_on_distinct_shards("k", 4, 2)
}

#[test]
fn resp3_reads_then_writes_from_another_core() {
    let k = keys();
    same("resp3", &[0, 1], |s| {
        s.hello3(0);
        s.cmd(0, "CLIENT TRACKING ON");
        s.cmd(1, &format!("SET {} a", k[0]));
        s.cmd(1, &format!("SET {} b", k[1]));
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(0, &format!("GET {}", k[1]));
        s.info(1, "tracking_clients");
        s.info(1, "tracking_total_keys");
        s.info(1, "tracking_total_items");
        s.cmd(1, &format!("SET {} x", k[0]));
        s.read(0);
        s.cmd(1, &format!("DEL {}", k[1]));
        s.read(0);
        // Not read again since: no invalidation; the marker's comes next.
        s.cmd(1, &format!("SET {} y", k[0]));
        s.cmd(0, &format!("GET {}", k[2]));
        s.cmd(1, &format!("SET {} m", k[2]));
        s.read(0);
        // A multi-key read across shards, then a multi-key write.
        s.cmd(0, &format!("MGET {} {}", k[0], k[1]));
        s.cmd(1, &format!("INCR {}", k[1]));
        s.read(0);
        s.cmd(1, &format!("APPEND {} z", k[0]));
        s.read(0);
        // A write that changes nothing invalidates nothing.
        s.cmd(0, &format!("GET {}", k[3]));
        s.cmd(1, &format!("SET {} v NX", k[2]));
        s.cmd(0, &format!("GET {}", k[2]));
        s.cmd(1, &format!("SETNX {} v", k[2]));
        s.cmd(1, &format!("SET {} m", k[3]));
        s.read(0);
        s.info(1, "tracking_total_keys");
        // FLUSHALL: a null invalidation.
        s.cmd(1, "FLUSHALL");
        s.read(0);
        s.info(1, "tracking_total_keys");
        s.cmd(0, "CLIENT TRACKINGINFO");
        s.cmd(0, "CLIENT GETREDIR");
        s.cmd(0, "CLIENT TRACKING OFF");
        s.cmd(0, "CLIENT TRACKINGINFO");
        s.cmd(0, "CLIENT GETREDIR");
        s.info(1, "tracking_clients");
        // Turning tracking off leaves the client's keys in the table; FLUSHALL
        // empties it even when nobody tracks any more (Redis's tracking unit,
        // "Test ASYNC flushall", counts on it).
        s.cmd(0, "CLIENT TRACKING ON");
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(0, &format!("GET {}", k[1]));
        s.cmd(0, "CLIENT TRACKING OFF");
        s.info(1, "tracking_total_keys");
        s.cmd(1, "FLUSHALL");
        s.info(1, "tracking_total_keys");
    });
}

#[test]
fn resp2_redirect_to_a_subscriber() {
    let k = keys();
    same("redirect", &[0, 1, 1], |s| {
        s.cmd(1, "SUBSCRIBE __redis__:invalidate");
        s.cmd(0, "CLIENT TRACKING ON REDIRECT {1}");
        s.cmd(0, "CLIENT GETREDIR");
        s.cmd(0, "CLIENT TRACKINGINFO");
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(0, &format!("GET {}", k[1]));
        s.cmd(2, &format!("SET {} 1", k[0]));
        s.read(1);
        s.cmd(2, &format!("SET {} 1", k[1]));
        s.read(1);
        s.cmd(2, "FLUSHDB");
        s.read(1);
        // The tracker itself writes (no NOLOOP): the subscriber hears it.
        s.cmd(0, &format!("GET {}", k[1]));
        s.cmd(0, &format!("SET {} 2", k[1]));
        s.read(1);
    });
}

#[test]
fn resp3_redirect_broken() {
    let k = keys();
    same("broken", &[0, 1, 1], |s| {
        s.hello3(0);
        s.cmd(0, "CLIENT TRACKING ON REDIRECT {1}");
        s.cmd(0, &format!("GET {}", k[1]));
        s.cmd(2, "CLIENT KILL ID {1}");
        let id = s.ids[1].to_string();
        let conn = &mut s.conns[2];
        assert!(wait_until(Duration::from_secs(10), || {
            let f = conn.cmd(&["CLIENT", "LIST", "ID", &id]);
            matches!(f, Frame::Bulk(ref b) | Frame::Verbatim(ref b) if b.is_empty())
        }));
        s.client_info(0);
        s.cmd(2, &format!("SET {} 1", k[1]));
        s.read(0);
        s.cmd(0, "CLIENT TRACKINGINFO");
        s.client_info(0);
    });
}

#[test]
fn bcast_with_prefixes_and_noloop() {
    same("bcast", &[0, 1], |s| {
        s.hello3(0);
        s.client_info(0);
        s.cmd(0, "CLIENT TRACKING ON BCAST PREFIX a: PREFIX b:");
        s.cmd(0, "CLIENT TRACKINGINFO");
        s.client_info(0);
        s.info(1, "tracking_total_prefixes");
        s.cmd(1, "SET a:1 x");
        s.read(0);
        s.cmd(1, "SET c:1 x");
        s.cmd(1, "MSET a:{t}1 1 b:{t}1 2 a:{t}2 3");
        s.read(0);
        s.read(0);
        // A transaction's writes: one message per prefix after it.
        s.cmd(1, "MULTI");
        for line in [
            "INCR a:1{t}",
            "INCR b:1{t}",
            "INCR a:2{t}",
            "INCR c:1{t}",
            "INCR b:2{t}",
        ] {
            s.cmd(1, line);
        }
        s.cmd(1, "EXEC");
        s.read(0);
        s.read(0);
        // NOLOOP: its own writes are not sent back.
        s.cmd(0, "CLIENT TRACKING ON BCAST NOLOOP PREFIX z:");
        s.cmd(0, "CLIENT TRACKINGINFO");
        s.cmd(0, "SET a:2 x");
        s.cmd(1, "SET z:1 x");
        s.read(0);
        // Without a prefix: every key.
        s.cmd(0, "CLIENT TRACKING OFF");
        s.cmd(0, "CLIENT TRACKING ON BCAST");
        s.cmd(1, "SET anything 1");
        s.read(0);
        s.info(1, "tracking_total_prefixes");
    });
}

#[test]
fn optin_optout_and_caching() {
    let k = keys();
    same("optin", &[0, 1], |s| {
        s.hello3(0);
        s.cmd(0, "CLIENT TRACKING ON OPTIN");
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(0, "CLIENT CACHING YES");
        s.cmd(0, "CLIENT TRACKINGINFO");
        s.cmd(0, &format!("GET {}", k[1]));
        s.cmd(0, "CLIENT TRACKINGINFO");
        s.cmd(0, &format!("GET {}", k[2]));
        s.cmd(1, &format!("SET {} 1", k[0]));
        s.cmd(1, &format!("SET {} 1", k[2]));
        s.cmd(1, &format!("SET {} 1", k[1]));
        s.read(0);
        s.cmd(0, "CLIENT TRACKING OFF");
        s.cmd(0, "CLIENT TRACKING ON OPTOUT");
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(0, "CLIENT CACHING NO");
        s.cmd(0, "CLIENT TRACKINGINFO");
        s.cmd(0, &format!("GET {}", k[1]));
        s.cmd(1, &format!("SET {} 2", k[1]));
        s.cmd(1, &format!("SET {} 2", k[0]));
        s.read(0);
    });
}

#[test]
fn noloop_and_own_writes() {
    let k = keys();
    same("noloop", &[0, 1], |s| {
        s.hello3(0);
        s.cmd(0, "CLIENT TRACKING ON NOLOOP");
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(0, &format!("GET {}", k[1]));
        s.cmd(0, &format!("SET {} mine", k[0]));
        s.cmd(1, &format!("SET {} theirs", k[1]));
        s.read(0);
        // Reads inside EXEC are tracked; its own writes there are not sent back.
        s.cmd(0, "MULTI");
        s.cmd(0, &format!("GET {}", k[2]));
        s.cmd(0, &format!("GET {}", k[1]));
        s.cmd(0, "EXEC");
        s.cmd(0, "MULTI");
        s.cmd(0, &format!("SET {} mine", k[2]));
        s.cmd(0, "EXEC");
        s.cmd(1, &format!("SET {} theirs", k[1]));
        s.read(0);
        // Its own writes over both shards, split (MSET) or gathered (RENAME).
        s.cmd(0, &format!("MGET {} {} {}", k[0], k[1], k[3]));
        s.cmd(0, &format!("MSET {} a {} b", k[0], k[1]));
        s.cmd(0, &format!("RENAME {} {}", k[0], k[1]));
        s.cmd(1, &format!("SET {} theirs", k[3]));
        s.read(0);
        s.cmd(0, "CLIENT TRACKING ON");
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(0, &format!("GET {}", k[1]));
        // Its own writes, on its core's shard and on the other: the invalidation
        // follows the reply.
        s.cmd(0, "CLIENT TRACKING OFF");
        s.cmd(0, "CLIENT TRACKING ON");
        for key in [&k[0], &k[1]] {
            s.cmd(0, &format!("GET {key}"));
            s.cmd(0, &format!("SET {key} again"));
            s.read(0);
        }
    });
}

/// A RESP3 client subscribed to the events of its own writes hears them before each
/// write's reply, wherever the key lives, as from Redis; its own invalidations follow
/// the reply.
#[test]
fn resp3_own_events_before_the_reply_own_invalidations_after() {
    let k = keys();
    same("own events", &[0, 1], |s| {
        s.cmd(1, "CONFIG SET notify-keyspace-events KEA");
        s.hello3(0);
        s.cmd(0, "SUBSCRIBE __keyevent@0__:set");
        s.cmd(0, "SUBSCRIBE __keyevent@0__:incrby");
        for key in [&k[0], &k[1]] {
            s.cmd(0, &format!("SET {key} v"));
            s.read(0);
            s.cmd(0, &format!("INCRBY {key}:n 1000"));
            s.read(0);
            s.cmd(
                0,
                &format!("EVAL return(redis.call('set',KEYS[1],'x')) 1 {key}"),
            );
            s.read(0);
            // A write that raises nothing: no event.
            s.cmd(0, &format!("GET {key}"));
        }
        s.cmd(0, "CLIENT TRACKING ON");
        for key in [&k[0], &k[1]] {
            s.cmd(0, &format!("GET {key}"));
            s.cmd(0, &format!("SET {key} w"));
            s.read(0);
            s.read(0);
        }
    });
}

#[test]
fn expired_keys_are_invalidated() {
    let k = keys();
    same("expiry", &[0, 1], |s| {
        s.hello3(0);
        s.cmd(0, "CLIENT TRACKING ON");
        // Long enough for both GETs to find the keys on a loaded machine (50 ms was
        // not, in CI while other tests ran).
        s.cmd(1, &format!("SET {} v PX 500", k[0]));
        s.cmd(1, &format!("SET {} v PX 500", k[1]));
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(0, &format!("GET {}", k[1]));
        // Lazily (the writer's read finds it expired) or by the active cycle: either
        // way an invalidation each, in an order that depends on which came first.
        std::thread::sleep(Duration::from_millis(700));
        s.cmd(1, &format!("GET {}", k[0]));
        s.read_unordered(0, 2);
    });
}

#[test]
fn bad_input_errors() {
    same("errors", &[0, 1], |s| {
        s.cmd(0, "CLIENT TRACKING ON REDIRECT 999999");
        s.cmd(0, "CLIENT TRACKING ON REDIRECT abc");
        s.cmd(0, "CLIENT TRACKING ON REDIRECT {1} REDIRECT {1}");
        s.cmd(0, "CLIENT TRACKING ON PREFIX a");
        s.cmd(0, "CLIENT TRACKING ON BCAST PREFIX ab PREFIX a");
        // (Not `PREFIX a PREFIX b PREFIX bc`: Redis 7.0 answers that error and then
        // +OK as well, see the README.)
        s.cmd(0, "CLIENT TRACKING ON BCAST OPTIN");
        s.cmd(0, "CLIENT TRACKING ON OPTIN OPTOUT");
        s.cmd(0, "CLIENT TRACKING ON FOO");
        s.cmd(0, "CLIENT TRACKING MAYBE");
        s.cmd(0, "CLIENT TRACKING ON REDIRECT");
        s.cmd(0, "CLIENT TRACKING");
        s.cmd(0, "CLIENT CACHING YES");
        s.cmd(0, "CLIENT TRACKING ON");
        s.cmd(0, "CLIENT CACHING YES");
        s.cmd(0, "CLIENT CACHING NO");
        s.cmd(0, "CLIENT CACHING MAYBE");
        s.cmd(0, "CLIENT TRACKING ON BCAST");
        s.cmd(0, "CLIENT TRACKING ON OPTIN");
        s.cmd(0, "CLIENT TRACKING ON OPTOUT");
        s.cmd(0, "CLIENT TRACKING OFF");
        s.cmd(0, "CLIENT TRACKING ON OPTOUT");
        s.cmd(0, "CLIENT TRACKING ON OPTIN");
        s.cmd(0, "CLIENT CACHING YES");
        s.cmd(0, "CLIENT TRACKING OFF");
        s.cmd(0, "CLIENT TRACKING ON BCAST PREFIX foo");
        s.cmd(0, "CLIENT TRACKING ON BCAST PREFIX fo");
        s.cmd(0, "CLIENT TRACKING ON BCAST PREFIX bar");
        s.cmd(0, "CLIENT TRACKINGINFO");
        s.cmd(0, "CLIENT TRACKING ON");
        s.cmd(0, "CLIENT GETREDIR x");
        s.cmd(0, "CLIENT TRACKINGINFO x");
        s.cmd(0, "RESET");
        s.cmd(0, "CLIENT TRACKINGINFO");
    });
}

#[test]
fn cross_shard_writes_and_the_table_limit() {
    let k = keys();
    same("cross-shard", &[0, 1], |s| {
        s.hello3(0);
        s.cmd(0, "CLIENT TRACKING ON");
        s.cmd(1, &format!("SET {} 1", k[0]));
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(0, &format!("GET {}", k[1]));
        // A gathered command over both shards: both keys modified, the order of the
        // two invalidations is the shards'.
        s.cmd(1, &format!("RENAME {} {}", k[0], k[1]));
        s.read_unordered(0, 2);
        // A split one.
        s.cmd(1, &format!("SET {} 1", k[0]));
        s.cmd(0, &format!("MGET {} {}", k[0], k[1]));
        s.cmd(1, &format!("DEL {} {}", k[0], k[1]));
        s.read_unordered(0, 2);
        // tracking-table-max-keys: over it, a key is evicted with an invalidation
        // (Redis picks it at random before the next command; which one is masked).
        s.cmd(1, "CONFIG SET tracking-table-max-keys 1");
        s.cmd(0, &format!("GET {}", k[0]));
        let (a, b) = (k[0].clone(), k[1].clone());
        s.conns[0].send_cmd(&[b"GET", b.as_bytes()]);
        s.conns[0].send_cmd(&[b"PING"]);
        let mut got: Vec<String> = (0..3)
            .map(|_| {
                let f = s.conns[0].read_frame();
                show(&f)
                    .replace(&format!("\"{a}\""), "<k>")
                    .replace(&format!("\"{b}\""), "<k>")
            })
            .collect();
        got.sort();
        s.log
            .push(format!("[0] <- (any order) {}", got.join(" | ")));
        s.info(1, "tracking_total_keys");
        s.cmd(1, "CONFIG SET tracking-table-max-keys 0");
    });
}

/// A script's read commands track, as Redis 7.0's `call()` does for the script's
/// caller: the keys of the caller's command (EVAL's, FCALL's declared keys), not the
/// keys the read named; a script that only writes tracks nothing.
#[test]
fn scripts_track_their_declared_keys_when_they_read() {
    let k = keys();
    same("scripts", &[0, 1], |s| {
        s.hello3(0);
        s.cmd(0, "CLIENT TRACKING ON");
        s.cmd(
            0,
            &format!("EVAL return(redis.call('get',KEYS[1])) 1 {}", k[0]),
        );
        s.cmd(1, &format!("SET {} 1", k[0]));
        s.read(0);
        // Reads k[1], declares k[2]: a write to k[1] invalidates nothing.
        s.cmd(
            0,
            &format!("EVAL return(redis.call('get','{}')) 1 {}", k[1], k[2]),
        );
        s.cmd(1, &format!("SET {} 1", k[1]));
        s.cmd(1, &format!("SET {} 1", k[2]));
        s.read(0);
        s.cmd(
            0,
            &format!("EVAL return(redis.call('set',KEYS[1],'x')) 1 {}", k[3]),
        );
        s.cmd(1, &format!("SET {} 1", k[3]));
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(1, &format!("SET {} 2", k[0]));
        s.read(0);
        let lib = "#!lua name=t\nredis.register_function('g', function(k) return redis.call('get', k[1]) end)";
        let loaded = s.conns[0].cmd(&["FUNCTION", "LOAD", "REPLACE", lib]);
        s.log
            .push(format!("[0] FUNCTION LOAD -> {}", show(&loaded)));
        s.cmd(0, &format!("FCALL g 1 {}", k[1]));
        s.cmd(1, &format!("SET {} 3", k[1]));
        s.read(0);
        // The read-only script commands are no reads of their own: one whose script
        // only PINGs remembers nothing (the next frame is the marker's), one whose
        // script reads remembers its declared keys.
        s.cmd(0, &format!("EVAL_RO return(redis.call('ping')) 1 {}", k[2]));
        s.cmd(1, &format!("SET {} 4", k[2]));
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(1, &format!("SET {} 5", k[0]));
        s.read(0);
        s.cmd(
            0,
            &format!("EVAL_RO return(redis.call('get',KEYS[1])) 1 {}", k[3]),
        );
        s.cmd(1, &format!("SET {} 6", k[3]));
        s.read(0);
    });
}

/// EXEC's reads are remembered as each runs, as in Redis: a read after a write of the
/// same key in the transaction is not invalidated by that write (the client's next
/// reply is its own, not an invalidation), a read before a write is.
#[test]
fn exec_remembers_each_read_as_it_runs() {
    let k = keys();
    same("exec reads", &[0, 1], |s| {
        s.hello3(0);
        s.cmd(0, "CLIENT TRACKING ON");
        s.cmd(0, "MULTI");
        s.cmd(0, &format!("SET {} 1", k[0]));
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(0, "EXEC");
        s.cmd(0, &format!("GET {}", k[3]));
        s.cmd(1, &format!("SET {} 2", k[0]));
        s.read(0);
        // Over both shards: k[1] read then written, k[2] written then read.
        s.cmd(0, "MULTI");
        s.cmd(0, &format!("GET {}", k[1]));
        s.cmd(0, &format!("SET {} 1", k[1]));
        s.cmd(0, &format!("SET {} 1", k[2]));
        s.cmd(0, &format!("GET {}", k[2]));
        s.cmd(0, "EXEC");
        s.read(0);
        s.cmd(1, &format!("SET {} 2", k[2]));
        s.read(0);
    });
}

/// OPTIN / OPTOUT inside MULTI: a CLIENT CACHING before MULTI lasts through EXEC,
/// one queued inside applies to the commands queued after it.
#[test]
fn caching_flags_apply_inside_multi() {
    let k = keys();
    same("multi caching", &[0, 1], |s| {
        s.hello3(0);
        s.cmd(0, "CLIENT TRACKING ON OPTIN");
        s.cmd(0, "CLIENT CACHING YES");
        s.cmd(0, "MULTI");
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(0, "EXEC");
        s.cmd(1, &format!("SET {} 1", k[0]));
        s.read(0);
        s.cmd(0, "MULTI");
        s.cmd(0, &format!("GET {}", k[2]));
        s.cmd(0, "CLIENT CACHING YES");
        s.cmd(0, &format!("GET {}", k[1]));
        s.cmd(0, "EXEC");
        s.cmd(1, &format!("SET {} 1", k[2]));
        s.cmd(1, &format!("SET {} 1", k[1]));
        s.read(0);
        s.cmd(0, "CLIENT TRACKING OFF");
        s.cmd(0, "CLIENT TRACKING ON OPTOUT");
        s.cmd(0, "CLIENT CACHING NO");
        s.cmd(0, "MULTI");
        s.cmd(0, &format!("GET {}", k[2]));
        s.cmd(0, "EXEC");
        s.cmd(0, &format!("GET {}", k[3]));
        s.cmd(1, &format!("SET {} 2", k[2]));
        s.cmd(1, &format!("SET {} 2", k[3]));
        s.read(0);
    });
}

/// A RESP3 client that is another's redirect target gets its invalidations while it
/// sends nothing, subscribed or not.
#[test]
fn resp3_redirect_to_an_idle_client() {
    let k = keys();
    same("resp3 redirect", &[0, 1, 1], |s| {
        s.hello3(1);
        s.cmd(0, "CLIENT TRACKING ON REDIRECT {1}");
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(2, &format!("SET {} 1", k[0]));
        s.read(1);
    });
}

/// A RESP3 client blocked in BLPOP gets the invalidations and the messages others'
/// commands cause while it waits, as Redis writes them at once; the blocked command's
/// reply follows when it is served.
#[test]
fn resp3_pushes_reach_a_blocked_client() {
    let k = keys();
    same("blocked", &[0, 1], |s| {
        s.hello3(0);
        s.cmd(0, "CLIENT TRACKING on");
        s.cmd(0, &format!("GET {}", k[0]));
        s.cmd(0, &format!("GET {}", k[1]));
        s.cmd(0, "SUBSCRIBE news");
        s.conns[0].send_cmd(&[b"BLPOP", b"jobs", b"0"]);
        s.log.push("[0] BLPOP jobs 0 (sent)".into());
        common::await_blocked(&mut s.conns[1], 1);
        s.cmd(1, &format!("SET {} x", k[0]));
        s.read(0);
        s.cmd(1, &format!("SET {} y", k[1]));
        s.read(0);
        s.cmd(1, "PUBLISH news hello");
        s.read(0);
        s.cmd(1, "RPUSH jobs a");
        s.read(0);
        s.cmd(0, "PING");
    });
}
