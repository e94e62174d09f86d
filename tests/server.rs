//! Integration tests against the real binary: the connection layer (pipelining,
//! protocol errors, inline commands, RESP3, AUTH, CLIENT, SELECT, QUIT, many
//! connections), cross-shard replies, the active expire cycle, and SHUTDOWN.
//!
//! The one idea to hold: where Redis's exact bytes matter, the test sends the same
//! bytes to a real redis-server and compares, so the expectation is Redis itself and
//! not a transcription of it; a few literal texts are asserted as well, to document
//! them. Timing is only ever bounded by generous polling deadlines.

mod common;

use common::{await_blocked, encode_request, show, wait_until, Frame, RawConn, Server};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

fn bulk(s: &str) -> Frame {
    Frame::Bulk(s.as_bytes().to_vec())
}

fn simple(s: &str) -> Frame {
    Frame::Simple(s.to_string())
}

fn error_text(f: &Frame) -> &str {
    match f {
        Frame::Error(e) => e,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// Large bulk replies (written from the value's own buffer, not copied into the output
/// buffer) arrive whole and in order among small ones, on keys of both shards, in
/// RESP2 and RESP3, when the client reads at once and when it lets the replies pile up
/// behind a full socket: byte for byte as redis-server sends them.
#[test]
fn large_replies_arrive_whole_and_in_order_as_redis() {
    let (shardis, redis) = (Server::shardis(2), Server::redis());
    let sizes = [64 * 1024 - 1, 64 * 1024, 200_000, 1 << 20];
    let value = |i: usize, n: usize| -> Vec<u8> {
        (0..n).map(|j| b'a' + ((i * 7 + j) % 26) as u8).collect()
    };
    let mut transcripts = Vec::new();
    for server in [&shardis, &redis] {
        let mut c = server.raw();
        for (i, &n) in sizes.iter().enumerate() {
            let v = value(i, n);
            c.send_cmd(&[b"SET", format!("big{i}").as_bytes(), &v]);
            c.send_cmd(&[b"HSET", b"h", format!("f{i}").as_bytes(), &v]);
            c.send_cmd(&[b"RPUSH", b"l", &v]);
        }
        for _ in 0..sizes.len() * 3 {
            c.read_frame();
        }
        let mut seen = Vec::new();
        for proto in ["2", "3"] {
            c.cmd(&["HELLO", proto]);
            for slow in [false, true] {
                let mut buf = Vec::new();
                for round in 0..6 {
                    for i in 0..sizes.len() {
                        let (key, field, index) =
                            (format!("big{i}"), format!("f{i}"), i.to_string());
                        let argvs: [&[&str]; 6] = [
                            &["GET", &key],
                            &["PING"],
                            &["HGET", "h", &field],
                            &["GETRANGE", &key, "1", "-2"],
                            &["LINDEX", "l", &index],
                            &["ECHO", if round % 2 == 0 { "x" } else { "yy" }],
                        ];
                        for argv in argvs {
                            let refs: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
                            buf.extend_from_slice(&encode_request(&refs));
                        }
                    }
                }
                c.send(&buf);
                if slow {
                    // Some 100 MB of replies pile up behind the socket meanwhile.
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
                for _ in 0..6 * sizes.len() * 6 {
                    seen.push(c.read_frame());
                }
            }
        }
        assert_eq!(c.cmd(&["PING"]), simple("PONG"));
        transcripts.push(seen);
    }
    assert_eq!(transcripts[0].len(), transcripts[1].len());
    for (i, (a, b)) in transcripts[0].iter().zip(&transcripts[1]).enumerate() {
        assert!(a == b, "reply {i} differs");
    }
}

#[test]
fn pipeline_of_1000_commands_in_one_write_keeps_order() {
    let server = Server::shardis(4);
    let mut c = server.raw();
    let mut buf = Vec::new();
    for i in 0..1000 {
        let key = format!("key:{i}");
        let argv: Vec<Vec<u8>> = match i % 4 {
            0 => vec![
                b"SET".to_vec(),
                key.into_bytes(),
                format!("v{i}").into_bytes(),
            ],
            1 => vec![b"GET".to_vec(), format!("key:{}", i - 1).into_bytes()],
            2 => vec![b"ECHO".to_vec(), format!("e{i}").into_bytes()],
            _ => vec![b"INCR".to_vec(), b"counter".to_vec()],
        };
        let refs: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
        buf.extend_from_slice(&encode_request(&refs));
    }
    c.send(&buf);
    for i in 0..1000 {
        let got = c.read_frame();
        let want = match i % 4 {
            0 => simple("OK"),
            1 => bulk(&format!("v{}", i - 1)),
            2 => bulk(&format!("e{i}")),
            _ => Frame::Int(i / 4 + 1),
        };
        assert_eq!(got, want, "reply #{i} out of order or wrong");
    }
}

#[test]
fn pipeline_through_redis_crate_spans_shards() {
    let server = Server::shardis(4);
    let mut con = server.conn();
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.cmd("SET").arg(format!("p:{i}")).arg(i);
    }
    for i in 0..1000 {
        p.cmd("GET").arg(format!("p:{i}"));
    }
    let replies: Vec<redis::Value> = p.query(&mut con).expect("pipeline");
    assert_eq!(replies.len(), 2000);
    for (i, v) in replies[1000..].iter().enumerate() {
        assert_eq!(
            *v,
            redis::Value::BulkString(i.to_string().into_bytes()),
            "GET p:{i}"
        );
    }
}

#[test]
fn multi_key_commands_across_shards() {
    let server = Server::shardis(4);
    let mut con = server.conn();
    let keys: Vec<String> = (0..200).map(|i| format!("mk:{i}")).collect();
    let mut mset = redis::cmd("MSET");
    for (i, k) in keys.iter().enumerate() {
        mset.arg(k).arg(format!("val{i}"));
    }
    let ok: String = mset.query(&mut con).expect("MSET");
    assert_eq!(ok, "OK");

    let mut mget = redis::cmd("MGET");
    for k in &keys {
        mget.arg(k);
    }
    mget.arg("mk:missing");
    let vals: Vec<Option<String>> = mget.query(&mut con).expect("MGET");
    assert_eq!(vals.len(), 201);
    for (i, v) in vals[..200].iter().enumerate() {
        assert_eq!(
            v.as_deref(),
            Some(format!("val{i}").as_str()),
            "MGET order at {i}"
        );
    }
    assert_eq!(vals[200], None);

    // EXISTS counts duplicates, as Redis does.
    let n: i64 = redis::cmd("EXISTS")
        .arg("mk:1")
        .arg("mk:1")
        .arg("mk:150")
        .arg("nope")
        .query(&mut con)
        .expect("EXISTS");
    assert_eq!(n, 3);
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
    assert_eq!(size, 200);

    let mut del = redis::cmd("DEL");
    for k in keys.iter().step_by(2) {
        del.arg(k);
    }
    let n: i64 = del.query(&mut con).expect("DEL");
    assert_eq!(n, 100);
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
    assert_eq!(size, 100);

    // MSETNX is all-or-nothing across shards.
    let set: i64 = redis::cmd("MSETNX")
        .arg("mk:0")
        .arg("x")
        .arg("mk:1")
        .arg("y")
        .query(&mut con)
        .expect("MSETNX");
    assert_eq!(set, 0, "mk:1 exists, so nothing is set");
    let v: Option<String> = redis::cmd("GET").arg("mk:0").query(&mut con).expect("GET");
    assert_eq!(v, None);
}

/// Malformed requests: Shardis must answer exactly what Redis answers, then close.
#[test]
fn protocol_errors_match_redis_and_close_the_connection() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let mut cases: Vec<Vec<u8>> = vec![
        b"*1\r\n$x\r\n".to_vec(),
        b"*abc\r\n".to_vec(),
        b"*1\r\nfoo\r\n".to_vec(),
        b"*3000000000\r\n".to_vec(),
        b"*1\r\n$-5\r\n".to_vec(),
        b"*1\r\n$600000000\r\n".to_vec(),
        b"PING\r\n*1\r\n$-5\r\n".to_vec(),
        b"SET a \"b\r\n".to_vec(),
        b"ECHO 'x\r\n".to_vec(),
        b"ECHO \"a\"b\r\n".to_vec(),
    ];
    cases.push(vec![b'x'; 70_000]);
    let mut big_count = b"*".to_vec();
    big_count.extend(vec![b'1'; 70_000]);
    cases.push(big_count);
    let mut big_bulk = b"*1\r\n$".to_vec();
    big_bulk.extend(vec![b'1'; 70_000]);
    cases.push(big_bulk);

    let mut differences = Vec::new();
    for case in &cases {
        let mut s = shardis.raw();
        let mut r = redis.raw();
        s.send(case);
        r.send(case);
        let want = String::from_utf8_lossy(&r.read_to_close()).into_owned();
        let got = String::from_utf8_lossy(&s.read_to_close()).into_owned();
        if got != want {
            let shown = String::from_utf8_lossy(&case[..case.len().min(40)]).into_owned();
            differences.push(format!(
                "request {shown:?} ({} bytes):\n  shardis: {got:?}\n  redis:   {want:?}",
                case.len()
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "Shardis's bytes before closing differ from Redis's:\n{}",
        differences.join("\n")
    );

    let mut s = shardis.raw();
    s.send(b"*1\r\n$x\r\n");
    assert_eq!(
        String::from_utf8_lossy(&s.read_to_close()),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
}

/// A client that sends its commands and then closes its side (`printf ... | nc`) gets
/// every reply before the server closes, as from Redis. Three timings: the close
/// arrives after a pause, when the server has read a request and waits for more (the
/// epoll backend then waits for the socket's next edge rather than reading again, so
/// the close must bring one); right behind the data; and together with the data while
/// the server is busy (DEBUG SLEEP on its one core), so the one edge it then sees
/// carries both and no other follows.
#[test]
fn replies_reach_a_client_that_closed_its_sending_side() {
    let debug = ["--enable-debug-command", "yes"];
    let shardis = Server::shardis_with(1, &debug);
    let redis = Server::redis_with(&debug);
    for server in [&shardis, &redis] {
        for timing in ["pause", "behind", "while busy"] {
            let mut c = server.raw();
            let mut sleeper = server.raw();
            assert_eq!(c.cmd(&["PING"]), simple("PONG"));
            if timing == "while busy" {
                sleeper.send_cmd(&[b"DEBUG", b"SLEEP", b"0.3"]);
                std::thread::sleep(Duration::from_millis(100));
            }
            c.send(b"SET a 1\r\nGET a\r\n");
            if timing == "pause" {
                std::thread::sleep(Duration::from_millis(50));
                c.send(b"PING\r\n");
                std::thread::sleep(Duration::from_millis(50));
            }
            c.stream.shutdown(std::net::Shutdown::Write).unwrap();
            let want: &[u8] = if timing == "pause" {
                b"+OK\r\n$1\r\n1\r\n+PONG\r\n"
            } else {
                b"+OK\r\n$1\r\n1\r\n"
            };
            assert_eq!(
                String::from_utf8_lossy(&c.read_to_close()),
                String::from_utf8_lossy(want),
                "{} ({timing})",
                server.addr()
            );
            if timing == "while busy" {
                assert_eq!(sleeper.read_frame(), simple("OK"));
            }
        }
    }
}

#[test]
fn inline_commands() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let script: &[&[u8]] = &[
        b"PING\r\n",
        b"SET a \"b c\"\r\n",
        b"GET a\r\n",
        b"ECHO 'x y'\r\n",
        b"   \r\n",
        b"\r\n",
        b"PING hello\n",
        b"SET q \"\\x41\\n\"\r\n",
        b"GET q\r\n",
        b"  get   a  \r\n",
        b"NOSUCH x y\r\n",
    ];
    let mut s = shardis.raw();
    let mut r = redis.raw();
    // Each inline line is sent alone; blank lines produce no reply, so read after the
    // next real command instead.
    let mut pending = 0;
    for line in script {
        s.send(line);
        r.send(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        pending += 1;
        while pending > 0 {
            let want = r.read_frame();
            let got = s.read_frame();
            assert_eq!(got, want, "inline {:?}", String::from_utf8_lossy(line));
            pending -= 1;
        }
    }

    let mut s = shardis.raw();
    s.send(b"PING\r\n");
    assert_eq!(s.read_frame(), simple("PONG"));
    s.send(b"SET a \"b c\"\r\nGET a\r\n");
    assert_eq!(s.read_frame(), simple("OK"));
    assert_eq!(s.read_frame(), bulk("b c"));
}

fn map_keys(f: &Frame) -> Vec<String> {
    match f {
        Frame::Map(pairs) => pairs
            .iter()
            .map(|(k, _)| match k {
                Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                Frame::Simple(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .collect(),
        other => panic!("expected a RESP3 map, got {other:?}"),
    }
}

#[test]
fn hello_3_returns_a_map_and_switches_to_resp3() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let mut s = shardis.raw();
    let mut r = redis.raw();
    let hs = s.cmd(&["HELLO", "3"]);
    let hr = r.cmd(&["HELLO", "3"]);
    assert_eq!(map_keys(&hs), map_keys(&hr), "HELLO 3 map fields");
    if let Frame::Map(pairs) = &hs {
        let proto = pairs
            .iter()
            .find(|(k, _)| *k == bulk("proto"))
            .map(|(_, v)| v.clone());
        assert_eq!(proto, Some(Frame::Int(3)));
    }
    let cmds: &[&[&str]] = &[
        &["GET", "nokey"],
        &["SET", "k", "1.5"],
        &["INCRBYFLOAT", "k", "2"],
        &["EXISTS", "k", "nokey"],
        &["MGET", "k", "nokey"],
        &["TTL", "k"],
        &["GETEX", "nokey"],
        &["PING"],
        &["HELLO", "4"],
        &["HELLO", "x"],
        &["NOSUCH"],
    ];
    for argv in cmds {
        let want = r.cmd(argv);
        let got = s.cmd(argv);
        assert_eq!(got, want, "RESP3 reply to {argv:?}");
    }
    assert_eq!(s.cmd(&["GET", "nokey"]), Frame::Null, "RESP3 null is `_`");
    // Back to RESP2.
    let h2 = s.cmd(&["HELLO", "2"]);
    assert!(
        matches!(h2, Frame::Array(_)),
        "HELLO 2 replies with a flat array: {h2:?}"
    );
    assert_eq!(s.cmd(&["GET", "nokey"]), Frame::NullBulk);
}

#[test]
fn requirepass_and_auth() {
    let shardis = Server::shardis_with(2, &["--requirepass", "secret"]);
    let redis = Server::redis_with(&["--requirepass", "secret"]);
    let script: &[&[&str]] = &[
        &["GET", "a"],
        &["PING"],
        &["AUTH", "wrong"],
        &["AUTH", "default", "wrong"],
        &["AUTH", "nosuchuser", "secret"],
        &["AUTH"],
        &["AUTH", "a", "b", "c"],
        &["HELLO", "3", "AUTH", "default", "wrong"],
        &["GET", "a"],
        &["AUTH", "secret"],
        &["GET", "a"],
        &["AUTH", "default", "secret"],
        &["SET", "a", "1"],
        &["GET", "a"],
    ];
    let mut s = shardis.raw();
    let mut r = redis.raw();
    for argv in script {
        let want = r.cmd(argv);
        let got = s.cmd(argv);
        assert_eq!(got, want, "reply to {argv:?}");
    }

    let mut s = shardis.raw();
    assert_eq!(
        error_text(&s.cmd(&["GET", "a"])),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        error_text(&s.cmd(&["AUTH", "wrong"])),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(s.cmd(&["AUTH", "secret"]), simple("OK"));

    // Before AUTH, Redis caps request sizes.
    let mut s = shardis.raw();
    let mut r = redis.raw();
    let req = b"*100\r\n".to_vec();
    s.send(&req);
    r.send(&req);
    assert_eq!(
        String::from_utf8_lossy(&s.read_to_close()),
        String::from_utf8_lossy(&r.read_to_close())
    );

    // The redis crate authenticates from the URL.
    let client = redis::Client::open(format!("redis://:secret@127.0.0.1:{}/", shardis.port))
        .expect("client");
    let mut con = client.get_connection().expect("connect with password");
    let v: String = redis::cmd("GET").arg("a").query(&mut con).expect("GET");
    assert_eq!(v, "1");

    // Without requirepass, AUTH is an error with Redis's long text.
    let open = Server::shardis(1);
    let plain = Server::redis();
    assert_eq!(
        open.raw().cmd(&["AUTH", "x"]),
        plain.raw().cmd(&["AUTH", "x"])
    );
}

#[test]
fn client_setname_getname_list_kill() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let mut a = shardis.raw();
    assert_eq!(a.cmd(&["CLIENT", "GETNAME"]), Frame::NullBulk);
    assert_eq!(a.cmd(&["CLIENT", "SETNAME", "worker-1"]), simple("OK"));
    assert_eq!(a.cmd(&["CLIENT", "GETNAME"]), bulk("worker-1"));
    let id = match a.cmd(&["CLIENT", "ID"]) {
        Frame::Int(n) => n,
        other => panic!("CLIENT ID: {other:?}"),
    };

    let mut b = shardis.raw();
    let list = match b.cmd(&["CLIENT", "LIST"]) {
        Frame::Bulk(v) | Frame::Verbatim(v) => String::from_utf8_lossy(&v).into_owned(),
        other => panic!("CLIENT LIST: {other:?}"),
    };
    let line = list
        .lines()
        .find(|l| l.contains("name=worker-1"))
        .unwrap_or_else(|| panic!("CLIENT LIST lacks name=worker-1:\n{list}"));
    assert!(
        line.starts_with(&format!("id={id} ")),
        "CLIENT LIST line: {line}"
    );
    for field in [
        " addr=", " laddr=", " fd=", " age=", " idle=", " db=0", " cmd=",
    ] {
        assert!(
            line.contains(field),
            "CLIENT LIST line lacks {field:?}: {line}"
        );
    }

    // Errors are Redis's.
    let mut r = redis.raw();
    for argv in [
        &["CLIENT", "SETNAME", "a b"][..],
        &["CLIENT", "SETNAME", "a\nb"],
        &["CLIENT", "NOSUCH"],
        &["CLIENT", "KILL", "ID", "999999"],
        &["CLIENT", "KILL", "ID", "x"],
        &["CLIENT", "KILL", "1.2.3.4:5"],
        &["CLIENT"],
    ] {
        assert_eq!(b.cmd(argv), r.cmd(argv), "reply to {argv:?}");
    }

    assert_eq!(
        b.cmd(&["CLIENT", "KILL", "ID", &id.to_string()]),
        Frame::Int(1)
    );
    assert!(
        a.is_closed(Duration::from_secs(5)),
        "killed client still open"
    );

    // Kill by address (old form replies +OK).
    let mut c = shardis.raw();
    // Served once, so the server has accepted it (another shard may accept it later
    // than `b`'s command arrives otherwise).
    assert_eq!(c.cmd(&["PING"]), simple("PONG"));
    let addr = c.stream.local_addr().expect("local addr").to_string();
    assert_eq!(b.cmd(&["CLIENT", "KILL", &addr]), simple("OK"));
    assert!(
        c.is_closed(Duration::from_secs(5)),
        "killed client still open"
    );
    assert_eq!(b.cmd(&["PING"]), simple("PONG"), "the killer lives on");
}

#[test]
fn select_switches_database() {
    let server = Server::shardis(4);
    let mut c = server.raw();
    assert_eq!(c.cmd(&["SET", "x", "zero"]), simple("OK"));
    assert_eq!(c.cmd(&["SELECT", "1"]), simple("OK"));
    assert_eq!(c.cmd(&["GET", "x"]), Frame::NullBulk);
    assert_eq!(c.cmd(&["SET", "x", "one"]), simple("OK"));
    assert_eq!(c.cmd(&["DBSIZE"]), Frame::Int(1));
    assert_eq!(c.cmd(&["SELECT", "0"]), simple("OK"));
    assert_eq!(c.cmd(&["GET", "x"]), bulk("zero"));
    assert_eq!(
        error_text(&c.cmd(&["SELECT", "16"])),
        "ERR DB index is out of range"
    );
    assert_eq!(
        error_text(&c.cmd(&["SELECT", "x"])),
        "ERR value is not an integer or out of range"
    );
    // Each connection has its own database.
    let mut d = server.raw();
    assert_eq!(d.cmd(&["GET", "x"]), bulk("zero"));
}

#[test]
fn quit_replies_ok_and_closes() {
    let server = Server::shardis(1);
    let mut c = server.raw();
    c.send(b"*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n");
    assert_eq!(String::from_utf8_lossy(&c.read_to_close()), "+OK\r\n");
}

fn fd_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[test]
fn burst_of_1000_connections() {
    let mut n = 1000;
    if let Some(limit) = fd_limit() {
        if limit < 1100 {
            n = (limit as usize).saturating_sub(100).max(10);
            println!("note: open-files limit is {limit}; burst uses {n} connections");
        }
    }
    let server = Server::shardis(4);
    let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
    for i in 0..n {
        let s = TcpStream::connect(("127.0.0.1", server.port))
            .unwrap_or_else(|e| panic!("connection #{i}: {e}"));
        conns.push(s);
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let req = encode_request(&[b"SET", format!("burst:{i}").as_bytes(), b"1"]);
        s.write_all(&req).expect("write");
    }
    let mut raws: Vec<RawConn> = conns
        .into_iter()
        .map(|stream| {
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .expect("timeout");
            RawConn::from_stream(stream)
        })
        .collect();
    for (i, c) in raws.iter_mut().enumerate() {
        assert_eq!(c.read_frame(), simple("OK"), "connection #{i}");
    }
    let mut c = server.raw();
    assert_eq!(c.cmd(&["DBSIZE"]), Frame::Int(n as i64));
    drop(raws);
}

fn info_field(info: &str, name: &str) -> Option<i64> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn active_expire_cycle_reclaims_20k_keys() {
    let server = Server::shardis(4);
    let mut con = server.conn();
    for chunk in 0..20 {
        let mut p = redis::pipe();
        for i in 0..1000 {
            p.cmd("SET")
                .arg(format!("exp:{}", chunk * 1000 + i))
                .arg("v")
                .arg("PX")
                .arg(100)
                .ignore();
        }
        let () = p.query(&mut con).expect("SET PX pipeline");
    }
    // Only DBSIZE is asked: no key is touched, so only the active cycle can remove them.
    let mut last = -1;
    let gone = wait_until(Duration::from_secs(30), || {
        last = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
        last == 0
    });
    assert!(gone, "DBSIZE still {last} 30 s after 20000 keys expired");
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut con)
        .expect("INFO stats");
    let expired = info_field(&info, "expired_keys")
        .unwrap_or_else(|| panic!("INFO stats lacks expired_keys:\n{info}"));
    assert!(expired >= 20000, "expired_keys = {expired}");
}

/// A shard with nothing to do sleeps ten cron periods between ticks (an idle server
/// should cost what an idle Redis costs); a key given a TTL there must still be
/// reclaimed by the active cycle within a period or two, as at Redis's `hz`. At `hz 1`
/// the long sleep is ten seconds: the deadline below is well past the one or two
/// seconds expected and well short of the ten an unwoken sleep would take.
#[test]
fn a_key_given_a_ttl_on_an_idle_shard_is_reclaimed_within_a_period_or_two() {
    let server = Server::shardis_with(2, &["--hz", "1"]);
    let mut con = server.conn();
    // `{a}` hashes to slot 15495: shard 1 of 2 (shard 0 never sleeps long).
    let () = redis::cmd("SET")
        .arg("{a}k")
        .arg("v")
        .query(&mut con)
        .expect("SET");
    // Two ticks for shard 1 to publish the write and find itself idle.
    std::thread::sleep(Duration::from_secs(3));
    let set: i64 = redis::cmd("PEXPIRE")
        .arg("{a}k")
        .arg(100)
        .query(&mut con)
        .expect("PEXPIRE");
    assert_eq!(set, 1);
    // Only DBSIZE is asked: no key is touched, so only the active cycle can remove it.
    let gone = wait_until(Duration::from_secs(6), || {
        redis::cmd("DBSIZE").query::<i64>(&mut con).expect("DBSIZE") == 0
    });
    assert!(
        gone,
        "the key was not reclaimed within 6 s of its deadline at hz 1"
    );
}

#[test]
fn shutdown_nosave_stops_the_process() {
    let mut server = Server::shardis(2);
    let mut c = server.raw();
    c.send(&encode_request(&[b"SHUTDOWN", b"NOSAVE"]));
    // On success Redis closes without a reply.
    let bytes = c.read_to_close();
    assert!(
        bytes.is_empty(),
        "SHUTDOWN replied {:?}",
        String::from_utf8_lossy(&bytes)
    );
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("process still running 10 s after SHUTDOWN NOSAVE");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn idle_clients_are_closed_after_timeout() {
    let server = Server::shardis_with(1, &["--timeout", "1"]);
    let mut c = server.raw();
    assert_eq!(c.cmd(&["PING"]), simple("PONG"));
    // Nothing is sent: the server must close the connection on its own.
    assert!(
        c.is_closed(Duration::from_secs(10)),
        "idle client still open after 10 s with timeout 1"
    );
    // A fresh connection still works.
    assert_eq!(server.raw().cmd(&["PING"]), simple("PONG"));
}

/// DEBUG (and MODULE LOAD / UNLOAD) are refused before they run or queue unless
/// enabled, as Redis's protected commands: inside MULTI the refusal dooms EXEC.
#[test]
fn debug_is_refused_unless_enabled_as_redis() {
    let session: &[&[&str]] = &[
        &["DEBUG", "SLEEP", "0"],
        &["MULTI"],
        &["SET", "k", "1"],
        &["DEBUG", "SLEEP", "0"],
        &["MODULE", "UNLOAD", "x"],
        &["EXEC"],
        &["GET", "k"],
    ];
    let enabled: &[&[&str]] = &[
        &["DEBUG", "SLEEP", "0"],
        &["DEBUG", "SLEEP", "abc"],
        &["DEBUG", "CHANGE-REPL-ID"],
        &["MULTI"],
        &["DEBUG", "SLEEP", "0"],
        &["EXEC"],
    ];
    for (extra, session) in [
        (&[][..], session),
        (&["--enable-debug-command", "yes"][..], enabled),
    ] {
        let redis = Server::redis_with(extra);
        let shardis = Server::shardis_with(2, extra);
        let (mut r, mut s) = (redis.raw(), shardis.raw());
        for argv in session {
            assert_eq!(s.cmd(argv), r.cmd(argv), "{argv:?} with {extra:?}");
        }
    }
}

/// Shardis loads no modules: MODULE answers as a Redis that has none loaded, with
/// `enable-module-command` at its default and enabled.
#[test]
fn module_answers_as_a_redis_with_no_modules_loaded() {
    const SESSION: &[&[&str]] = &[
        &["MODULE", "LIST"],
        &["MODULE", "HELP"],
        &["MODULE", "LOAD", "/nonexistent/module.so"],
        &["MODULE", "LOADEX", "/nonexistent/module.so", "ARGS", "x"],
        &["MODULE", "UNLOAD", "nosuch"],
        &["MODULE", "LIST", "x"],
        &["MODULE", "LOAD"],
        &["MODULE", "NOSUCH"],
        &["MODULE"],
    ];
    for extra in [&[][..], &["--enable-module-command", "yes"][..]] {
        let redis = Server::redis_with(extra);
        let shardis = Server::shardis_with(2, extra);
        let (mut r, mut s) = (redis.raw(), shardis.raw());
        for argv in SESSION {
            assert_eq!(s.cmd(argv), r.cmd(argv), "{argv:?} with {extra:?}");
        }
    }
}

/// Send `requests` in one write, then `PING <marker>`, and return every reply up to the
/// marker's: the replies a client gets, none of the suppressed ones.
fn replies_before_marker(c: &mut RawConn, requests: &[&[&str]], marker: &str) -> Vec<Frame> {
    let mut bytes = Vec::new();
    for argv in requests {
        let a: Vec<&[u8]> = argv.iter().map(|s| s.as_bytes()).collect();
        bytes.extend_from_slice(&encode_request(&a));
    }
    bytes.extend_from_slice(&encode_request(&[b"PING", marker.as_bytes()]));
    c.send(&bytes);
    let mut got = Vec::new();
    loop {
        let f = c.read_frame();
        if f == bulk(marker) {
            return got;
        }
        got.push(f);
    }
}

/// Replies pipelined before a HELLO that switches protocol are in the protocol they
/// ran under (they used to be encoded after the whole read ran, in the new one: a
/// RESP2 client got RESP3's `_` for a missing key).
#[test]
fn replies_before_a_pipelined_hello_keep_their_protocol() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let pipeline: &[&[&str]] = &[
        &["SET", "a{x}", "1"],
        &["MGET", "a{x}", "nokey"],
        &["GET", "b{y}"],
        &["HELLO", "3"],
        &["GET", "nokey"],
        &["HELLO", "2"],
        &["GET", "nokey"],
        &["RESET"],
        &["EVAL", "return {big_number='12\\r\\n3'}", "0"],
    ];
    let mut bytes = Vec::new();
    for argv in pipeline {
        let v: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        bytes.extend(encode_request(&v));
    }
    let mut replies = Vec::new();
    for server in [&shardis, &redis] {
        let mut c = server.raw();
        c.send(&bytes);
        let mut got: Vec<Frame> = (0..pipeline.len()).map(|_| c.read_frame()).collect();
        // HELLO's reply names the connection id: its shape is compared.
        for i in [3, 5] {
            got[i] = match &got[i] {
                Frame::Map(pairs) => Frame::Simple(format!("map of {}", pairs.len())),
                Frame::Array(items) => Frame::Simple(format!("array of {}", items.len())),
                other => other.clone(),
            };
        }
        replies.push(got);
    }
    assert_eq!(replies[0], replies[1], "Shardis, then Redis");
    assert_eq!(replies[0][2], Frame::NullBulk);
    assert_eq!(replies[0][4], Frame::Null);
}

#[test]
fn client_reply_on_off_skip_answer_as_redis() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let scripts: &[&[&[&str]]] = &[
        // ON after OFF answers +OK (it used to be swallowed: clients hung).
        &[
            &["CLIENT", "REPLY", "OFF"],
            &["PING"],
            &["CLIENT", "REPLY", "ON"],
        ],
        // ON while SKIP is in force is answered too.
        &[
            &["CLIENT", "REPLY", "SKIP"],
            &["CLIENT", "REPLY", "ON"],
            &["PING"],
        ],
        &[&["CLIENT", "REPLY", "SKIP"], &["PING", "a"], &["PING", "b"]],
        &[
            &["CLIENT", "REPLY", "SKIP"],
            &["CLIENT", "REPLY", "SKIP"],
            &["PING", "a"],
            &["PING", "b"],
        ],
        &[
            &["CLIENT", "REPLY", "OFF"],
            &["CLIENT", "REPLY", "SKIP"],
            &["PING"],
            &["CLIENT", "REPLY", "ON"],
            &["PING"],
        ],
        &[
            &["CLIENT", "REPLY", "SKIP"],
            &["CLIENT", "REPLY", "OFF"],
            &["PING", "a"],
            &["CLIENT", "REPLY", "ON"],
            &["PING", "b"],
        ],
        // Errors are dropped under OFF as well.
        &[
            &["CLIENT", "REPLY", "OFF"],
            &["CLIENT", "REPLY", "FOO"],
            &["NOSUCH"],
            &["GET"],
            &["CLIENT", "REPLY", "ON"],
        ],
        // RESET ends OFF and is answered; under SKIP its own reply is dropped.
        &[&["CLIENT", "REPLY", "OFF"], &["RESET"], &["PING"]],
        &[&["CLIENT", "REPLY", "SKIP"], &["RESET"], &["PING"]],
    ];
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    for (i, script) in scripts.iter().enumerate() {
        let marker = format!("end-{i}");
        let want = replies_before_marker(&mut r, script, &marker);
        let got = replies_before_marker(&mut s, script, &marker);
        assert_eq!(got, want, "replies to {script:?}");
    }
    // Each command on its own write, waiting for the +OK of ON (the hang reported).
    s.send(&encode_request(&[b"CLIENT", b"REPLY", b"OFF"]));
    s.send(&encode_request(&[b"SET", b"k", b"v"]));
    assert_eq!(s.cmd(&["CLIENT", "REPLY", "ON"]), simple("OK"));
    assert_eq!(s.cmd(&["GET", "k"]), bulk("v"));
}

/// `name=value` fields of a CLIENT LIST / CLIENT INFO line.
fn client_fields(line: &str) -> std::collections::HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn text_of(f: Frame) -> String {
    match f {
        Frame::Bulk(v) | Frame::Verbatim(v) => String::from_utf8_lossy(&v).into_owned(),
        other => panic!("expected a bulk reply, got {other:?}"),
    }
}

/// Send `bytes` in one write and read `n` replies, as text.
fn bulks_after(c: &mut RawConn, bytes: &[u8], n: usize) -> Vec<String> {
    c.send(bytes);
    (0..n)
        .map(|_| match c.read_frame() {
            Frame::Bulk(v) | Frame::Verbatim(v) => String::from_utf8_lossy(&v).into_owned(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn client_list_qbuf_and_argv_mem_are_redis_figures() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let info = encode_request(&[b"CLIENT", b"INFO"]);
    let mut cases: Vec<(String, Vec<u8>, usize)> = vec![
        ("CLIENT INFO alone".into(), info.clone(), 1),
        ("inline CLIENT INFO".into(), b"CLIENT INFO\r\n".to_vec(), 1),
        (
            "two pipelined".into(),
            [info.clone(), info.clone()].concat(),
            2,
        ),
        (
            "after a SET".into(),
            [encode_request(&[b"SET", b"k", b"v"]), info.clone()].concat(),
            2,
        ),
        (
            "with a partial request after it".into(),
            [info.clone(), b"*2\r\n$3\r\nGET".to_vec()].concat(),
            1,
        ),
        (
            "completing the partial request".into(),
            [b"\r\n$1\r\nk\r\n".to_vec(), info.clone()].concat(),
            2,
        ),
    ];
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    for (what, bytes, n) in cases.drain(..) {
        // Only the CLIENT INFO lines (not SET's +OK, nor the completed GET's "v").
        let lines = |v: Vec<String>| -> Vec<String> {
            v.into_iter().filter(|l| l.starts_with("id=")).collect()
        };
        let want = lines(bulks_after(&mut r, &bytes, n));
        let got = lines(bulks_after(&mut s, &bytes, n));
        assert_eq!(got.len(), want.len(), "{what}");
        for (g, w) in got.iter().zip(&want) {
            let (g, w) = (client_fields(g), client_fields(w));
            for field in ["qbuf", "argv-mem", "cmd"] {
                assert_eq!(g[field], w[field], "{field} for {what}: shardis {g:?}");
            }
            // Ours cannot be Redis's allocation, but it is a real one.
            for field in ["qbuf-free", "tot-mem"] {
                let v: u64 = g[field].parse().expect("a number");
                assert!(v > 0, "{field}=0 for {what}");
            }
        }
    }

    // Another client, idle or blocked, as CLIENT LIST shows it.
    for (server, conn) in [(&shardis, &mut s), (&redis, &mut r)] {
        let mut other = server.raw();
        let id = match other.cmd(&["CLIENT", "ID"]) {
            Frame::Int(n) => n.to_string(),
            f => panic!("CLIENT ID: {f:?}"),
        };
        let req = encode_request(&[b"CLIENT", b"LIST", b"ID", id.as_bytes()]);
        let line = &bulks_after(conn, &req, 1)[0];
        let f = client_fields(line);
        assert_eq!(
            (&f["qbuf"][..], &f["argv-mem"][..]),
            ("0", "0"),
            "idle: {line}"
        );
        other.send(&encode_request(&[b"BLPOP", b"nosuchlist", b"0"]));
        let mut blocked = String::new();
        assert!(
            wait_until(Duration::from_secs(10), || {
                blocked = bulks_after(conn, &req, 1).remove(0);
                blocked.contains(" flags=b ")
            }),
            "{:?} never showed the client blocked: {blocked}",
            server.kind
        );
        let f = client_fields(&blocked);
        // BLPOP nosuchlist 0: 5 + 10 + 1 bytes of arguments, kept while blocked.
        assert_eq!(
            (&f["qbuf"][..], &f["argv-mem"][..]),
            ("0", "16"),
            "blocked: {blocked}"
        );
    }
}

#[test]
fn client_kill_filters_answer_as_redis() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    for argv in [
        &["CLIENT", "KILL", "USER", "nosuchuser"][..],
        &["CLIENT", "KILL", "USER", "DEFAULT"],
        &["CLIENT", "KILL", "USER", "nosuch", "ID", "0"],
        &["CLIENT", "KILL", "ID", "0", "USER", "nosuch"],
        &["CLIENT", "KILL", "ID", "0"],
        &["CLIENT", "KILL", "ID", "-5"],
        &["CLIENT", "KILL", "ID", "abc"],
        &["CLIENT", "KILL", "ID", "9223372036854775808"],
        &["CLIENT", "KILL", "ID", "99999"],
        &["CLIENT", "KILL", "TYPE", "foo"],
        &["CLIENT", "KILL", "TYPE", "master"],
        &["CLIENT", "KILL", "TYPE", "pubsub", "ID", "x"],
        &["CLIENT", "KILL", "MAXAGE", "5"],
        &["CLIENT", "KILL", "SKIPME", "maybe"],
        &["CLIENT", "KILL", "ADDR", "1.2.3.4:5"],
        &["CLIENT", "KILL", "LADDR", "1.2.3.4:5"],
        &["CLIENT", "KILL", "1.2.3.4:5"],
        &["CLIENT", "KILL", "ID", "1", "X"],
        &["CLIENT", "KILL", "FOO", "bar"],
        &["CLIENT", "KILL"],
    ] {
        assert_eq!(s.cmd(argv), r.cmd(argv), "reply to {argv:?}");
    }

    // USER default kills every other client of the default user (all of them here).
    for (server, me) in [(&shardis, &mut s), (&redis, &mut r)] {
        let mut others: Vec<RawConn> = (0..3).map(|_| server.raw()).collect();
        for o in &mut others {
            assert_eq!(o.cmd(&["PING"]), simple("PONG"));
        }
        // One of them blocked: a kill takes it out of the lists at once too.
        others[0].send_cmd(&[b"BLPOP", b"nolist", b"0"]);
        await_blocked(me, 1);
        // Only these four clients: the harness's start-up probe has gone.
        assert!(
            wait_until(Duration::from_secs(10), || {
                text_of(me.cmd(&["CLIENT", "LIST"])).lines().count() == 4
            }),
            "{:?}: stray clients",
            server.kind
        );
        assert_eq!(
            me.cmd(&["CLIENT", "KILL", "USER", "default"]),
            Frame::Int(3),
            "{:?}",
            server.kind
        );
        // Killed clients are gone for the next command, as in Redis (which frees them
        // before it replies), even before their sockets are closed.
        assert_eq!(
            text_of(me.cmd(&["CLIENT", "LIST"])).lines().count(),
            1,
            "{:?}",
            server.kind
        );
        assert_eq!(
            me.cmd(&["CLIENT", "KILL", "USER", "default"]),
            Frame::Int(0)
        );
        for o in &mut others {
            assert!(o.is_closed(Duration::from_secs(5)), "{:?}", server.kind);
        }
        assert_eq!(me.cmd(&["PING"]), simple("PONG"), "SKIPME yes by default");
    }
}

/// COMMAND INFO's entry with its subcommands in name order (Redis lists them in its
/// dict's order).
fn sorted_subcommands(f: Frame) -> Frame {
    let Frame::Array(mut entries) = f else {
        panic!("COMMAND INFO: {f:?}")
    };
    for e in &mut entries {
        if let Frame::Array(fields) = e {
            if let Some(Frame::Array(subs)) = fields.get_mut(9) {
                subs.sort_by_key(|s| format!("{s:?}"));
            }
        }
    }
    Frame::Array(entries)
}

#[test]
fn cluster_commands_answer_as_a_redis_without_cluster_support() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    for argv in [
        &["CLUSTER"][..],
        &["CLUSTER", "HELP"],
        &["CLUSTER", "help", "x"],
        &["CLUSTER", "KEYSLOT", "x"],
        &["CLUSTER", "KEYSLOT"],
        &["CLUSTER", "INFO"],
        &["CLUSTER", "INFO", "x"],
        &["cluster", "nodes"],
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "SHARDS"],
        &["CLUSTER", "MYID"],
        &["CLUSTER", "COUNTKEYSINSLOT", "1"],
        &["CLUSTER", "GETKEYSINSLOT", "1", "10"],
        &["CLUSTER", "SETSLOT", "1", "NODE", "x"],
        &["CLUSTER", "RESET"],
        &["CLUSTER", "FOO"],
        &["READONLY"],
        &["READWRITE"],
        &["ASKING"],
        &["READONLY", "x"],
    ] {
        assert_eq!(s.cmd(argv), r.cmd(argv), "reply to {argv:?}");
    }
    for name in ["cluster", "readonly", "readwrite", "asking"] {
        let argv = ["COMMAND", "INFO", name];
        assert_eq!(
            sorted_subcommands(s.cmd(&argv)),
            sorted_subcommands(r.cmd(&argv)),
            "COMMAND INFO {name}"
        );
    }
}

fn rdb_changes(c: &mut RawConn) -> i64 {
    let info = text_of(c.cmd(&["INFO", "persistence"]));
    info_field(&info, "rdb_changes_since_last_save").expect("rdb_changes_since_last_save")
}

#[test]
fn setbit_bitfield_setrange_count_changes_as_redis() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    let script: &[&[&str]] = &[
        &["SETBIT", "b", "7", "1"],
        &["SETBIT", "b", "7", "1"],
        &["SETBIT", "b", "7", "0"],
        &["SETBIT", "b", "7", "0"],
        &["SETBIT", "b", "100", "0"],
        &["SETBIT", "b", "100", "0"],
        &["SETBIT", "new", "3", "0"],
        &["SET", "s", "x"],
        &["SETBIT", "s", "1", "1"],
        &["BITFIELD", "f", "SET", "u8", "0", "255"],
        &["BITFIELD", "f", "SET", "u8", "0", "255"],
        &["BITFIELD", "f", "GET", "u8", "0"],
        &["BITFIELD", "missing", "GET", "u8", "0"],
        &["BITFIELD_RO", "f", "GET", "u8", "0"],
        &[
            "BITFIELD", "f", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "10",
        ],
        &[
            "BITFIELD", "created", "OVERFLOW", "FAIL", "SET", "u2", "0", "7",
        ],
        &["EXISTS", "created"],
        &[
            "BITFIELD", "f", "SET", "u8", "0", "1", "SET", "u8", "8", "2", "INCRBY", "u8", "0", "1",
        ],
        &[
            "BITFIELD", "f", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "1000", "INCRBY", "u8", "8",
            "1",
        ],
        &["BITFIELD", "f", "SET", "u8", "200", "0"],
        &[
            "BITFIELD", "f", "OVERFLOW", "SAT", "INCRBY", "u8", "0", "1000",
        ],
        &[
            "BITFIELD", "f", "OVERFLOW", "SAT", "INCRBY", "u8", "0", "1000",
        ],
        &[
            "BITFIELD", "f", "OVERFLOW", "WRAP", "INCRBY", "u8", "0", "256",
        ],
        &[
            "BITFIELD", "g", "SET", "u8", "0", "0", "SET", "u8", "8", "0",
        ],
        &[
            "BITFIELD", "g", "SET", "u8", "400", "0", "GET", "u8", "0", "SET", "u8", "0", "0",
        ],
        &[
            "BITFIELD", "g", "OVERFLOW", "FAIL", "SET", "u2", "8000", "7",
        ],
        &["STRLEN", "g"],
        &[
            "BITFIELD", "g", "SET", "i8", "0", "-1", "SET", "i8", "0", "-1",
        ],
        &["SETRANGE", "r", "0", ""],
        &["SETRANGE", "r", "2", "abc"],
        &["SETRANGE", "r", "2", "abc"],
        &["SETRANGE", "r", "1", ""],
        &["SETRANGE", "s", "0", "x"],
    ];
    for argv in script {
        let (s0, r0) = (rdb_changes(&mut s), rdb_changes(&mut r));
        assert_eq!(s.cmd(argv), r.cmd(argv), "reply to {argv:?}");
        let (ds, dr) = (rdb_changes(&mut s) - s0, rdb_changes(&mut r) - r0);
        assert_eq!(ds, dr, "rdb_changes_since_last_save delta of {argv:?}");
    }
}

/// Pearson's chi-square of the counts of `draws` against the uniform distribution.
fn chi_square(counts: &std::collections::HashMap<Vec<u8>, u64>, members: usize) -> f64 {
    let draws: u64 = counts.values().sum();
    let expected = draws as f64 / members as f64;
    let seen: f64 = counts
        .values()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    // Members never drawn count too.
    seen + (members - counts.len()) as f64 * expected
}

fn draw_counts(c: &mut RawConn, argv: &[&str]) -> std::collections::HashMap<Vec<u8>, u64> {
    let Frame::Array(items) = c.cmd(argv) else {
        panic!("{argv:?} did not answer an array")
    };
    let mut counts = std::collections::HashMap::new();
    for i in items {
        let Frame::Bulk(m) = i else {
            panic!("{argv:?}: {i:?}")
        };
        *counts.entry(m).or_insert(0) += 1;
    }
    counts
}

/// SRANDMEMBER / HRANDFIELD on hashtable encodings draw every member equally often.
/// 100,000 draws from 50 members: chi-square at 49 degrees of freedom has mean 49 and
/// exceeds 130 with probability below 1e-8; the old pick (a non-empty bucket, then an
/// element of its chain) scored about 72 per 10,000 draws, so several hundred here.
#[test]
fn srandmember_and_hrandfield_are_uniform_on_hashtables() {
    let shardis = Server::shardis(1);
    let redis = Server::redis();
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    let value = "v".repeat(100);
    for i in 0..50 {
        let m = format!("member-{i}");
        for c in [&mut s, &mut r] {
            assert_eq!(c.cmd(&["SADD", "set", &m]), Frame::Int(1));
            // A value over hash-max-listpack-value makes the hash a hashtable.
            assert_eq!(c.cmd(&["HSET", "hash", &m, &value]), Frame::Int(1));
        }
    }
    for key in ["set", "hash"] {
        let argv = ["OBJECT", "ENCODING", key];
        assert_eq!(s.cmd(&argv), bulk("hashtable"), "{key}");
        assert_eq!(s.cmd(&argv), r.cmd(&argv), "{key}");
    }
    for argv in [
        &["SRANDMEMBER", "set", "-100000"][..],
        &["HRANDFIELD", "hash", "-100000"],
    ] {
        let counts = draw_counts(&mut s, argv);
        assert_eq!(counts.values().sum::<u64>(), 100_000);
        let chi2 = chi_square(&counts, 50);
        eprintln!("{argv:?}: chi-square {chi2:.1} at 49 dof");
        assert!(chi2 < 130.0, "{argv:?}: chi-square {chi2:.1} at 49 dof");
    }
}

/// `Frame::Array`'s items, or a panic naming what came instead.
fn items(f: &Frame) -> &[Frame] {
    match f {
        Frame::Array(a) => a,
        other => panic!("expected an array, got {other:?}"),
    }
}

fn text(f: &Frame) -> String {
    match f {
        Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("expected a bulk string, got {other:?}"),
    }
}

/// LATEST's one entry: the event name, and the latest and all-time latencies.
fn latest_entry(f: &Frame) -> (String, i64, i64) {
    let events = items(f);
    assert_eq!(events.len(), 1, "one event expected: {events:?}");
    let e = items(&events[0]);
    assert_eq!(e.len(), 4, "event, time, latest, max: {e:?}");
    let int = |f: &Frame| match f {
        Frame::Int(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = int(&e[1]);
    assert!(
        t <= now && t > now - 600,
        "sample time {t} is a recent unix time"
    );
    (text(&e[0]), int(&e[2]), int(&e[3]))
}

#[test]
fn latency_monitor_records_slow_commands_as_redis() {
    let flags = [
        "--enable-debug-command",
        "yes",
        // Far above what any ordinary command takes, even on a loaded machine with a
        // debug build, so only the DEBUG SLEEPs below are events.
        "--latency-monitor-threshold",
        "200",
    ];
    let redis = Server::redis_with(&flags);
    let shardis = Server::shardis_with(2, &flags);
    let (mut r, mut s) = (redis.raw(), shardis.raw());
    let mut same = |argv: &[&str]| {
        let (theirs, ours) = (r.cmd(argv), s.cmd(argv));
        assert_eq!(ours, theirs, "{argv:?}");
        ours
    };
    same(&["CONFIG", "GET", "latency-monitor-threshold"]);
    assert_eq!(same(&["LATENCY", "LATEST"]), Frame::Array(vec![]));
    same(&["LATENCY", "HISTORY", "command"]);
    same(&["LATENCY", "GRAPH", "command"]);
    same(&["LATENCY", "RESET"]);
    // Wrong arity and unknown subcommands.
    for argv in [
        &["LATENCY"][..],
        &["LATENCY", "LATEST", "x"],
        &["LATENCY", "HISTORY"],
        &["LATENCY", "HISTORY", "a", "b"],
        &["LATENCY", "GRAPH"],
        &["LATENCY", "DOCTOR", "x"],
        &["LATENCY", "HELP", "x"],
        &["LATENCY", "NOPE"],
        &["LATENCY", "NOPE", "x"],
    ] {
        assert!(matches!(same(argv), Frame::Error(_)), "{argv:?}");
    }
    same(&["LATENCY", "HELP"]);

    // DEBUG SLEEP is not a fast command: Redis records it as `command`. It runs on a
    // second connection too, which may be served by the other shard: both samples are
    // one event when read.
    same(&["DEBUG", "SLEEP", "0.25"]);
    let (mut r2, mut s2) = (redis.raw(), shardis.raw());
    assert_eq!(
        s2.cmd(&["DEBUG", "SLEEP", "0.25"]),
        r2.cmd(&["DEBUG", "SLEEP", "0.25"])
    );
    let theirs = latest_entry(&r.cmd(&["LATENCY", "LATEST"]));
    let ours = latest_entry(&s.cmd(&["LATENCY", "LATEST"]));
    assert_eq!(theirs.0, "command");
    assert_eq!(ours.0, theirs.0);
    assert!(ours.1 >= 250 && ours.2 >= ours.1, "{ours:?}");
    assert!(theirs.1 >= 250 && theirs.2 >= theirs.1, "{theirs:?}");

    let history = |f: Frame| items(&f).iter().map(|x| items(x).len()).collect::<Vec<_>>();
    let (hr, hs) = (
        history(r.cmd(&["LATENCY", "HISTORY", "command"])),
        history(s.cmd(&["LATENCY", "HISTORY", "command"])),
    );
    assert!(!hr.is_empty() && hr.iter().all(|&n| n == 2), "{hr:?}");
    assert!(!hs.is_empty() && hs.iter().all(|&n| n == 2), "{hs:?}");

    // GRAPH: Redis's layout (title, 80 dashes, 4 bar rows, a blank row, vertical
    // labels); numbers may differ by a millisecond or a second.
    let shape = |f: Frame| -> Vec<String> {
        text(&f)
            .lines()
            .map(|l| {
                l.chars()
                    .map(|c| if c.is_ascii_digit() { 'N' } else { c })
                    .collect()
            })
            .collect()
    };
    let (gr, gs) = (
        shape(r.cmd(&["LATENCY", "GRAPH", "command"])),
        shape(s.cmd(&["LATENCY", "GRAPH", "command"])),
    );
    // Title and rule exactly; the bars and the labels under them depend on the
    // samples' values and ages (a label can be "1s" on one side and "10s" on the
    // other), so only their number is compared when the histories are as long.
    assert_eq!(gs[..2], gr[..2]);
    if hr.len() == hs.len() {
        assert_eq!(gs.len(), gr.len(), "{gs:?} vs {gr:?}");
    }
    for f in [r.cmd(&["LATENCY", "DOCTOR"]), s.cmd(&["LATENCY", "DOCTOR"])] {
        let t = text(&f);
        assert!(t.starts_with("Dave, I have observed latency spikes"), "{t}");
        assert!(t.contains("1. command: "), "{t}");
    }

    // RESET counts the events it forgot, once each however many shards held them.
    assert_eq!(
        s.cmd(&["LATENCY", "RESET", "nope", "command", "command"]),
        r.cmd(&["LATENCY", "RESET", "nope", "command", "command"])
    );
    assert_eq!(s.cmd(&["LATENCY", "LATEST"]), Frame::Array(vec![]));
    s.cmd(&["DEBUG", "SLEEP", "0.25"]);
    r.cmd(&["DEBUG", "SLEEP", "0.25"]);
    assert_eq!(s.cmd(&["LATENCY", "RESET"]), r.cmd(&["LATENCY", "RESET"]));

    // Threshold 0 turns the monitor off.
    let mut same = |argv: &[&str]| assert_eq!(s.cmd(argv), r.cmd(argv), "{argv:?}");
    same(&["CONFIG", "SET", "latency-monitor-threshold", "0"]);
    same(&["DEBUG", "SLEEP", "0.01"]);
    same(&["LATENCY", "LATEST"]);
    same(&["LATENCY", "DOCTOR"]);
}

/// `INFO everything` as (section, field names in order).
fn info_field_names(server: &Server) -> Vec<(String, Vec<String>)> {
    let info = text(&server.raw().cmd(&["INFO", "everything"]));
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in info.lines() {
        if let Some(name) = line.strip_prefix("# ") {
            out.push((name.to_string(), Vec::new()));
        } else if let Some((field, _)) = line.split_once(':') {
            out.last_mut()
                .expect("a field after a header")
                .1
                .push(field.to_string());
        }
    }
    out
}

/// Fields and sections Shardis has that Redis 7.0 has not: its own version and the
/// per-shard section.
const INFO_OURS_ONLY: &[&str] = &["shardis_version"];
const INFO_SECTIONS_OURS_ONLY: &[&str] = &["Shards"];

#[test]
fn info_sections_list_redis_fields_in_redis_order() {
    let redis = Server::redis();
    let shardis = Server::shardis(2);
    // The same commands on both, so the per-command sections list the same names.
    for server in [&redis, &shardis] {
        let mut c = server.raw();
        c.cmd(&["SET", "k", "v"]);
        c.cmd(&["GET", "k"]);
        c.cmd(&["NOSUCHCOMMAND"]);
    }
    let theirs = info_field_names(&redis);
    let ours: Vec<(String, Vec<String>)> = info_field_names(&shardis)
        .into_iter()
        .filter(|(s, _)| !INFO_SECTIONS_OURS_ONLY.contains(&s.as_str()))
        .map(|(s, f)| {
            let f = f
                .into_iter()
                .filter(|n| !INFO_OURS_ONLY.contains(&n.as_str()))
                .collect();
            (s, f)
        })
        .collect();
    let names = |v: &[(String, Vec<String>)]| v.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&theirs), "sections");
    for ((section, o), (_, t)) in ours.iter().zip(&theirs) {
        let (mut o, mut t) = (o.clone(), t.clone());
        // Redis lists commands in its command table's hash order.
        if section == "Commandstats" || section == "Latencystats" {
            o.sort();
            t.sort();
        }
        assert_eq!(o, t, "fields of # {section}");
    }
}

#[test]
fn info_memory_counts_allocated_bytes() {
    let shardis = Server::shardis(2);
    let mut c = shardis.raw();
    let field = |c: &mut RawConn, name: &str| -> i64 {
        let info = text(&c.cmd(&["INFO", "memory"]));
        info_field(&info, name).unwrap_or_else(|| panic!("{name} in {info}"))
    };
    let empty = field(&mut c, "used_memory");
    let rss = field(&mut c, "used_memory_rss");
    assert!(empty < rss, "allocated {empty} is below the RSS {rss}");
    // 20k values of 1000 bytes: used_memory grows by at least their size.
    let value = "x".repeat(1000);
    for i in 0..20 {
        let mut pipe = Vec::new();
        for j in 0..1000 {
            let key = format!("k{i}:{j}");
            pipe.extend_from_slice(&encode_request(&[b"SET", key.as_bytes(), value.as_bytes()]));
        }
        c.send(&pipe);
        for _ in 0..1000 {
            c.read_frame();
        }
    }
    let full = field(&mut c, "used_memory");
    assert!(full - empty >= 20_000_000, "{empty} -> {full}");
    let dataset = field(&mut c, "used_memory_dataset");
    let overhead = field(&mut c, "used_memory_overhead");
    let startup = field(&mut c, "used_memory_startup");
    assert!(
        overhead >= startup && dataset >= 20_000_000,
        "{overhead} {startup} {dataset}"
    );
    c.cmd(&["FLUSHALL"]);
    let flushed = field(&mut c, "used_memory");
    assert!(
        flushed < full - 15_000_000,
        "FLUSHALL frees: {full} -> {flushed}"
    );
}

/// The migration users do by hand: stop redis-server while clients are connected and
/// start Shardis on the same port at once. The old server's side of each connection
/// lingers (FIN-WAIT-2, then TIME_WAIT); a listener without SO_REUSEADDR cannot bind
/// the port until they are gone, Redis's own listeners (and ours) can.
#[test]
fn binds_the_port_a_stopped_server_left_connections_on() {
    let redis = Server::redis();
    let port = redis.port;
    let mut clients: Vec<RawConn> = (0..3).map(|_| redis.raw()).collect();
    for c in clients.iter_mut() {
        assert_eq!(c.cmd(&["PING"]), Frame::Simple("PONG".into()));
    }
    drop(redis);
    let shardis = Server::shardis_on_port(port, 2);
    let mut c = shardis.raw();
    assert_eq!(c.cmd(&["PING"]), Frame::Simple("PONG".into()));
    drop(clients);
}

/// The way back: stop Shardis while clients are connected and start redis-server on
/// the same port at once. With io_uring the kernel frees a dead process's sockets only
/// once its rings are torn down, tens of milliseconds after it is gone, so Shardis
/// stops listening before it exits: the port is then free for a listener bound with
/// SO_REUSEADDR, as Redis's is (the connections' lingering sockets do not hold it).
#[test]
fn a_stopped_server_leaves_its_port_free_at_once() {
    for round in 0..5 {
        let mut shardis = Server::shardis(2);
        let port = shardis.port;
        let mut clients: Vec<RawConn> = (0..8).map(|_| shardis.raw()).collect();
        for c in clients.iter_mut() {
            assert_eq!(c.cmd(&["SET", "k", "v"]), Frame::Simple("OK".into()));
        }
        clients[0].send_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while shardis.try_exit_status().is_none() {
            assert!(std::time::Instant::now() < deadline, "SHUTDOWN exits");
            std::thread::sleep(Duration::from_millis(1));
        }
        if let Err(e) = listen_as_redis(port) {
            panic!("round {round}: port {port} still held after Shardis exited: {e}");
        }
        drop(clients);
    }
}

/// Listen on `port` of 127.0.0.1 as redis-server does: SO_REUSEADDR, bind, listen.
fn listen_as_redis(port: u16) -> std::io::Result<socket2::Socket> {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let sk = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sk.set_reuse_address(true)?;
    sk.bind(&addr.into())?;
    sk.listen(16)?;
    Ok(sk)
}

/// The same after SIGKILL, which gives the server no chance to close anything: the
/// port is free once the process is gone. (With io_uring, an accept in flight on the
/// listener kept it bound until the kernel tore the dead process's rings down, a few
/// milliseconds later: `backend::Polled`.)
#[test]
fn a_killed_server_leaves_its_port_free_at_once() {
    for round in 0..5 {
        let shardis = Server::shardis(2);
        let port = shardis.port;
        let mut clients: Vec<RawConn> = (0..8).map(|_| shardis.raw()).collect();
        for c in clients.iter_mut() {
            assert_eq!(c.cmd(&["SET", "k", "v"]), Frame::Simple("OK".into()));
        }
        let dir = shardis.dir().to_path_buf();
        shardis.crash(); // SIGKILL, then reaped
        let _ = std::fs::remove_dir_all(dir);
        if let Err(e) = listen_as_redis(port) {
            panic!("round {round}: port {port} still held after Shardis was killed: {e}");
        }
        drop(clients);
    }
}

/// A second server started on a port a server listens on exits with code 1 and
/// Redis's reason, whether the first is redis-server or Shardis (whose cores share
/// their port with SO_REUSEPORT, which would otherwise let the second bind beside it
/// and take part of its connections); the first keeps serving.
#[test]
fn a_second_server_on_a_port_in_use_exits() {
    use std::process::{Command, Stdio};
    for first in [Server::redis(), Server::shardis(2)] {
        let dir = first.dir().join("second");
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_shardis"))
            .args(["--port", &first.port.to_string(), "--save", ""])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("shardis runs");
        let log = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{log}");
        assert!(
            log.contains(&format!(
                "Could not create server TCP listening socket 127.0.0.1:{}: Address already in use",
                first.port
            )),
            "{log}"
        );
        let mut c = first.raw();
        for _ in 0..8 {
            assert_eq!(c.cmd(&["PING"]), Frame::Simple("PONG".into()));
            c = first.raw();
        }
    }
}

/// Where io_uring cannot run (here: a locked-memory limit below what glommio needs, as
/// in a container without `--ulimit memlock`), `runtime io_uring` exits with code 1 and
/// a line naming the cause and the fix, and `runtime auto` serves on epoll.
#[test]
fn runtime_option_when_io_uring_cannot_run() {
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_shardis");
    let port = common::free_port().to_string();
    let dir = std::env::temp_dir().join(format!("shardis-memlock-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let args = |rt: &str| {
        let mut c = Command::new("prlimit");
        c.args([
            "--memlock=0:0",
            bin,
            "--port",
            &port,
            "--save",
            "",
            "--runtime",
            rt,
        ])
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null());
        c
    };
    let out = args("io_uring")
        .output()
        .expect("prlimit (util-linux) runs");
    let log =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("locked-memory limit is 0 KiB") && log.contains("ulimit -l"),
        "{log}"
    );

    let log_path = dir.join("auto.log");
    let mut child = args("auto")
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let served = wait_until(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_ok()
    });
    let pong = served
        && RawConn::connect(port.parse().unwrap()).cmd(&["PING"]) == Frame::Simple("PONG".into());
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(pong, "runtime auto did not serve: {log}");
    assert!(
        log.contains("epoll event loop (runtime auto, io_uring cannot be used"),
        "{log}"
    );
}

/// A hash tag whose keys shard `s` of 2 owns.
fn tag_on(s: usize) -> String {
    (0..)
        .map(|i| format!("t{i}"))
        .find(|t| common::shard_of(t.as_bytes(), 2) == s)
        .expect("some tag lands on every shard")
}

/// INFO shards' `moved_in=` summed over the shards: connections that moved cores.
fn moved_in(c: &mut RawConn) -> u64 {
    text_of(c.cmd(&["INFO", "shards"]))
        .lines()
        .filter_map(|l| l.split("moved_in=").nth(1))
        .map(|v| {
            v.split(',')
                .next()
                .unwrap_or("0")
                .parse::<u64>()
                .unwrap_or(0)
        })
        .sum()
}

fn client_info(c: &mut RawConn) -> std::collections::HashMap<String, String> {
    client_fields(&text_of(c.cmd(&["CLIENT", "INFO"])))
}

/// Connection affinity (`runtime::connection`): a connection whose requests all go to
/// another core's shard moves to that core after 8 reads, as the same client (id,
/// name, database, age), loses no request on the way, follows its keys when they turn
/// to another shard, and is killed by id where it went.
#[test]
fn a_connection_moves_to_the_core_of_its_keys_as_the_same_client() {
    let s = Server::shardis(2);
    let mut c = common::conn_on(&s, 0);
    let mut watcher = s.raw();
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", "mover"]), simple("OK"));
    assert_eq!(c.cmd(&["SELECT", "3"]), simple("OK"));
    let before = client_info(&mut c);
    let far = format!("{{{}}}:n", tag_on(1));
    for i in 1..=20 {
        assert_eq!(c.cmd(&["INCR", &far]), Frame::Int(i));
    }
    let after = client_info(&mut c);
    assert_eq!(after["shard"], "1", "moved to the key's core: {after:?}");
    for field in ["id", "name", "db", "addr", "laddr"] {
        assert_eq!(after[field], before[field], "{field} kept");
    }
    assert_eq!(moved_in(&mut watcher), 1);
    let list = text_of(watcher.cmd(&["CLIENT", "LIST"]));
    let lines: Vec<&str> = list
        .lines()
        .filter(|l| l.contains(&format!("id={} ", before["id"])))
        .collect();
    assert_eq!(lines.len(), 1, "listed once: {list}");
    assert!(lines[0].contains("name=mover"), "{}", lines[0]);
    // Counted once. (The connections `conn_on` opened on the wrong core and closed
    // are uncounted when their cores see them close: once in CI, one was still
    // counted here.)
    let mut clients = String::new();
    let settled = common::wait_until(Duration::from_secs(5), || {
        clients = text_of(watcher.cmd(&["INFO", "clients"]));
        clients.contains("connected_clients:2\r\n")
    });
    assert!(
        settled,
        "{clients}\n{}",
        text_of(watcher.cmd(&["CLIENT", "LIST"]))
    );

    // Keys that turn to the other shard: the connection follows them each time,
    // including with requests pipelined two by two, and every INCR counts once.
    let tags = [tag_on(0), tag_on(1)];
    for phase in 0..4 {
        let key = format!("{{{}}}:p", tags[phase % 2]);
        let pair = encode_request(&[b"INCR", key.as_bytes()]).repeat(2);
        c.send(&pair);
        let first = (phase / 2 * 12) as i64;
        assert_eq!(c.read_frame(), Frame::Int(first + 1));
        assert_eq!(c.read_frame(), Frame::Int(first + 2));
        for i in 3..=12 {
            assert_eq!(c.cmd(&["INCR", &key]), Frame::Int(first + i));
        }
        assert_eq!(client_info(&mut c)["shard"], (phase % 2).to_string());
    }
    assert_eq!(moved_in(&mut watcher), 5);

    // Tied to its core (WATCH here): it stays, until UNWATCH frees it.
    let near_key = format!("{{{}}}:w", tags[1]);
    let far_key = format!("{{{}}}:w", tags[0]);
    assert_eq!(c.cmd(&["WATCH", &near_key]), simple("OK"));
    for _ in 0..12 {
        assert_eq!(c.cmd(&["GET", &far_key]), Frame::NullBulk);
    }
    assert_eq!(client_info(&mut c)["shard"], "1", "a watching client stays");
    assert_eq!(c.cmd(&["UNWATCH"]), simple("OK"));
    for _ in 0..12 {
        assert_eq!(c.cmd(&["GET", &far_key]), Frame::NullBulk);
    }
    assert_eq!(client_info(&mut c)["shard"], "0");
    assert_eq!(c.cmd(&["GET", &far]), bulk("20"), "its database came along");

    let id = before["id"].clone();
    assert_eq!(watcher.cmd(&["CLIENT", "KILL", "ID", &id]), Frame::Int(1));
    assert!(c.is_closed(Duration::from_secs(5)));
}

/// Connection affinity counts a script that ran as one job on one shard as a request
/// for that shard (a job queue's scripts, whose keys share a hash tag): its client
/// moves there, and each script still runs once. Connection commands between them
/// (PING here) neither count nor break the row. A script that reaches beyond its
/// declared shard does not take the connection anywhere.
#[test]
fn a_client_whose_scripts_keep_to_another_shard_moves_there() {
    let s = Server::shardis(2);
    let mut c = common::conn_on(&s, 0);
    let mut watcher = s.raw();
    let far = format!("{{{}}}:n", tag_on(1));
    let script = "return redis.call('incr', KEYS[1])";
    let sha = text_of(c.cmd(&["SCRIPT", "LOAD", script]));
    for i in 1..=6 {
        assert_eq!(c.cmd(&["EVAL", script, "1", &far]), Frame::Int(i));
        assert_eq!(c.cmd(&["PING"]), simple("PONG"));
    }
    for i in 7..=12 {
        assert_eq!(c.cmd(&["EVALSHA", &sha, "1", &far]), Frame::Int(i));
    }
    assert_eq!(
        client_info(&mut c)["shard"],
        "1",
        "moved to its scripts' keys"
    );
    assert_eq!(moved_in(&mut watcher), 1);
    assert_eq!(c.cmd(&["EVALSHA", &sha, "1", &far]), Frame::Int(13));

    // Its declared key is on the other core's shard, but it also reaches a key of
    // this one each time: it runs holding every shard, and the connection stays.
    let mut d = common::conn_on(&s, 0);
    let here = format!("{{{}}}:m", tag_on(0));
    let wide = "redis.call('incr', ARGV[1]) return redis.call('incr', KEYS[1])";
    for i in 14..=30 {
        assert_eq!(d.cmd(&["EVAL", wide, "1", &far, &here]), Frame::Int(i));
    }
    assert_eq!(client_info(&mut d)["shard"], "0");
    assert_eq!(moved_in(&mut watcher), 1);
    assert_eq!(d.cmd(&["GET", &here]), bulk("17"));
}

/// Texts a user meets by hand: CONFIG SET's pairs, HELP's last line, HELLO before
/// AUTH.
#[test]
fn admin_texts_match_redis() {
    let (shardis, redis) = (Server::shardis(2), Server::redis());
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    // CONFIG RESETSTAT forgets the saves too.
    for c in [&mut s, &mut r] {
        assert_eq!(c.cmd(&["SAVE"]), simple("OK"));
        assert_eq!(common::info_field(c, "rdb_saves"), "1");
        assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]), simple("OK"));
        assert_eq!(common::info_field(c, "rdb_saves"), "0");
    }
    for argv in [
        &["CONFIG", "SET", "maxmemory", "1", "hz"][..],
        &["CONFIG", "SET", "maxmemory"],
        &["CONFIG", "SET", "maxmemory-clients", "200%"],
        &["CONFIG", "SET", "maxmemory-clients", "100%"],
        &["CONFIG", "SET", "maxmemory-clients", "-1%"],
        &["CONFIG", "SET", "maxmemory-clients", "0"],
        &[
            "CONFIG",
            "SET",
            "maxmemory",
            "10000001",
            "maxmemory-clients",
            "200%",
            "client-query-buffer-limit",
            "invalid",
        ],
        &["CONFIG", "GET", "maxmemory"],
        &["CLIENT", "HELP"],
        &["COMMAND", "HELP"],
        &["CONFIG", "SET", "shutdown-on-sigterm", "now NOSAVE"],
        &["CONFIG", "GET", "shutdown-on-sigterm"],
        &["CONFIG", "SET", "shutdown-on-sigint", "default force"],
        &["CONFIG", "GET", "shutdown-on-sigint"],
        &["CONFIG", "SET", "shutdown-on-sigint", "save nosave"],
        &["CONFIG", "SET", "shutdown-on-sigint", "later"],
        &["CONFIG", "SET", "shutdown-on-sigint", ""],
        &["CONFIG", "SET", "shutdown-on-sigint", "default"],
        &["CONFIG", "GET", "shutdown-on-sigint"],
        &["SHUTDOWN", "ABORT"],
        &["SHUTDOWN", "ABORT", "NOW"],
        &["SHUTDOWN", "SAVE", "NOSAVE"],
        &["SHUTDOWN", "LATER"],
        &["CONFIG", "SET", "save", "0 0"],
        &["CONFIG", "SET", "save", "0 10"],
        &["CONFIG", "SET", "save", "10 0"],
        &["CONFIG", "GET", "save"],
        &["CONFIG", "SET", "save", "10 -1"],
        &["CONFIG", "SET", "save", "10x 1"],
        &["CONFIG", "SET", "save", ""],
        &["CONFIG", "GET", "save"],
        &["CONFIG", "SET", "requirepass", "pw"],
    ] {
        assert_eq!(s.cmd(argv), r.cmd(argv), "{argv:?}");
    }
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    assert_eq!(s.cmd(&["HELLO", "3"]), r.cmd(&["HELLO", "3"]));
}

