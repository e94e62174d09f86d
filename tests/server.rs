//! Integration tests against the real binary: the connection layer (pipelining,
//! protocol errors, inline commands, RESP3, AUTH, CLIENT, SELECT, QUIT, many
//! connections), cross-shard replies, the active expire cycle, and SHUTDOWN.
//!
//! The one idea to hold: where Redis's exact bytes matter, the test sends the same
//! bytes to a real redis-server and compares, so the expectation is Redis itself and
//! not a transcription of it; a few literal texts are asserted as well, to document
//! them. Timing is only ever bounded by generous polling deadlines.

mod common;

use common::{encode_request, wait_until, Frame, RawConn, Server};
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

#[test]
fn debug_is_refused_unless_enabled_as_redis() {
    let redis = Server::redis();
    let shardis = Server::shardis(1);
    let theirs = redis.raw().cmd(&["DEBUG", "SLEEP", "0"]);
    let ours = shardis.raw().cmd(&["DEBUG", "SLEEP", "0"]);
    assert_eq!(
        ours, theirs,
        "DEBUG with enable-debug-command at its default"
    );
    let enabled = Server::shardis_with(1, &["--enable-debug-command", "yes"]);
    assert_eq!(enabled.raw().cmd(&["DEBUG", "SLEEP", "0"]), simple("OK"));
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
        "--latency-monitor-threshold",
        "1",
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
    same(&["DEBUG", "SLEEP", "0.05"]);
    let (mut r2, mut s2) = (redis.raw(), shardis.raw());
    assert_eq!(
        s2.cmd(&["DEBUG", "SLEEP", "0.05"]),
        r2.cmd(&["DEBUG", "SLEEP", "0.05"])
    );
    let theirs = latest_entry(&r.cmd(&["LATENCY", "LATEST"]));
    let ours = latest_entry(&s.cmd(&["LATENCY", "LATEST"]));
    assert_eq!(theirs.0, "command");
    assert_eq!(ours.0, theirs.0);
    assert!(ours.1 >= 50 && ours.2 >= ours.1, "{ours:?}");
    assert!(theirs.1 >= 50 && theirs.2 >= theirs.1, "{theirs:?}");

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
    if hr.len() == hs.len() {
        assert_eq!(gs, gr);
    } else {
        assert_eq!(gs[..2], gr[..2]);
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
    s.cmd(&["DEBUG", "SLEEP", "0.01"]);
    r.cmd(&["DEBUG", "SLEEP", "0.01"]);
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
