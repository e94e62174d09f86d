//! MONITOR against the real binary, beside a real redis-server: the lines a monitor
//! receives for a scripted sequence (quoting, MULTI/EXEC, redacted AUTH/HELLO, errors
//! at run time, commands never shown), what a monitoring connection may run, and lines
//! crossing cores in order.
//!
//! The one idea to hold: a line carries the time and the client's port, which differ
//! between the two servers, so lines are compared as `[db ip] args` after checking the
//! time's shape; everything else must be byte for byte Redis's. Which core a
//! connection landed on is read from CLIENT INFO's `shard=`.

mod common;

use common::{client_field as field, core_of, show, Frame, RawConn, Server};

fn text(f: Frame) -> String {
    match f {
        Frame::Bulk(b) | Frame::Verbatim(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// A connection to `server` on core `core` (any connection for redis-server).
fn conn_on(server: &Server, core: Option<usize>) -> RawConn {
    match core {
        Some(core) => common::conn_on(server, core),
        None => server.raw(),
    }
}

/// A monitor line without what differs between servers: `[db ip] args`. Panics if
/// the frame is not a line, or its time is not `<secs>.<6 digits>`.
fn strip(f: &Frame) -> String {
    let Frame::Simple(line) = f else {
        panic!("expected a monitor line, got {}", show(f));
    };
    let (time, rest) = line.split_once(' ').expect("time, then the rest");
    let (secs, micros) = time.split_once('.').expect("secs.micros");
    assert!(
        secs.len() >= 10
            && micros.len() == 6
            && (secs.to_owned() + micros)
                .bytes()
                .all(|b| b.is_ascii_digit()),
        "bad time in {line}"
    );
    let (from, args) = rest.split_once("] ").expect("[db addr] args");
    if from.ends_with(" lua") {
        // A script's command.
        return rest.to_string();
    }
    let (db_ip, _port) = from.rsplit_once(':').expect("ip:port");
    format!("{db_ip}] {args}")
}

/// Lines of `m` up to and including the one for `ECHO <mark>`, stripped.
fn lines_until(m: &mut RawConn, mark: &str) -> Vec<String> {
    let end = format!("\"ECHO\" \"{mark}\"");
    let mut out = Vec::new();
    loop {
        let l = strip(&m.read_frame());
        let done = l.ends_with(&end);
        out.push(l);
        if done {
            return out;
        }
    }
}

fn send(c: &mut RawConn, argv: &[&[u8]]) -> Frame {
    c.send_cmd(argv);
    c.read_frame()
}

/// The script's commands, as bytes (some are not UTF-8).
fn script() -> Vec<Vec<Vec<u8>>> {
    let lines: &[&[&[u8]]] = &[
        &[b"SET", b"k", b"a\"b\\c\n\r\t\x07\x08\x01\xff \xc3\xa9 \x7f"],
        &[b"GET", b"k"],
        &[b"SET", b"", b"empty key"],
        &[b"MULTI"],
        &[b"SET", b"x", b"1"],
        &[b"INCR", b"x"],
        &[b"CONFIG", b"GET", b"maxmemory"],
        &[b"SELECT", b"4"],
        &[b"SET", b"s", b"1"],
        &[b"SELECT", b"99"],
        &[b"GET", b"s"],
        &[b"EXEC"],
        &[b"SELECT", b"0"],
        &[b"MULTI"],
        &[b"GET", b"k"],
        &[b"DISCARD"],
        &[b"MULTI"],
        &[b"GET", b"k"],
        &[b"NOSUCH"],
        &[b"EXEC"],
        // An error at run time is shown; admin commands are not.
        &[b"LPUSH", b"k", b"v"],
        &[b"INCR", b"k"],
        &[b"CONFIG", b"GET", b"maxmemory"],
        &[b"CLIENT", b"LIST"],
        &[b"SLOWLOG", b"GET"],
        &[b"CLIENT", b"ID"],
        &[b"AUTH", b"nopass"],
        &[b"AUTH", b"u", b"p"],
        &[b"AUTH", b"a", b"b", b"c"],
        &[b"HELLO", b"2", b"AUTH", b"default", b"pw"],
        &[b"HELLO", b"3", b"AUTH", b"default", b"pw", b"SETNAME", b"n"],
        &[b"HELLO", b"4", b"AUTH", b"default", b"pw"],
        &[b"HELLO", b"2"],
        // Refused before running: not shown.
        &[b"NOSUCH", b"x"],
        &[b"GET"],
        &[b"SELECT", b"3"],
        &[b"SET", b"y", b"123"],
        &[b"MSET", b"a", b"1", b"b", b"2", b"c", b"3"],
        &[b"BLPOP", b"nolist", b"0.01"],
        &[b"PUBLISH", b"ch", b"msg"],
        &[b"PING"],
        // Script commands are shown, then the commands their script ran, as
        // `[<db> lua]` (not those refused before running), on one shard, on keys of
        // two shards, and reaching an undeclared key (a run abandoned and run again
        // shows its commands once).
        &[b"EVAL", b"return 1", b"0"],
        &[b"EVAL_RO", b"return 2", b"0"],
        &[b"SELECT", b"0"],
        &[
            b"EVAL",
            b"redis.call('set', KEYS[1], 'b') redis.pcall('incr', KEYS[1]) \
              redis.pcall('config', 'get', 'x') redis.pcall('get') \
              redis.call('select', '3') return redis.call('get', KEYS[1])",
            b"1",
            b"{a}1",
        ],
        &[
            b"EVAL",
            b"redis.call('set', KEYS[1], 'x') return redis.call('get', KEYS[2])",
            b"2",
            b"{a}1",
            b"{b}1",
        ],
        &[
            b"EVAL",
            b"redis.call('get', '{b}2') return redis.call('set', KEYS[1], 'y')",
            b"1",
            b"{a}2",
        ],
        &[
            b"FUNCTION",
            b"LOAD",
            b"REPLACE",
            b"#!lua name=mon\nredis.register_function('f', \
              function(k) return redis.call('incr', k[1]) end)",
        ],
        &[b"FCALL", b"f", b"1", b"{b}3"],
        // Inside EXEC each script's lines follow its command's, even after one that
        // ran no script.
        &[b"MULTI"],
        &[
            b"EVALSHA",
            b"0000000000000000000000000000000000000000",
            b"0",
        ],
        &[b"EVAL", b"return redis.call('incr', 'n')", b"0"],
        &[b"SELECT", b"2"],
        &[b"EVAL", b"return redis.call('set', 'q', 1)", b"0"],
        &[b"EXEC"],
        &[b"SELECT", b"0"],
    ];
    lines
        .iter()
        .map(|l| l.iter().map(|a| a.to_vec()).collect())
        .collect()
}

/// Run the script on a client of `server` on core `client_core`, watched by a monitor
/// on `monitor_core`; the client's replies and the monitor's lines.
fn monitored_script(
    server: &Server,
    monitor_core: Option<usize>,
    client_core: Option<usize>,
) -> (Vec<String>, Vec<String>) {
    // All connect (CLIENT INFO each) before anything is monitored. `other` shares the
    // client's core: lines of clients on different cores have no order between them.
    let mut c = conn_on(server, client_core);
    let mut other = conn_on(server, client_core);
    let mut m = conn_on(server, monitor_core);
    assert_eq!(show(&m.cmd(&["MONITOR"])), "+OK");
    let mut replies = Vec::new();
    for argv in script() {
        let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        let r = send(&mut c, &argv);
        // The reply's type: enough to see the same commands fail.
        replies.push(show(&r).chars().take(1).collect());
    }
    // A WATCHed key changed: EXEC runs nothing, and only EXEC is shown.
    send(&mut c, &[b"WATCH", b"w"]);
    send(&mut other, &[b"SET", b"w", b"1"]);
    send(&mut c, &[b"MULTI"]);
    send(&mut c, &[b"GET", b"w"]);
    replies.push(show(&send(&mut c, &[b"EXEC"])));
    send(&mut c, &[b"ECHO", b"end"]);
    (replies, lines_until(&mut m, "end"))
}

#[test]
fn lines_match_redis_for_a_scripted_sequence_across_cores() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let (r_replies, r_lines) = monitored_script(&redis, None, None);
    for (monitor, client) in [(1, 0), (0, 1), (0, 0)] {
        let (s_replies, s_lines) = monitored_script(&shardis, Some(monitor), Some(client));
        assert_eq!(
            s_lines, r_lines,
            "monitor on core {monitor}, client on core {client}"
        );
        assert_eq!(s_replies, r_replies);
    }
    // Spot checks of what the comparison covers.
    let all = r_lines.join("\n");
    assert!(all.contains(r#""AUTH" "(redacted)" "(redacted)""#), "{all}");
    assert!(all.contains(r#"[4 127.0.0.1] "SELECT" "4""#), "{all}");
    assert!(all.contains(r#"[3 lua] "get" "{a}1""#), "{all}");
    assert!(all.contains(r#"[2 lua] "set" "q" "1""#), "{all}");
    assert!(!all.contains("CONFIG"), "{all}");
}

#[test]
fn a_monitoring_connection_as_redis_treats_it() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let mut frames = Vec::new();
    for (server, cores) in [(&redis, None), (&shardis, Some((0, 1)))] {
        let mut got = Vec::new();
        let mut m = conn_on(server, cores.map(|c| c.0));
        let mut c = conn_on(server, cores.map(|c| c.1));
        m.cmd(&["MONITOR"]);
        // Its own command: the reply, then its line.
        got.push(show(&m.cmd(&["PING"])));
        got.push(strip(&m.read_frame()));
        // Reads, writes and PUBLISH are refused (and not shown).
        for argv in [
            &["GET", "k"][..],
            &["SET", "k", "v"],
            &["DBSIZE"],
            &["PUBLISH", "c", "m"],
            &["PFCOUNT", "h"],
        ] {
            got.push(show(&m.cmd(argv)));
        }
        // MONITOR again: no reply at all; the next frame is ECHO's.
        m.send_cmd(&[b"MONITOR"]);
        got.push(show(&m.cmd(&["ECHO", "x"])));
        got.push(strip(&m.read_frame()));
        // CLIENT INFO: flag O, and the connection is shown its own CLIENT INFO.
        let info = text(m.cmd(&["CLIENT", "INFO"]));
        got.push(format!(
            "flags={} cmd={}",
            field(&info, "flags"),
            field(&info, "cmd")
        ));
        got.push(strip(&m.read_frame()));
        // RESET ends monitoring: another client's PING is no longer shown.
        got.push(show(&m.cmd(&["RESET"])));
        c.cmd(&["PING"]);
        got.push(show(&m.cmd(&["GET", "k"])));
        // MONITOR inside MULTI is refused when EXEC runs it.
        c.cmd(&["MULTI"]);
        got.push(show(&c.cmd(&["MONITOR"])));
        got.push(show(&c.cmd(&["EXEC"])));
        // A monitor that quits gets its +OK and nothing after it.
        m.cmd(&["MONITOR"]);
        m.send_cmd(&[b"QUIT"]);
        got.push(String::from_utf8_lossy(&m.read_to_close()).into_owned());
        // It is gone from its core: a new monitor on the other core still gets lines.
        let mut m2 = conn_on(server, cores.map(|c| c.1));
        m2.cmd(&["MONITOR"]);
        c.cmd(&["ECHO", "after"]);
        got.push(strip(&m2.read_frame()));
        frames.push(got);
    }
    assert_eq!(frames[1], frames[0]);
}

#[test]
fn auth_and_hello_passwords_are_redacted_as_redis_does() {
    let shardis = Server::shardis_with(2, &["--requirepass", "secret"]);
    let redis = Server::redis_with(&["--requirepass", "secret"]);
    let mut seen = Vec::new();
    for (server, cores) in [(&redis, None), (&shardis, Some((1, 0)))] {
        let mut c = conn_on_authed(server, cores.map(|c| c.1));
        let mut m = conn_on_authed(server, cores.map(|c| c.0));
        m.cmd(&["MONITOR"]);
        for argv in [
            &["AUTH", "wrong"][..],
            &["AUTH", "secret"],
            &["AUTH", "default", "secret"],
            &["HELLO", "3", "AUTH", "default", "secret"],
            &["HELLO", "2", "AUTH", "default", "wrong", "SETNAME", "x"],
            &["HELLO", "2"],
        ] {
            c.cmd(argv);
        }
        c.cmd(&["ECHO", "end"]);
        seen.push(lines_until(&mut m, "end"));
    }
    assert_eq!(seen[1], seen[0]);
}

/// A connection on `core` that has authenticated with `secret` (its AUTH is before
/// any MONITOR, so it is never shown).
fn conn_on_authed(server: &Server, core: Option<usize>) -> RawConn {
    for _ in 0..200 {
        let mut c = server.raw();
        assert_eq!(show(&c.cmd(&["AUTH", "secret"])), "+OK");
        if core.is_none_or(|core| core_of(&mut c) == core) {
            return c;
        }
    }
    panic!("no connection landed on core {core:?}");
}

#[test]
fn a_pipeline_on_one_core_reaches_monitors_on_both_in_order() {
    let shardis = Server::shardis(2);
    let mut c = conn_on(&shardis, Some(0));
    let mut m0 = conn_on(&shardis, Some(0));
    let mut m1 = conn_on(&shardis, Some(1));
    m0.cmd(&["MONITOR"]);
    m1.cmd(&["MONITOR"]);
    let n = 500;
    let mut pipeline = Vec::new();
    for i in 0..n {
        let (k, v) = (format!("key:{i}"), i.to_string());
        pipeline.extend(common::encode_request(&[
            b"SET",
            k.as_bytes(),
            v.as_bytes(),
        ]));
    }
    c.send(&pipeline);
    for _ in 0..n {
        c.read_frame();
    }
    for m in [&mut m0, &mut m1] {
        for i in 0..n {
            let l = strip(&m.read_frame());
            assert!(
                l.ends_with(&format!("\"SET\" \"key:{i}\" \"{i}\"")),
                "line {i}: {l}"
            );
        }
    }
}

#[test]
fn a_blocked_command_is_shown_once_when_sent() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let mut seen = Vec::new();
    for (server, cores) in [(&redis, None), (&shardis, Some((0, 1)))] {
        let mut a = conn_on(server, cores.map(|c| c.0));
        let mut b = conn_on(server, cores.map(|c| c.1));
        let mut m = conn_on(server, cores.map(|c| c.1));
        m.cmd(&["MONITOR"]);
        for list in ["l1", "l2", "l3"] {
            a.send_cmd(&[b"BLPOP", list.as_bytes(), b"5"]);
            // Wait until BLPOP's line is out, so it blocks before the push.
            seen.push(strip(&m.read_frame()));
            b.cmd(&["RPUSH", list, "x"]);
            assert_eq!(
                a.read_frame(),
                Frame::Array(vec![
                    Frame::Bulk(list.as_bytes().to_vec()),
                    Frame::Bulk(b"x".to_vec()),
                ])
            );
            seen.push(strip(&m.read_frame()));
        }
        a.cmd(&["BLPOP", "none", "0.01"]);
        b.cmd(&["ECHO", "end"]);
        seen.extend(lines_until(&mut m, "end"));
        seen.push("--".into());
    }
    let half = seen.len() / 2;
    assert_eq!(seen[half..], seen[..half]);
}