/// DEBUG OBJECT: Redis's fields, the same encoding, refcount and serialized length for
/// the same value (the address and the LRU stamp differ).
#[test]
fn debug_object_describes_values_as_redis() {
    let debug = ["--enable-debug-command", "yes"];
    let (shardis, redis) = (Server::shardis_with(2, &debug), Server::redis_with(&debug));
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    let fields = |f: Frame| -> Vec<String> {
        let Frame::Simple(line) = f else {
            return vec![format!("{f:?}")];
        };
        line.split(' ')
            .filter(|f| !f.starts_with("at:") && !f.starts_with("lru:"))
            .map(|f| match f.strip_prefix("lru_seconds_idle:") {
                Some(_) => "lru_seconds_idle".to_string(),
                None => f.to_string(),
            })
            .collect()
    };
    let long = "a".repeat(100);
    for setup in [
        &["SET", "k", "v"][..],
        &["SET", "k", "12"],
        &["SET", "k", "123456789012"],
        &["SET", "k", &long],
        &["HSET", "h", "f", "v"],
        &["SADD", "s", "1", "2"],
        &["ZADD", "z", "1", "m"],
    ] {
        assert_eq!(s.cmd(setup), r.cmd(setup));
        let key = setup[1];
        let (a, b) = (
            s.cmd(&["DEBUG", "OBJECT", key]),
            r.cmd(&["DEBUG", "OBJECT", key]),
        );
        assert_eq!(fields(a), fields(b), "{setup:?}");
        s.cmd(&["DEL", key]);
        r.cmd(&["DEL", key]);
    }
    assert_eq!(
        s.cmd(&["DEBUG", "OBJECT", "nokey"]),
        r.cmd(&["DEBUG", "OBJECT", "nokey"])
    );
    // A key past its TTL that nothing deleted yet is still described, and stays.
    for c in [&mut s, &mut r] {
        c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
        c.cmd(&["SET", "gone", "v", "PX", "1"]);
    }
    std::thread::sleep(std::time::Duration::from_millis(5));
    let (a, b) = (
        s.cmd(&["DEBUG", "OBJECT", "gone"]),
        r.cmd(&["DEBUG", "OBJECT", "gone"]),
    );
    assert_eq!(fields(a), fields(b), "an expired key");
    assert_eq!(s.cmd(&["DBSIZE"]), r.cmd(&["DBSIZE"]));
}

