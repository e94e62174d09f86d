//! Output buffer limits against the real binary: a subscriber (or monitor) that does
//! not read is disconnected once its unwritten output overcomes its class's
//! `client-output-buffer-limit`, with Redis's log line, and the server's memory stays
//! bounded meanwhile; CLIENT LIST and INFO show the pending output; the option's CONFIG
//! SET / GET / REWRITE answer as redis-server 7.0's.
//!
//! The one idea to hold: a client that does not read is a raw socket that sent its
//! SUBSCRIBE (or MONITOR) and is never read again, so the kernel's socket buffers fill
//! (a few MB on loopback) and the rest waits in the server; the floods are therefore
//! several times larger than the kernel can absorb. The publisher runs on another
//! connection, on the other core when the server has two, and its replies are read by
//! a thread while it writes. Nothing here asserts how long anything took: waits poll
//! with a generous deadline and only fail when it passes.

mod common;

use common::{encode_request, wait_until, Frame, RawConn, Server};
use std::io::{Read, Write};
use std::time::Duration;

const MB: u64 = 1024 * 1024;

fn text(f: Frame) -> String {
    match f {
        Frame::Bulk(b) | Frame::Verbatim(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

fn field(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
        .to_string()
}

/// The core a connection landed on.
fn shard_of(c: &mut RawConn) -> usize {
    field(&text(c.cmd(&["CLIENT", "INFO"])), "shard")
        .parse()
        .expect("shard= is a number")
}

fn client_id(c: &mut RawConn) -> i64 {
    match c.cmd(&["CLIENT", "ID"]) {
        Frame::Int(n) => n,
        other => panic!("CLIENT ID: {other:?}"),
    }
}

/// A connection on another core than `core` (the server runs two shards).
fn conn_not_on(server: &Server, core: usize) -> RawConn {
    for _ in 0..200 {
        let mut c = server.raw();
        if shard_of(&mut c) != core {
            return c;
        }
    }
    panic!("every connection landed on core {core}");
}

/// A connection subscribed to `channel` that is never read again, and its client id.
fn silent_subscriber(server: &Server, channel: &str) -> (RawConn, i64) {
    let mut sub = server.raw();
    let id = client_id(&mut sub);
    sub.send_cmd(&[b"SUBSCRIBE", channel.as_bytes()]);
    // Read the confirmation only: from here on nothing is read.
    sub.read_frame();
    (sub, id)
}

/// The core of client `id`, from CLIENT LIST.
fn core_of(c: &mut RawConn, id: i64) -> usize {
    let line = text(c.cmd(&["CLIENT", "LIST", "ID", &id.to_string()]));
    field(&line, "shard").parse().expect("shard= is a number")
}

fn numsub(c: &mut RawConn, channel: &str) -> i64 {
    match c.cmd(&["PUBSUB", "NUMSUB", channel]) {
        Frame::Array(items) => match items.get(1) {
            Some(Frame::Int(n)) => *n,
            other => panic!("NUMSUB: {other:?}"),
        },
        other => panic!("NUMSUB: {other:?}"),
    }
}

/// An integer field of an INFO section.
fn info(c: &mut RawConn, section: &str, name: &str) -> u64 {
    text(c.cmd(&["INFO", section]))
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in INFO {section}"))
        .trim()
        .parse()
        .unwrap()
}

/// A field of `/proc/<pid>/status` in bytes (VmRSS, VmHWM).
fn proc_status(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        * 1024
}

/// Send `batches` copies of `batch` (`per_batch` requests whose replies are integers,
/// such as PUBLISH) on `conn` while a thread reads the replies; `each` runs after
/// every batch is written. Returns the last reply.
fn flood(
    conn: &mut RawConn,
    batch: &[u8],
    per_batch: usize,
    batches: usize,
    mut each: impl FnMut(),
) -> i64 {
    let mut reader = conn.stream.try_clone().expect("clone the socket");
    let expected = per_batch * batches;
    let replies = std::thread::spawn(move || {
        let (mut buf, mut seen, mut last) = (Vec::new(), 0, String::new());
        let mut chunk = vec![0u8; 1 << 16];
        while seen < expected {
            let n = reader.read(&mut chunk).expect("read replies");
            assert!(n > 0, "the server closed the publisher's connection");
            buf.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Some(end) = buf[start..].windows(2).position(|w| w == b"\r\n") {
                last = String::from_utf8_lossy(&buf[start..start + end]).into_owned();
                start += end + 2;
                seen += 1;
            }
            buf.drain(..start);
        }
        last
    });
    for _ in 0..batches {
        conn.send(batch);
        each();
    }
    let last = replies.join().expect("reply reader");
    last.strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("expected an integer reply, got {last:?}"))
}

/// `n` PUBLISHes of `size`-byte messages to `channel`, in one buffer.
fn publishes(channel: &str, size: usize, n: usize) -> Vec<u8> {
    let payload = vec![b'x'; size];
    encode_request(&[b"PUBLISH", channel.as_bytes(), &payload]).repeat(n)
}

/// The server log's lines about clients closed for their output buffer limits.
fn limit_lines(server: &Server) -> Vec<String> {
    server
        .log_text()
        .lines()
        .filter(|l| l.contains("for overcoming of output buffer limits."))
        .map(String::from)
        .collect()
}

#[test]
fn a_subscriber_that_never_reads_is_disconnected_and_memory_stays_bounded() {
    let server = Server::shardis_with(2, &["--client-output-buffer-limit", "pubsub 32mb 8mb 60"]);
    let (mut sub, id) = silent_subscriber(&server, "flood");
    let sub_core = core_of(&mut server.raw(), id);
    let mut publisher = conn_not_on(&server, sub_core);
    assert_eq!(numsub(&mut publisher, "flood"), 1);

    let pid = server.pid();
    let before = proc_status(pid, "VmRSS");
    let mut highest = before;
    // ~200 MB: 200 pipelines of 1000 messages of 1 KB.
    let batch = publishes("flood", 1000, 1000);
    let mut sent = 0;
    let last = flood(&mut publisher, &batch, 1000, 200, || {
        sent += 1;
        if sent % 10 == 0 {
            highest = highest.max(proc_status(pid, "VmRSS"));
        }
    });
    let peak = proc_status(pid, "VmHWM").max(highest);
    eprintln!(
        "RSS before {} MB, peak {} MB, now {} MB",
        before / MB,
        peak / MB,
        proc_status(pid, "VmRSS") / MB
    );

    // The subscriber is gone, everywhere.
    assert_eq!(last, 0, "the last PUBLISH still reached the subscriber");
    assert!(wait_until(Duration::from_secs(10), || numsub(
        &mut publisher,
        "flood"
    ) == 0));
    let closed = limit_lines(&server);
    assert_eq!(closed.len(), 1, "{closed:?}");
    let line = &closed[0];
    assert!(
        line.contains(&format!(" # Client id={id} "))
            && line.contains(" flags=P ")
            && line.contains(" sub=1 ")
            && line.contains(" cmd=subscribe ")
            && line
                .ends_with(" scheduled to be closed ASAP for overcoming of output buffer limits."),
        "{line}"
    );
    let omem: u64 = field(line, "omem").parse().unwrap();
    assert!((32 * MB..33 * MB).contains(&omem), "{line}");
    // Its socket is closed: what the kernel had buffered, then the end.
    let rest = sub.read_to_close();
    assert!(rest.starts_with(b"*3\r\n$7\r\nmessage\r\n$5\r\nflood\r\n"));

    // The server held about the limit for it, not the 200 MB sent.
    assert!(
        peak < before + 32 * MB + 40 * MB,
        "RSS grew from {} MB to {} MB",
        before / MB,
        peak / MB
    );
}

#[test]
fn the_soft_limit_disconnects_once_reached_for_longer_than_its_seconds() {
    // No hard limit: only the soft one can close the subscriber.
    let server = Server::shardis_with(2, &["--client-output-buffer-limit", "pubsub 0 1mb 1"]);
    let (_sub, id) = silent_subscriber(&server, "slow");
    let mut publisher = conn_not_on(&server, core_of(&mut server.raw(), id));
    // 16 MB, more than the kernel's buffers take, so more than 1 MB waits in the
    // server; then nothing more is published.
    let batch = publishes("slow", 1000, 1000);
    flood(&mut publisher, &batch, 1000, 16, || {});
    assert!(wait_until(Duration::from_secs(30), || numsub(
        &mut publisher,
        "slow"
    ) == 0));
    let closed = limit_lines(&server);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert!(
        closed[0].contains(&format!(" # Client id={id} ")),
        "{}",
        closed[0]
    );
    let omem: u64 = field(&closed[0], "omem").parse().unwrap();
    assert!(omem >= MB, "{}", closed[0]);
}

#[test]
fn client_list_and_info_show_a_subscriber_s_pending_output() {
    // Limits far above what is sent, so the subscriber stays however slow the machine.
    let server = Server::shardis_with(2, &["--client-output-buffer-limit", "pubsub 1gb 0 0"]);
    let (_sub, id) = silent_subscriber(&server, "pending");
    let mut publisher = conn_not_on(&server, core_of(&mut server.raw(), id));
    // 16 MB, more than the kernel's socket buffers take.
    let batch = publishes("pending", 1000, 1000);
    assert_eq!(flood(&mut publisher, &batch, 1000, 16, || {}), 1);
    let line = text(publisher.cmd(&["CLIENT", "LIST", "ID", &id.to_string()]));
    let num = |name: &str| -> u64 { field(&line, name).parse().unwrap() };
    assert!(num("omem") > MB, "{line}");
    assert!(num("oll") > 0, "{line}");
    assert!(num("tot-mem") > num("omem"), "{line}");
    assert_eq!(field(&line, "events"), "rw", "{line}");
    assert_eq!(field(&line, "flags"), "P", "{line}");
    // INFO: the cron has seen it within a second or so.
    assert!(wait_until(Duration::from_secs(10), || {
        info(&mut publisher, "clients", "client_recent_max_output_buffer") > MB
    }));
    assert!(info(&mut publisher, "memory", "mem_clients_normal") > MB);
    assert_eq!(info(&mut publisher, "memory", "mem_clients_slaves"), 0);
    // A client with nothing to write shows none.
    let me = text(publisher.cmd(&["CLIENT", "INFO"]));
    assert_eq!(field(&me, "omem"), "0", "{me}");
    assert_eq!(field(&me, "events"), "r", "{me}");
}

#[test]
fn a_monitor_is_held_to_the_normal_class_limit() {
    let server = Server::shardis_with(2, &["--client-output-buffer-limit", "normal 4mb 0 0"]);
    let mut monitor = server.raw();
    let id = client_id(&mut monitor);
    assert_eq!(monitor.cmd(&["MONITOR"]), Frame::Simple("OK".into()));
    // A monitor is a normal client (Redis 7.0 classes it so).
    let mut publisher = conn_not_on(&server, core_of(&mut server.raw(), id));
    let normal = text(publisher.cmd(&["CLIENT", "LIST", "TYPE", "normal"]));
    assert!(normal.contains(&format!("id={id} ")), "{normal}");
    // 32 MB of commands (nobody listens to the channel), each a ~1 KB MONITOR line.
    let batch = publishes("nobody", 1000, 1000);
    assert_eq!(flood(&mut publisher, &batch, 1000, 32, || {}), 0);
    assert!(wait_until(Duration::from_secs(10), || {
        let all = text(publisher.cmd(&["CLIENT", "LIST"]));
        !all.contains(&format!("id={id} "))
    }));
    let closed = limit_lines(&server);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert!(
        closed[0].contains(&format!(" # Client id={id} ")) && closed[0].contains(" flags=O "),
        "{}",
        closed[0]
    );
}

#[test]
fn the_log_line_has_redis_s_shape() {
    let shardis = Server::shardis_with(2, &["--client-output-buffer-limit", "pubsub 1mb 0 0"]);
    let redis = Server::redis_with(&["--client-output-buffer-limit", "pubsub 1mb 0 0"]);
    let mut lines = Vec::new();
    for server in [&shardis, &redis] {
        let (_sub, _) = silent_subscriber(server, "c");
        let mut publisher = server.raw();
        flood(&mut publisher, &publishes("c", 1000, 1000), 1000, 16, || {});
        assert!(wait_until(Duration::from_secs(10), || numsub(
            &mut publisher,
            "c"
        ) == 0));
        let closed = limit_lines(server);
        assert_eq!(closed.len(), 1, "{closed:?}");
        lines.push(closed[0].clone());
    }
    // `pid:M date time # Client <CLIENT LIST line> scheduled to ...`; Shardis's CLIENT
    // LIST line has Redis 7.0's fields in its order, then lib-name, lib-ver and shard.
    let shape = |line: &str| -> (Vec<String>, String) {
        let (_, rest) = line
            .split_once(" # Client ")
            .expect("a warning about a client");
        let (info, tail) = rest
            .split_once(" scheduled")
            .expect("scheduled to be closed");
        let names = info
            .split_whitespace()
            .map(|f| f.split_once('=').map_or(f, |(n, _)| n).to_string())
            .take_while(|n| n != "lib-name")
            .collect();
        (names, tail.to_string())
    };
    let (s, r) = (shape(&lines[0]), shape(&lines[1]));
    assert_eq!(s, r, "\nshardis: {}\nredis:   {}", lines[0], lines[1]);
    assert_eq!(field(&lines[0], "flags"), field(&lines[1], "flags"));
    assert_eq!(field(&lines[0], "cmd"), field(&lines[1], "cmd"));
}

/// Send CONFIG SET / GET for each value to both servers and compare the replies.
#[test]
fn config_set_and_get_match_redis() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    let values = [
        "pubsub 32mb 8mb 60",
        "normal 1 2",
        "foo 1 2 3",
        "master 1 2 3",
        "normal 1x 2 3",
        "normal 1.5mb 0 0",
        "normal -1 2 3",
        "normal 1 2 -1",
        "normal 1 2 3x",
        "normal 1 2 3 pubsub",
        "Normal 1KB 2k 3",
        "normal 1gB 2G 0",
        "replica 1gb 0 0 slave 2gb 1 1",
        "SLAVE 64mb 16mb 30",
        "pubsub 0 0 0 normal 10mb 5mb 10",
        "normal  1 2 3",
        "normal 1 2 ",
        "normal mb 2 +5",
        "normal 1 2 +",
        "normal 99999999999999999999 0 0",
        "normal 1 2 3000000000",
        "normal 1 2 99999999999",
        "",
        "pubsub 32mb 8mb 60 foo 1 2 3",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
    ];
    for v in values {
        for argv in [
            vec!["CONFIG", "SET", "client-output-buffer-limit", v],
            vec!["CONFIG", "GET", "client-output-buffer-limit"],
        ] {
            let (got, want) = (s.cmd(&argv), r.cmd(&argv));
            assert_eq!(got, want, "{argv:?}");
        }
    }
    // Several options at once are set all or nothing.
    let argv = [
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "normal 5mb 0 0",
        "maxmemory",
        "lots",
    ];
    assert_eq!(s.cmd(&argv), r.cmd(&argv));
    let get = ["CONFIG", "GET", "client-output-buffer-*"];
    assert_eq!(s.cmd(&get), r.cmd(&get));
}

/// The option's lines after CONFIG REWRITE, in file order.
fn rewritten(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read the rewritten file")
        .lines()
        .filter(|l| l.starts_with("client-output-buffer-limit"))
        .map(String::from)
        .collect()
}

#[test]
fn config_rewrite_writes_the_classes_as_redis_does() {
    let dir = std::env::temp_dir().join(format!("shardis-obuf-rewrite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // (file's lines of the option, CONFIG SET value)
    let cases = [
        ("", "pubsub 64mb 16mb 90 normal 1000 0 0"),
        ("client-output-buffer-limit normal 0 0 0\n", "pubsub 64mb 16mb 90 normal 1000 0 0"),
        (
            "client-output-buffer-limit pubsub 1mb 0 0\nclient-output-buffer-limit pubsub 2mb 0 0\nclient-output-buffer-limit pubsub 3mb 0 0\nclient-output-buffer-limit pubsub 4mb 0 0\n",
            "replica 1gb 512mb 0",
        ),
        ("", "normal 1500 1025 1"),
    ];
    for (i, (lines, value)) in cases.iter().enumerate() {
        let mut got = Vec::new();
        for redis in [false, true] {
            let path = dir.join(format!("{i}-{redis}.conf"));
            std::fs::write(&path, format!("# test\n{lines}")).unwrap();
            let file = path.to_str().unwrap();
            let server = if redis {
                Server::redis_config(file, &[])
            } else {
                Server::shardis_config(file, &["--threads", "2"])
            };
            let mut c = server.raw();
            let set = ["CONFIG", "SET", "client-output-buffer-limit", value];
            assert_eq!(c.cmd(&set), Frame::Simple("OK".into()));
            assert_eq!(c.cmd(&["CONFIG", "REWRITE"]), Frame::Simple("OK".into()));
            got.push(rewritten(&path));
        }
        assert_eq!(got[0], got[1], "case {i}: shardis, then redis");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Send `requests` whole before reading any reply, as redis-py's pipeline does
/// (`sendall`, then read), and return every reply byte.
fn send_all_then_read(conn: &mut RawConn, requests: &[u8], reply_len: usize) -> Vec<u8> {
    send_all(conn, requests);
    read_replies(conn, reply_len)
}

/// Write `requests` whole. The write gives up after a generous while, so a server that
/// stops reading while its replies wait fails here instead of hanging the test.
fn send_all(conn: &mut RawConn, requests: &[u8]) {
    conn.stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .expect("set_write_timeout");
    if let Err(e) = conn.stream.write_all(requests) {
        panic!("the server stopped reading the pipeline while its replies waited: {e}");
    }
}

/// Read `reply_len` reply bytes.
fn read_replies(conn: &mut RawConn, reply_len: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(reply_len);
    let mut chunk = vec![0u8; 1 << 16];
    while got.len() < reply_len {
        let n = conn.stream.read(&mut chunk).expect("read replies");
        assert!(n > 0, "closed after {} reply bytes", got.len());
        got.extend_from_slice(&chunk[..n]);
    }
    got
}

/// 16 MB of ECHOs on each side of `middle`, and the replies: `middle_reply` between
/// theirs.
fn echoes_around(middle: &[&[u8]], middle_reply: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let payload = vec![b'e'; 4096];
    let n = 4096;
    let echo = encode_request(&[b"ECHO", &payload]);
    let mut requests = echo.repeat(n);
    requests.extend_from_slice(&encode_request(middle));
    requests.extend_from_slice(&echo.repeat(n));
    let mut reply = format!("${}\r\n", payload.len()).into_bytes();
    reply.extend_from_slice(&payload);
    reply.extend_from_slice(b"\r\n");
    let mut expected = reply.repeat(n);
    expected.extend_from_slice(middle_reply);
    expected.extend_from_slice(&reply.repeat(n));
    (requests, expected)
}

#[test]
fn a_client_that_sends_its_whole_pipeline_before_reading_is_served_as_redis_serves_it() {
    // 32 MB of requests whose replies are as large: far more than the kernel buffers
    // of both directions hold, so the server must go on reading while its replies
    // wait (Redis keeps them in the client's output buffer, unbounded for the normal
    // class by default).
    let payload = vec![b'p'; 4096];
    let n = 8192;
    let request = encode_request(&[b"ECHO", &payload]);
    let requests = request.repeat(n);
    let mut reply = format!("${}\r\n", payload.len()).into_bytes();
    reply.extend_from_slice(&payload);
    reply.extend_from_slice(b"\r\n");
    let expected = reply.repeat(n);
    for server in [Server::redis(), Server::shardis(2)] {
        let mut conn = server.raw();
        let got = send_all_then_read(&mut conn, &requests, expected.len());
        assert!(got == expected, "{}: the replies differ", server.addr());
        // The connection goes on as usual.
        assert_eq!(conn.cmd(&["PING"]), Frame::Simple("PONG".into()));
    }

    // With a normal-class limit, such a client is closed once its waiting replies
    // pass it, as Redis closes it.
    for server in [
        Server::redis_with(&["--client-output-buffer-limit", "normal 4mb 0 0"]),
        Server::shardis_with(2, &["--client-output-buffer-limit", "normal 4mb 0 0"]),
    ] {
        let mut conn = server.raw();
        conn.stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .expect("set_write_timeout");
        // The server closes the socket while the pipeline is being written (a reset
        // or a broken pipe) or after: either way far fewer replies than requests come.
        let _ = conn.stream.write_all(&requests);
        let got = conn.read_to_close();
        assert!(
            got.len() < expected.len() / 2,
            "{}: {} reply bytes reached a client over its limit",
            server.addr(),
            got.len()
        );
        let mut probe = server.raw();
        assert_eq!(probe.cmd(&["PING"]), Frame::Simple("PONG".into()));
    }
}

/// The same with a blocking command in the middle of the pipeline: while it waits, the
/// server goes on writing the replies before it and reading the requests after it, as
/// Redis reads a blocked client into its query buffer, so the whole pipeline goes in
/// and, once another client pushes, every reply comes back in order.
#[test]
fn a_pipeline_with_a_blocking_command_in_its_middle_is_read_while_it_waits() {
    let blpop: &[&[u8]] = &[b"BLPOP", b"bq", b"0"];
    let (requests, expected) = echoes_around(blpop, b"*2\r\n$2\r\nbq\r\n$1\r\nx\r\n");
    for server in [Server::redis(), Server::shardis(2)] {
        let mut conn = server.raw();
        send_all(&mut conn, &requests);
        let mut pusher = server.raw();
        assert_eq!(pusher.cmd(&["RPUSH", "bq", "x"]), Frame::Int(1));
        let got = read_replies(&mut conn, expected.len());
        assert!(got == expected, "{}: the replies differ", server.addr());
        assert_eq!(conn.cmd(&["PING"]), Frame::Simple("PONG".into()));
    }
}

/// The same for a write that CLIENT PAUSE holds in the middle of a pipeline: the held
/// connection goes on reading, as Redis fills a held client's query buffer.
#[test]
fn a_pipeline_held_by_client_pause_is_read_while_it_waits() {
    let set: &[&[u8]] = &[b"SET", b"held", b"1"];
    let (requests, expected) = echoes_around(set, b"+OK\r\n");
    for server in [Server::redis(), Server::shardis(2)] {
        let mut admin = server.raw();
        assert_eq!(
            admin.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]),
            Frame::Simple("OK".into())
        );
        let mut conn = server.raw();
        send_all(&mut conn, &requests);
        assert_eq!(
            admin.cmd(&["CLIENT", "UNPAUSE"]),
            Frame::Simple("OK".into())
        );
        let got = read_replies(&mut conn, expected.len());
        assert!(got == expected, "{}: the replies differ", server.addr());
        assert_eq!(admin.cmd(&["GET", "held"]), Frame::Bulk(b"1".to_vec()));
    }
}