/// DEBUG POPULATE: the same keys, values, encodings and errors as Redis's, existing
/// keys left alone, over every shard, and the `new` keyspace event per key.
#[test]
fn debug_populate_matches_redis() {
    let debug = ["--enable-debug-command", "yes"];
    let (shardis, redis) = (Server::shardis_with(2, &debug), Server::redis_with(&debug));
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    let nul_prefix = "a\0b";
    let long_prefix = "p".repeat(200);
    for argv in [
        &["SET", "key:0", "mine"][..],
        &["DEBUG", "POPULATE", "200000"],
        &["DBSIZE"],
        &["GET", "key:0"],
        &["GET", "key:199999"],
        &["OBJECT", "ENCODING", "key:3"],
        &["DEBUG", "POPULATE", "5", "foo", "3"],
        &["GET", "foo:4"],
        &["DEBUG", "POPULATE", "3", "bar", "12"],
        &["GET", "bar:2"],
        &["DEBUG", "POPULATE", "3", "big", "100"],
        &["OBJECT", "ENCODING", "big:1"],
        &["STRLEN", "big:1"],
        &["DEBUG", "POPULATE", "2", nul_prefix],
        &["EXISTS", "a:0", "a:1", "a:2"],
        &["DEBUG", "POPULATE", "1", &long_prefix],
        &["STRLEN", &format!("{}:0", &long_prefix[..125])],
        &["DEBUG", "POPULATE", "0"],
        &["DEBUG", "POPULATE", "-1"],
        &["DEBUG", "POPULATE", "abc"],
        &["DEBUG", "POPULATE", "1", "x", "-5"],
        &["DEBUG", "POPULATE", "1", "x", "y"],
        &["DEBUG", "POPULATE", "1", "2", "3", "4"],
        &["DEBUG", "POPULATE"],
        &["DBSIZE"],
    ] {
        assert_eq!(s.cmd(argv), r.cmd(argv), "{argv:?}");
    }
    // Each key it creates raises `new`; keys that existed raise nothing.
    for server in [&shardis, &redis] {
        let mut c = server.raw();
        c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEn"]);
        let mut sub = server.raw();
        sub.cmd(&["PSUBSCRIBE", "__keyevent@0__:new"]);
        assert_eq!(
            c.cmd(&["DEBUG", "POPULATE", "3", "ev"]),
            Frame::Simple("OK".into())
        );
        assert_eq!(
            c.cmd(&["DEBUG", "POPULATE", "4", "ev"]),
            Frame::Simple("OK".into())
        );
        let mut keys: Vec<String> = (0..4)
            .map(|_| match sub.read_frame() {
                Frame::Array(m) => show(&m[3]),
                other => panic!("{other:?}"),
            })
            .collect();
        keys.sort();
        assert_eq!(keys, ["$\"ev:0\"", "$\"ev:1\"", "$\"ev:2\"", "$\"ev:3\""]);
    }
}

/// What counts as a change for the save points (`rdb_changes_since_last_save`) as
/// Redis counts it: a value stored with its TTL is one change, setting a TTL alone
/// is one.
#[test]
fn changes_since_last_save_count_as_redis() {
    let (shardis, redis) = (Server::shardis(2), Server::redis());
    let changes = |c: &mut RawConn| common::info_field(c, "rdb_changes_since_last_save");
    let cases: &[&[&[&str]]] = &[
        &[&["SET", "k", "v", "EX", "100"]],
        &[&["SETEX", "k", "100", "v"]],
        &[&["PSETEX", "k", "100000", "v"]],
        &[
            &["SET", "k", "v", "EX", "100"],
            &["SET", "k", "w", "KEEPTTL"],
        ],
        &[
            &["SET", "k", "v"],
            &["EXPIRE", "k", "100"],
            &["PEXPIRE", "k", "9000"],
        ],
        &[
            &["SET", "k", "v"],
            &["GETEX", "k", "EX", "100"],
            &["GETEX", "k", "PERSIST"],
        ],
        &[&["SET", "k", "v", "EX", "100"], &["PERSIST", "k"]],
        &[&["SET", "k", "v", "EX", "100"], &["COPY", "k", "k2"]],
        &[
            &["SET", "k", "v", "EX", "100"],
            &["SET", "k", "v", "GET", "EX", "50"],
        ],
        &[&["SET", "k", "v"], &["EXPIRE", "k", "-1"]],
        &[
            &["SET", "{k}a", "v", "EX", "9"],
            &["SET", "{k}b", "w"],
            &["RENAME", "{k}a", "{k}b"],
        ],
        &[
            &["SET", "{k}a", "v", "EX", "9"],
            &["RENAMENX", "{k}a", "{k}c"],
        ],
        &[&["SET", "k", "v", "EX", "100"], &["MOVE", "k", "1"]],
        // Keys on the two shards: the rename runs over both.
        &[
            &["SET", "k", "v", "EX", "100"],
            &["SET", "a", "w"],
            &["RENAME", "k", "a"],
        ],
        &[&["HSET", "h", "f", "v", "g", "w"], &["HDEL", "h", "f", "g"]],
        &[
            &["SET", "n", "1"],
            &["INCR", "n"],
            &["INCRBYFLOAT", "n", "1.5"],
        ],
        &[
            &["SET", "n", "x"],
            &["INCR", "n"],
            &["INCRBYFLOAT", "n", "1"],
        ],
        &[
            &["SADD", "s", "a"],
            &["SMOVE", "s", "{s}x", "a"],
            &["SPOP", "{s}x"],
        ],
    ];
    for steps in cases {
        let mut counts = Vec::new();
        for server in [&shardis, &redis] {
            let mut c = server.raw();
            c.cmd(&["FLUSHALL"]);
            c.cmd(&["SAVE"]);
            for step in *steps {
                c.cmd(step);
            }
            counts.push(changes(&mut c));
        }
        assert_eq!(counts[0], counts[1], "{steps:?}");
    }
}

fn art_text(f: &Frame) -> String {
    match f {
        Frame::Bulk(b) | Frame::Verbatim(b) => String::from_utf8(b.clone()).expect("utf-8"),
        other => panic!("expected art, got {other:?}"),
    }
}

/// The art's lines, ANSI colour escapes taken out, and how many characters each has.
fn art_shape(f: &Frame) -> Vec<usize> {
    let text = art_text(f);
    let mut plain = String::new();
    let mut escape = false;
    for ch in text.chars() {
        match (escape, ch) {
            (false, '\x1b') => escape = true,
            (true, 'm') => escape = false,
            (false, _) => plain.push(ch),
            _ => {}
        }
    }
    plain.lines().map(|l| l.chars().count()).collect()
}

#[test]
fn lolwut_answers_as_redis() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let mut s = shardis.raw();
    let mut r = redis.raw();
    // Everything that does not depend on the C library's rand(): the version, the
    // first two rows of Schotter (only lower rows are turned), the limits, the errors.
    let exact: &[&[&str]] = &[
        &["LOLWUT"],
        &["lolwut", "version", "7"],
        &["LOLWUT", "VERSION", "4"],
        &["LOLWUT", "VERSION", "-1"],
        &["LOLWUT", "VERSION"],
        &["LOLWUT", "foo", "bar"],
        &["LOLWUT", "VERSION", "5", "30", "4", "2"],
        &["LOLWUT", "VERSION", "5", "1", "1", "2"],
        &["LOLWUT", "VERSION", "5", "2", "3", "1"],
        &["LOLWUT", "VERSION", "5", "2000", "300", "1"],
        &["LOLWUT", "VERSION", "5", "0", "0", "-3"],
        &["LOLWUT", "VERSION", "4294967301", "41", "7", "2"],
        &["LOLWUT", "VERSION", "x"],
        &["LOLWUT", "VERSION", "5", "x"],
        &["LOLWUT", "VERSION", "5", "10", "2", "1.5"],
        &["LOLWUT", "VERSION", "6", "x"],
        &["LOLWUT", "VERSION", "6", "10", "y"],
    ];
    for proto in ["2", "3"] {
        s.cmd(&["HELLO", proto]);
        r.cmd(&["HELLO", proto]);
        for argv in exact {
            assert_eq!(s.cmd(argv), r.cmd(argv), "{argv:?} in RESP{proto}");
        }
        // Random art: the same canvas, the same texts.
        let random: &[&[&str]] = &[
            &["LOLWUT", "VERSION", "5"],
            &["LOLWUT", "VERSION", "5", "40", "5", "9"],
            &["LOLWUT", "VERSION", "6"],
            &["LOLWUT", "VERSION", "6", "1", "1"],
            &["LOLWUT", "VERSION", "6", "33", "7"],
        ];
        for argv in random {
            let (got, want) = (s.cmd(argv), r.cmd(argv));
            assert_eq!(art_shape(&got), art_shape(&want), "{argv:?} in RESP{proto}");
            let tail = |f: &Frame| art_text(f).lines().last().map(str::to_string);
            assert_eq!(tail(&got), tail(&want), "{argv:?} in RESP{proto}");
        }
    }
    assert_eq!(
        s.cmd(&["COMMAND", "INFO", "lolwut"]),
        r.cmd(&["COMMAND", "INFO", "lolwut"])
    );
}

/// DEBUG PROTOCOL, ERROR and LOG, which client libraries' own tests use: the same
/// replies as Redis's in RESP2 and RESP3 (attributes and pushes included).
#[test]
fn debug_protocol_error_and_log_answer_as_redis() {
    let debug = ["--enable-debug-command", "yes"];
    let shardis = Server::shardis_with(2, &debug);
    let redis = Server::redis_with(&debug);
    let mut s = shardis.raw();
    let mut r = redis.raw();
    let types = [
        "string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib", "push",
        "verbatim", "true", "false", "bogus", "STRING",
    ];
    for proto in ["2", "3"] {
        s.cmd(&["HELLO", proto]);
        r.cmd(&["HELLO", proto]);
        for t in types {
            let argv = ["DEBUG", "PROTOCOL", t];
            let (got, want) = (s.cmd(&argv), r.cmd(&argv));
            assert_eq!(show(&got), show(&want), "{t} in RESP{proto}");
            // An attribute or a push comes before the reply proper.
            if matches!(want, Frame::Attribute(_) | Frame::Push(_)) {
                assert_eq!(
                    show(&s.read_frame()),
                    show(&r.read_frame()),
                    "{t} in RESP{proto}"
                );
            }
        }
        for argv in [
            &["DEBUG", "ERROR", "WRONGTYPE made up"][..],
            &["DEBUG", "ERROR", "two\r\nlines"],
            &["DEBUG", "ERROR", ""],
            &["DEBUG", "LOG", "hello from the test"],
            &["DEBUG", "LOG"],
            &["PING"],
        ] {
            assert_eq!(
                show(&s.cmd(argv)),
                show(&r.cmd(argv)),
                "{argv:?} in RESP{proto}"
            );
        }
    }
    // DEBUG ERROR is counted in no error statistics.
    let errors = |c: &mut RawConn| common::info_field(c, "total_error_replies");
    assert_eq!(errors(&mut s), errors(&mut r));
    let failed = |c: &mut RawConn| {
        let line = common::info_field(c, "cmdstat_debug");
        let field = line.split(',').find(|f| f.starts_with("failed_calls="));
        field.map(str::to_string)
    };
    assert_eq!(failed(&mut s), failed(&mut r));
    let wrongtype = |c: &mut RawConn| common::info_field(c, "errorstat_WRONGTYPE");
    assert_eq!(wrongtype(&mut s), wrongtype(&mut r));
    assert!(shardis
        .log_text()
        .contains("DEBUG LOG: hello from the test"));
}

/// `supervised systemd` (Debian's unit starts redis-server with it, `Type=notify`):
/// the messages on `NOTIFY_SOCKET` are redis-server's, `READY=1` once the server
/// serves (a replica's status says it waits for its master), `STOPPING=1` at SHUTDOWN; INFO says `process_supervised:systemd`; with
/// `supervised no` nothing is sent even under systemd.
#[test]
fn systemd_supervision_notifies_as_redis() {
    use std::os::unix::net::UnixDatagram;
    let transcript = |shardis: bool, option: &str, replica: bool| -> Vec<String> {
        let dir = std::env::temp_dir().join(format!(
            "shardis-notify-{}-{shardis}-{option}-{replica}",
            std::process::id(),
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let env = [("NOTIFY_SOCKET", path.to_str().unwrap())];
        let mut args = vec!["--supervised", option];
        if replica {
            // A master that is not there: the replica serves, read-only, meanwhile.
            args.extend(["--replicaof", "127.0.0.1", "1"]);
        }
        let server = Server::with_env(&env, || {
            if shardis {
                Server::shardis_with(2, &args)
            } else {
                Server::redis_with(&args)
            }
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        let mut next = |got: &mut Vec<String>| match rx.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                got.push(msg.clone());
                Some(msg)
            }
            Err(_) => None,
        };
        let mut c = server.raw();
        if option == "systemd" {
            while next(&mut got).is_some_and(|m| m != "READY=1\n") {}
        }
        got.push(common::info_field(&mut c, "process_supervised"));
        c.send_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
        if option == "systemd" {
            next(&mut got);
        } else {
            rx.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            next(&mut got);
        }
        let _ = std::fs::remove_dir_all(&dir);
        got
    };
    for (option, replica) in [("systemd", false), ("systemd", true), ("no", false)] {
        let s = transcript(true, option, replica);
        let r = transcript(false, option, replica);
        assert_eq!(s, r, "supervised {option}, replica {replica}");
    }
}

/// `logfile`: the log goes to that file, appended line by line, so a file that
/// logrotate moved away is followed by a new one at once; a file that cannot be
/// opened stops the start with Redis's message.
#[test]
fn logfile_takes_the_log_and_follows_rotation() {
    let dir = std::env::temp_dir().join(format!("shardis-logfile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("server.log");
    let path = file.to_str().unwrap();
    let server = Server::shardis_with(2, &["--logfile", path, "--enable-debug-command", "yes"]);
    let text = || std::fs::read_to_string(&file).unwrap_or_default();
    assert!(wait_until(Duration::from_secs(10), || text()
        .contains("Ready to accept connections")));
    assert!(!server.log_text().contains("Ready to accept connections"));
    std::fs::rename(&file, dir.join("server.log.1")).unwrap();
    let mut c = server.raw();
    c.cmd(&["DEBUG", "LOG", "after rotation"]);
    assert!(text().contains("DEBUG LOG: after rotation"), "{}", text());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    let (ours, theirs) = refused_at_start(&["--logfile", "/nonexistent-dir/shardis.log"]);
    assert_eq!(ours, theirs);
    assert_eq!(ours, "Can't open the log file: No such file or directory");
}

/// `rename-command` (commonly used to disable FLUSHALL or hide CONFIG): the old name
/// is unknown, the new one runs the command, a command renamed to "" is gone, in
/// scripts and COMMAND too; answers compared with redis-server's. Bad renames stop
/// the start.
#[test]
fn rename_command_as_redis() {
    let renames = [
        "--rename-command",
        "FLUSHALL",
        "",
        "--rename-command",
        "config",
        "myconfig",
        "--rename-command",
        "GET",
        "fetch",
    ];
    let shardis = Server::shardis_with(2, &renames);
    let redis = Server::redis_with(&renames);
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    let steps: &[&[&str]] = &[
        &["FLUSHALL"],
        &["CONFIG", "GET", "maxmemory"],
        &["MYCONFIG", "GET", "maxmemory"],
        &["SET", "a", "1"],
        &["GET", "a"],
        &["FETCH", "a"],
        &["COMMAND", "COUNT"],
        &["COMMAND", "INFO", "flushall", "config"],
        &["COMMAND", "GETKEYS", "fetch", "a"],
        &["COMMAND", "GETKEYS", "get", "a"],
        &["EVAL", "return redis.call('fetch', 'a')", "0"],
        &["EVAL", "return redis.pcall('get', 'a')", "0"],
        &["MULTI"],
        &["GET", "a"],
        &["FETCH", "a"],
        &["EXEC"],
        &["FETCH", "a"],
    ];
    for argv in steps {
        let (a, b) = (s.cmd(argv), r.cmd(argv));
        assert_eq!(show(&a), show(&b), "{argv:?}");
    }
    // The command's own name stays in COMMAND INFO and the ACL categories.
    let name = |f: Frame| match f {
        Frame::Array(mut xs) if !xs.is_empty() => match xs.remove(0) {
            Frame::Array(mut e) if !e.is_empty() => show(&e.remove(0)),
            other => show(&other),
        },
        other => show(&other),
    };
    assert_eq!(
        name(s.cmd(&["COMMAND", "INFO", "fetch"])),
        name(r.cmd(&["COMMAND", "INFO", "fetch"]))
    );
    for bad in [["nosuch", "x"], ["get", "set"]] {
        let (ours, theirs) = refused_at_start(&["--rename-command", bad[0], bad[1]]);
        assert_eq!(ours, theirs, "{bad:?}");
    }
    // In a file, the error names the line, as Redis's.
    let file = std::env::temp_dir().join(format!("shardis-rename-{}.conf", std::process::id()));
    std::fs::write(
        &file,
        "port 0\nrename-command get fetch\nrename-command set fetch\n",
    )
    .unwrap();
    let errors = [env!("CARGO_BIN_EXE_shardis"), "redis-server"].map(|program| {
        let o = std::process::Command::new(program)
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{program}");
        let text =
            String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
        let lines: Vec<&str> = text.trim_end().lines().collect();
        lines[lines.len().saturating_sub(3)..].join("\n")
    });
    let _ = std::fs::remove_file(&file);
    assert_eq!(errors[0], errors[1]);
    assert!(
        errors[0].starts_with("Reading the configuration file, at line 3"),
        "{}",
        errors[0]
    );
}

/// `tcp-keepalive`: a client's socket probes its peer after that many seconds, as
/// Redis's do (seen in /proc/net/tcp: the keepalive timer, and when it fires); 0 turns
/// it off.
#[test]
fn tcp_keepalive_as_redis() {
    // (timer kind, seconds to go) of the established server side of `port`'s socket.
    fn timer(port: u16) -> Option<(u32, u64)> {
        let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
        table.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            if local_port != port || f[3] != "01" {
                return None;
            }
            let (kind, when) = f[5].split_once(':')?;
            let ticks = u64::from_str_radix(when, 16).ok()?;
            Some((u32::from_str_radix(kind, 16).ok()?, ticks / 100))
        })
    }
    for secs in ["60", "0"] {
        let args = ["--tcp-keepalive", secs];
        let servers = [Server::shardis_with(2, &args), Server::redis_with(&args)];
        let seen: Vec<Option<(u32, u64)>> = servers
            .iter()
            .map(|s| {
                let mut c = s.raw();
                c.cmd(&["PING"]);
                timer(s.port)
            })
            .collect();
        for (s, t) in servers.iter().zip(&seen) {
            let kind = format!("{:?} tcp-keepalive {secs}", s.kind);
            match secs {
                // Timer 2: keepalive, due within the minute.
                "60" => assert!(matches!(t, Some((2, 50..=60))), "{kind}: {t:?}"),
                _ => assert_eq!(*t, Some((0, 0)), "{kind}"),
            }
        }
    }
}

/// `loglevel warning` drops the notice lines (a SAVE's "DB saved on disk"), CONFIG SET
/// brings them back; `pidfile` holds the process id while the server runs and is
/// removed at shutdown. Both servers alike.
#[test]
fn loglevel_and_pidfile_as_redis() {
    for shardis in [true, false] {
        let dir =
            std::env::temp_dir().join(format!("shardis-pid-{}-{shardis}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("server.pid");
        let args = [
            "--loglevel",
            "warning",
            "--pidfile",
            pidfile.to_str().unwrap(),
        ];
        let mut server = if shardis {
            Server::shardis_with(2, &args)
        } else {
            Server::redis_with(&args)
        };
        let who = if shardis { "shardis" } else { "redis" };
        let pid = server.pid();
        let written = std::fs::read_to_string(&pidfile).unwrap_or_default();
        assert_eq!(written, format!("{pid}\n"), "{who}");
        let mut c = server.raw();
        let saves = |s: &Server| s.log_text().matches("DB saved on disk").count();
        c.cmd(&["SAVE"]);
        assert_eq!(
            saves(&server),
            0,
            "{who}: notice lines under loglevel warning"
        );
        c.cmd(&["CONFIG", "SET", "loglevel", "notice"]);
        c.cmd(&["SAVE"]);
        assert_eq!(saves(&server), 1, "{who}: notice lines again");
        c.send_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
        assert!(server.wait_exit(Duration::from_secs(10)).is_some(), "{who}");
        assert!(!pidfile.exists(), "{who}: the pid file is removed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// CONFIG SET port / bind listen at once where they say (connections stay), as
/// Redis's: a port in use or an address that cannot be bound fails the SET and the
/// server goes on where it listened; port 0 closes TCP. Both servers alike.
#[test]
fn config_set_port_and_bind_move_the_listener_as_redis() {
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = occupied.local_addr().unwrap().port().to_string();
    let connects = |port: &str| {
        std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_ok()
    };
    let mut seen = Vec::new();
    for server in [Server::shardis(2), Server::redis()] {
        let mut out = Vec::new();
        let old = server.port.to_string();
        let new = common::free_port().to_string();
        let mut c = server.raw();
        // (The default `bind` differs: Shardis listens on loopback only.)
        let bind = show(&c.cmd(&["CONFIG", "GET", "bind"]));
        out.push(show(&c.cmd(&["CONFIG", "SET", "port", &new])));
        out.push(show(&c.cmd(&["PING"])));
        out.push(format!("old {} new {}", connects(&old), connects(&new)));
        out.push(show(&c.cmd(&["CONFIG", "SET", "port", &taken])));
        out.push(show(&c.cmd(&["CONFIG", "GET", "port"])).replace(&new, "NEW"));
        out.push(format!("new {}", connects(&new)));
        out.push(show(&c.cmd(&["CONFIG", "SET", "bind", "192.0.2.1"])));
        let kept = show(&c.cmd(&["CONFIG", "GET", "bind"])) == bind;
        out.push(format!("bind kept {kept}"));
        out.push(format!("new {}", connects(&new)));
        out.push(show(&c.cmd(&["CONFIG", "SET", "port", "0"])));
        out.push(format!("new {}", connects(&new)));
        out.push(show(&c.cmd(&[
            "CONFIG",
            "SET",
            "bind",
            "127.0.0.1",
            "port",
            &new,
        ])));
        out.push(format!("new {}", connects(&new)));
        let mut d = RawConn::connect(new.parse().unwrap());
        out.push(show(&d.cmd(&["CONFIG", "GET", "bind"])));
        seen.push(out);
    }
    assert_eq!(seen[0], seen[1]);
}

/// `daemonize yes` (Debian's /etc/redis/redis.conf says it): the command returns at
/// once with 0, the server goes on in the background as another process, writes its
/// pidfile and its log file, serves, and at SHUTDOWN removes the pidfile and exits.
/// Both servers alike.
#[test]
fn daemonize_runs_the_server_in_the_background_as_redis() {
    use std::process::{Command, Stdio};
    /// Kills the daemon if the test fails before it shuts down.
    struct Daemon(Option<i32>);
    impl Drop for Daemon {
        fn drop(&mut self) {
            if let Some(pid) = self.0 {
                // SAFETY: kill takes no pointers; a stale pid names no process (ESRCH).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    for shardis in [true, false] {
        let who = if shardis { "shardis" } else { "redis" };
        let dir = std::env::temp_dir().join(format!("shardis-daemon-{}-{who}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (pidfile, logfile) = (dir.join("server.pid"), dir.join("server.log"));
        let port = common::free_port();
        let mut cmd = Command::new(if shardis {
            env!("CARGO_BIN_EXE_shardis")
        } else {
            "redis-server"
        });
        cmd.args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--daemonize",
            "yes",
        ])
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--logfile")
        .arg(&logfile)
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null());
        let started = std::time::Instant::now();
        let out = cmd.output().expect("starts");
        assert!(out.status.success(), "{who}: {out:?}");
        assert!(out.stdout.is_empty(), "{who}: nothing on stdout");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{who}: returns at once"
        );
        assert!(
            wait_until(Duration::from_secs(10), || std::fs::read_to_string(
                &pidfile
            )
            .is_ok_and(|p| p.ends_with('\n'))),
            "{who}: pidfile"
        );
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _daemon = Daemon(Some(pid));
        assert!(
            wait_until(Duration::from_secs(10), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "{who}: serves"
        );
        let mut c = RawConn::connect(port);
        assert_eq!(c.cmd(&["PING"]), simple("PONG"));
        assert_eq!(common::info_field(&mut c, "process_id"), pid.to_string());
        let Frame::Array(daemonize) = c.cmd(&["CONFIG", "GET", "daemonize"]) else {
            panic!("CONFIG GET")
        };
        assert_eq!(daemonize[1], Frame::Bulk(b"yes".to_vec()), "{who}");
        c.send_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = || unsafe { libc::kill(pid, 0) } == 0;
        assert!(
            wait_until(Duration::from_secs(10), || !alive()),
            "{who}: exits"
        );
        assert!(!pidfile.exists(), "{who}: the pid file is removed");
        let log = std::fs::read_to_string(&logfile).unwrap_or_default();
        assert!(log.contains("Ready to accept connections"), "{who}: {log}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `client-query-buffer-limit` counts what Redis's query buffer holds: a big
/// argument over the limit closes the client (logged with Redis's line and the
/// buffer's first bytes), while a request of many small arguments larger than the
/// limit is served (its parsed arguments are argv, not query buffer).
#[test]
fn query_buffer_limit_as_redis() {
    let servers = [Server::shardis(2), Server::redis()];
    let mut lines = Vec::new();
    for server in &servers {
        let mut admin = server.raw();
        admin.cmd(&["CONFIG", "SET", "client-query-buffer-limit", "1mb"]);
        // ~1.1 MB of one-byte arguments: served.
        let n = 160_000;
        let mut req = format!("*{}\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n", n + 2).into_bytes();
        for _ in 0..n {
            req.extend_from_slice(b"$1\r\nx\r\n");
        }
        let mut c = server.raw();
        c.send(&req);
        assert_eq!(
            show(&c.read_frame()),
            show(&Frame::Int(n as i64)),
            "{:?}",
            server.kind
        );
        // A 2 MB argument: closed once 1 MB of it is in.
        let mut c = server.raw();
        c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n");
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..32 {
            if std::io::Write::write_all(&mut c.stream, &chunk).is_err() {
                break;
            }
        }
        assert!(c.is_closed(Duration::from_secs(10)), "{:?}", server.kind);
        let log = server.log_text();
        let line = log
            .lines()
            .find(|l| l.contains("Closing client that reached max query buffer length: id="))
            .unwrap_or_else(|| panic!("{:?} logged no closing line:\n{log}", server.kind));
        lines.push(
            line.split("(qbuf initial bytes:")
                .nth(1)
                .unwrap_or("")
                .to_string(),
        );
    }
    assert_eq!(lines[0], lines[1]);
    assert_eq!(lines[0], format!(" \"{}\")", "x".repeat(64)));
}

/// `dir` must be a directory, at start and in CONFIG SET, with Redis's errors. Before,
/// Shardis took any path: it could save nothing, and a SIGTERM (whose save failed)
/// never ended it.
#[test]
fn dir_must_be_a_directory_as_redis() {
    let file = std::env::temp_dir().join(format!("shardis-not-a-dir-{}", std::process::id()));
    std::fs::write(&file, "").unwrap();
    let file = file.to_str().unwrap().to_string();
    let missing = format!("{file}-missing");
    for path in [&file, &missing] {
        let (ours, theirs) = refused_at_start(&["--dir", path]);
        assert_eq!(ours, theirs, "{path}");
    }
    let mut replies = Vec::new();
    for server in [
        Server::shardis_with(2, &["--enable-protected-configs", "yes"]),
        Server::redis_with(&["--enable-protected-configs", "yes"]),
    ] {
        let mut c = server.raw();
        let mut got = Vec::new();
        for path in [&file, &missing] {
            got.push(show(&c.cmd(&["CONFIG", "SET", "dir", path])));
        }
        got.push(show(&c.cmd(&["CONFIG", "SET", "dir", "/tmp"])));
        replies.push(got);
    }
    let _ = std::fs::remove_file(&file);
    assert_eq!(replies[0], replies[1]);
    assert!(
        replies[0][0].ends_with("Not a directory"),
        "{:?}",
        replies[0]
    );
}

/// SIGHUP (a closed terminal, a `kill -HUP` meant as a reload) is ignored, as Redis
/// ignores it; before, it ended Shardis at once, without a save or a log line.
#[test]
fn sighup_is_ignored_as_redis() {
    for server in [Server::shardis(2), Server::redis()] {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            show(&server.raw().cmd(&["PING"])),
            "+PONG",
            "{:?}",
            server.kind
        );
    }
}

/// A low `ulimit -n`: `maxclients` is lowered to what the descriptors hold, with
/// Redis's warnings, and the clients past it get `-ERR max number of clients reached`
/// (before: Shardis kept 10000, and past the limit clients waited on connections no
/// one accepted); CONFIG SET cannot raise it past the limit; a limit that cannot hold
/// the server's own descriptors stops the start. Shardis then redis-server; Shardis
/// keeps 8 more descriptors per shard than Redis's 32, so its figures are lower.
#[test]
fn a_low_open_files_limit_lowers_maxclients_as_redis() {
    for kind in ["shardis", "redis"] {
        let server = Server::with_open_files_limit(64, || match kind {
            "shardis" => Server::shardis_with(2, &[]),
            _ => Server::redis_with(&[]),
        });
        let mut admin = server.raw();
        let maxclients = match admin.cmd(&["CONFIG", "GET", "maxclients"]) {
            Frame::Array(kv) => show(&kv[1]),
            other => panic!("{kind}: {}", show(&other)),
        };
        let maxclients: usize = maxclients
            .trim_matches(|c| c == '$' || c == '"')
            .parse()
            .unwrap();
        let expected = if kind == "shardis" {
            64 - 32 - 2 * 8
        } else {
            64 - 32
        };
        assert_eq!(maxclients, expected, "{kind}");
        let log = server.log_text();
        for line in [
            "You requested maxclients of 10000 requiring at least ".to_string(),
            format!("Current maximum open files is 64. maxclients has been reduced to {maxclients} to compensate for low ulimit."),
        ] {
            assert!(log.contains(&line), "{kind}: {line}\n{log}");
        }
        let mut clients = Vec::new();
        let (mut served, mut refused) = (0, 0);
        for _ in 0..maxclients + 10 {
            let mut c = server.raw();
            match show(&c.cmd(&["PING"])).as_str() {
                "+PONG" => served += 1,
                "-ERR max number of clients reached" => refused += 1,
                other => panic!("{kind}: {other}"),
            }
            clients.push(c);
        }
        // (The admin connection is one of the `maxclients`.)
        assert_eq!((served, refused), (maxclients - 1, 11), "{kind}");
        let raise = show(&admin.cmd(&["CONFIG", "SET", "maxclients", "1000"]));
        let why = format!("-ERR CONFIG SET failed (possibly related to argument 'maxclients') - The operating system is not able to handle the specified number of clients, try with {maxclients}");
        assert_eq!(raise, why, "{kind}");
    }
    // Too few for the server's own descriptors: Redis's fatal line, exit code 1.
    let lines = [env!("CARGO_BIN_EXE_shardis"), "redis-server"].map(|program| {
        let mut cmd = std::process::Command::new(program);
        cmd.args(["--port", "0"]);
        common::Limits {
            fsize: 0,
            nofile: 32,
        }
        .apply(&mut cmd);
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{program}");
        let text =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        text.lines().last().unwrap_or_default().to_string()
    });
    for line in lines {
        let fatal = "Your current 'ulimit -n' of 32 is not enough for the server to start. Please increase your open file limit to at least ";
        assert!(
            line.contains(fatal) && line.ends_with(". Exiting."),
            "{line}"
        );
    }
}

/// Start Shardis and redis-server with `args`, each of which must refuse to start
/// (exit code 1); the last line each printed (theirs second).
fn refused_at_start(args: &[&str]) -> (String, String) {
    let run = |program: &str| {
        let o = std::process::Command::new(program)
            .args(["--port", "0"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{program} {args:?}");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let text = text + &String::from_utf8_lossy(&o.stderr);
        text.trim_end()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    };
    (run(env!("CARGO_BIN_EXE_shardis")), run("redis-server"))
}

/// The CPUs this test process may run on.
fn own_cpus() -> Vec<usize> {
    cpus_allowed(&std::fs::read_to_string("/proc/self/status").unwrap())
}

/// The CPUs a thread may run on, from `Cpus_allowed_list` ("0-3,6") in `status`.
fn cpus_allowed(status: &str) -> Vec<usize> {
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc status")
        .trim();
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        cpus.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap());
    }
    cpus
}

/// `pin-threads`: `auto` pins each shard's thread to a core only while some allowed
/// core has no shard, `yes` whenever there are cores enough, `no` never.
#[test]
fn shards_are_pinned_as_pin_threads_says() {
    let allowed = own_cpus();
    if allowed.len() < 2 {
        eprintln!("one CPU allowed: pinned and unpinned look the same here");
        return;
    }
    let all = allowed.len();
    for (threads, option, pinned) in [
        (1, "auto", true),
        (all, "auto", false),
        (all, "yes", true),
        (1, "no", false),
    ] {
        let server = Server::shardis_with(threads, &["--pin-threads", option]);
        let tasks = format!("/proc/{}/task", server.pid());
        for id in 0..threads {
            // glommio names its executor thread `shard-<id>-<n>`, and a helper too.
            let name = format!("shard-{id}");
            let mut seen = 0;
            for task in std::fs::read_dir(&tasks).unwrap() {
                let dir = task.unwrap().path();
                let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                let comm = comm.trim();
                if comm != name && !comm.starts_with(&format!("{name}-")) {
                    continue;
                }
                seen += 1;
                let cpus = cpus_allowed(&std::fs::read_to_string(dir.join("status")).unwrap());
                let want = if pinned {
                    vec![allowed[id]]
                } else {
                    allowed.clone()
                };
                assert_eq!(
                    cpus, want,
                    "{comm} with {threads} shard(s), pin-threads {option}"
                );
            }
            assert!(seen > 0, "no thread named {name}");
        }
    }
}

/// A cgroup with a CPU quota of one CPU, made for one test and removed after it.
struct QuotaGroup {
    dir: std::path::PathBuf,
}

impl QuotaGroup {
    /// cgroup v2 (`cpu.max`) or v1's `cpu` hierarchy (`cpu.cfs_quota_us`); None where
    /// neither can be written (not root, or a read-only /sys/fs/cgroup).
    fn one_cpu() -> Option<QuotaGroup> {
        let name = format!("shardis-test-{}", std::process::id());
        let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let base = if v2 {
            "/sys/fs/cgroup"
        } else {
            "/sys/fs/cgroup/cpu"
        };
        if v2 {
            let _ = std::fs::write(format!("{base}/cgroup.subtree_control"), "+cpu");
        }
        let dir = std::path::Path::new(base).join(name);
        std::fs::create_dir(&dir).ok()?;
        let group = QuotaGroup { dir };
        let set = |file: &str, value: &str| std::fs::write(group.dir.join(file), value).ok();
        if v2 {
            set("cpu.max", "100000 100000")?;
        } else {
            set("cpu.cfs_period_us", "100000")?;
            set("cpu.cfs_quota_us", "100000")?;
        }
        Some(group)
    }
}

impl Drop for QuotaGroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Under a CPU quota below its cores (`docker run --cpus 1`), `threads 0` runs one
/// shard per CPU of the quota, and `pin-threads auto` pins none of them.
#[test]
fn a_cpu_quota_sets_the_shard_count_and_nothing_is_pinned() {
    let allowed = own_cpus();
    if allowed.len() < 2 {
        eprintln!("one CPU allowed: a quota of one changes nothing");
        return;
    }
    let Some(group) = QuotaGroup::one_cpu() else {
        eprintln!("no writable cgroup to set a CPU quota in: skipped");
        return;
    };
    let server = Server::in_cgroup(&group.dir.join("cgroup.procs"), || Server::shardis(0));
    let mut c = server.raw();
    assert_eq!(common::info_field(&mut c, "shards"), "1");
    for task in std::fs::read_dir(format!("/proc/{}/task", server.pid())).unwrap() {
        let dir = task.unwrap().path();
        let status = std::fs::read_to_string(dir.join("status")).unwrap();
        assert_eq!(cpus_allowed(&status), allowed, "{}", dir.display());
    }
    drop(c);
    drop(server);
}

/// Send one request on a Unix socket connection.
fn unix_send(s: &mut std::os::unix::net::UnixStream, argv: &[&str]) {
    let v: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
    s.write_all(&encode_request(&v)).unwrap();
}

/// The next whole reply on a Unix socket connection (read a byte at a time: nothing
/// after it is taken from the socket).
fn unix_read(s: &mut std::os::unix::net::UnixStream) -> Frame {
    use std::io::Read;
    let mut buf = Vec::new();
    loop {
        if let Some((f, _)) = common::parse_frame(&buf) {
            return f;
        }
        let mut byte = [0u8; 1];
        let n = s.read(&mut byte).expect("a reply within the timeout");
        assert!(n > 0, "connection closed");
        buf.push(byte[0]);
    }
}

/// One request on a Unix socket connection, and its reply.
fn unix_cmd(s: &mut std::os::unix::net::UnixStream, argv: &[&str]) -> Frame {
    unix_send(s, argv);
    unix_read(s)
}

/// `unixsocket` and `unixsocketperm`, against redis-server: clients on the socket are
/// served on every backend, CLIENT LIST shows them as Redis does (`addr=<path>:0`,
/// flag `U`), so do the slow log and MONITOR, the file has the mode asked for, and
/// it is gone once the server has shut down.
#[test]
fn a_unix_socket_serves_clients_as_redis_does() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;
    let mut seen = Vec::new();
    for kind in ["shardis", "redis"] {
        let path =
            std::env::temp_dir().join(format!("shardis-unix-{}-{kind}.sock", std::process::id()));
        let p = path.to_str().unwrap().to_string();
        let args = ["--unixsocket", p.as_str(), "--unixsocketperm", "700"];
        let _server = match kind {
            "shardis" => Server::shardis_with(2, &args),
            _ => Server::redis_with(&args),
        };
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let connect = || {
            let s = UnixStream::connect(&path).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        };
        let mut c = connect();
        let mut out = vec![format!("mode {mode:o}")];
        // Keys on both shards, from one socket connection.
        for k in ["a", "b", "c", "d"] {
            out.push(show(&unix_cmd(&mut c, &["SET", k, k])));
        }
        out.push(show(&unix_cmd(&mut c, &["MGET", "a", "b", "c", "d"])));
        let Frame::Bulk(line) = unix_cmd(&mut c, &["CLIENT", "INFO"]) else {
            panic!("CLIENT INFO")
        };
        let line = String::from_utf8(line).unwrap().replace(&p, "PATH");
        for field in ["addr", "laddr", "flags"] {
            out.push(format!("{field}={}", common::client_field(&line, field)));
        }
        unix_cmd(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
        unix_cmd(&mut c, &["SLOWLOG", "RESET"]);
        unix_cmd(&mut c, &["ECHO", "slow"]);
        let Frame::Array(entries) = unix_cmd(&mut c, &["SLOWLOG", "GET", "1"]) else {
            panic!("SLOWLOG GET")
        };
        let Frame::Array(entry) = &entries[0] else {
            panic!("a slow log entry")
        };
        out.push(show(&entry[4]).replace(&p, "PATH"));
        let mut monitor = connect();
        assert_eq!(unix_cmd(&mut monitor, &["MONITOR"]), simple("OK"));
        unix_cmd(&mut c, &["GET", "a"]);
        let Frame::Simple(fed) = unix_read(&mut monitor) else {
            panic!("a MONITOR line")
        };
        let from = fed.split(['[', ']']).nth(1).unwrap_or_default();
        out.push(from.replace(&p, "PATH"));
        unix_send(&mut c, &["SHUTDOWN", "NOSAVE"]);
        assert!(
            wait_until(Duration::from_secs(10), || !path.exists()),
            "{kind} left {p} behind"
        );
        seen.push(out);
    }
    assert_eq!(seen[0], seen[1]);
}

/// A client of the Unix socket follows its keys to their core as a TCP client does
/// (`a_connection_moves_to_the_core_of_its_keys_as_the_same_client`), keeping its
/// id, name and socket address, and losing no request on the way.
#[test]
fn a_unix_socket_client_moves_to_the_core_of_its_keys() {
    let path = std::env::temp_dir().join(format!("shardis-unix-move-{}.sock", std::process::id()));
    let p = path.to_str().unwrap().to_string();
    let s = Server::shardis_with(2, &["--unixsocket", p.as_str()]);
    let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let info = |c: &mut std::os::unix::net::UnixStream| {
        let Frame::Bulk(line) = unix_cmd(c, &["CLIENT", "INFO"]) else {
            panic!("CLIENT INFO")
        };
        String::from_utf8(line).unwrap()
    };
    assert_eq!(
        unix_cmd(&mut c, &["CLIENT", "SETNAME", "local"]),
        simple("OK")
    );
    let before = info(&mut c);
    for (round, shard) in [0, 1, 0, 1].into_iter().enumerate() {
        let key = format!("{{{}}}:n", tag_on(shard));
        let first = (round / 2 * 20) as i64;
        for i in 1..=20 {
            assert_eq!(unix_cmd(&mut c, &["INCR", &key]), Frame::Int(first + i));
        }
        let now = info(&mut c);
        assert_eq!(
            common::client_field(&now, "shard"),
            shard.to_string(),
            "{now}"
        );
        for field in ["id", "name", "addr", "laddr"] {
            assert_eq!(
                common::client_field(&now, field),
                common::client_field(&before, field),
                "{field} kept"
            );
        }
        assert!(common::client_field(&now, "flags").contains('U'), "{now}");
    }
    let mut watcher = s.raw();
    assert!(moved_in(&mut watcher) >= 3, "moved as its keys turned");
    drop(c);
    drop(s);
    let _ = std::fs::remove_file(&path);
}
