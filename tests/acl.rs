//! ACL users against a real redis-server 7.0 beside Shardis: the ACL command's replies,
//! what a restricted user may run, touch and publish to (and the `-NOPERM` texts when
//! not), AUTH and HELLO AUTH, `requirepass` as the default user's password, the ACL
//! LOG, connections closed when their user goes, MULTI/EXEC and scripts, the ACL file
//! and `user` lines, and a real client library authenticating as a named user.
//!
//! Redis lists the single commands of a rule description in its command table's hash
//! order, which changes from one process to the next; the descriptions compared
//! exactly here have at most one single command, and larger ones are compared as sets
//! of words.

mod common;

use common::{free_port, show, wait_until, Duo, Frame, RawConn, Server, Step};
use std::time::Duration;

fn step(conn: usize, argv: &[&str]) -> Step {
    Step::Cmd(conn, argv.iter().map(|s| s.to_string()).collect())
}

fn steps(conn: usize, lines: &[&[&str]]) -> Vec<Step> {
    lines.iter().map(|l| step(conn, l)).collect()
}

#[test]
fn acl_subcommands_answer_as_redis() {
    let mut duo = Duo::new(Server::shardis(2), 1);
    duo.run(
        "users",
        &steps(
            0,
            &[
                &["ACL", "WHOAMI"],
                &["ACL", "USERS"],
                &["ACL", "LIST"],
                &["ACL", "SETUSER", "bob"],
                &["ACL", "LIST"],
                &["ACL", "GETUSER", "bob"],
                &["ACL", "GETUSER", "nobody"],
                &[
                    "ACL", "SETUSER", "alice", "on", ">p1", ">p2", "<p2", "~k*", "%R~r*",
                ],
                &[
                    "ACL", "SETUSER", "alice", "%W~w*", "%RW~b*", "&ch*", "+@hash", "-hset",
                ],
                &["ACL", "GETUSER", "alice"],
                &[
                    "ACL",
                    "SETUSER",
                    "carol",
                    "on",
                    "nopass",
                    "allkeys",
                    "allchannels",
                ],
                &[
                    "ACL",
                    "SETUSER",
                    "carol",
                    "+@all",
                    "-@dangerous",
                    "(+get",
                    "~x*)",
                ],
                &["ACL", "SETUSER", "carol", "(+set ~y* &news)"],
                &["ACL", "LIST"],
                &["ACL", "GETUSER", "carol"],
                &[
                    "ACL",
                    "SETUSER",
                    "carol",
                    "clearselectors",
                    "-@all",
                    "+config|get",
                ],
                &["ACL", "GETUSER", "carol"],
                &["ACL", "SETUSER", "carol", "reset"],
                &["ACL", "GETUSER", "carol"],
                &[
                    "ACL",
                    "SETUSER",
                    "dave",
                    "#f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a",
                ],
                &["ACL", "GETUSER", "dave"],
                &[
                    "ACL",
                    "SETUSER",
                    "dave",
                    "!f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a",
                    "+select|0",
                    "+select|1",
                ],
                &["ACL", "LIST"],
                &["ACL", "USERS"],
                &["ACL", "DELUSER", "bob", "nobody", "carol"],
                &["ACL", "DELUSER", "default"],
                &["ACL", "DELUSER", "dave", "default"],
                &["ACL", "USERS"],
            ],
        ),
    );
    duo.run(
        "errors",
        &steps(
            0,
            &[
                &["ACL"],
                &["ACL", "NOSUCH"],
                &["ACL", "SETUSER"],
                &["ACL", "SETUSER", "x y"],
                &["ACL", "SETUSER", "e", "+nosuch"],
                &["ACL", "SETUSER", "e", "+@nosuch"],
                &["ACL", "SETUSER", "e", "bogus"],
                &["ACL", "SETUSER", "e", "<nosuchpass"],
                &["ACL", "SETUSER", "e", "#abc"],
                &["ACL", "SETUSER", "e", "~*", "~k"],
                &["ACL", "SETUSER", "e", "&*", "&k"],
                &["ACL", "SETUSER", "e", "+config|get|x"],
                &["ACL", "SETUSER", "e", "+get|"],
                &["ACL", "SETUSER", "e", "%X~k"],
                &["ACL", "SETUSER", "e", "(+get"],
                &["ACL", "SETUSER", "e", "on", "+nosuch"],
                &["ACL", "USERS"],
                &["ACL", "GETUSER"],
                &["ACL", "GETUSER", "a", "b"],
                &["ACL", "LIST", "x"],
                &["ACL", "WHOAMI", "x"],
                &["ACL", "CAT", "nosuch"],
                &["ACL", "CAT", "a", "b"],
                &["ACL", "GENPASS", "0"],
                &["ACL", "GENPASS", "4097"],
                &["ACL", "GENPASS", "x"],
                &["ACL", "GENPASS", "1", "2"],
                &["ACL", "LOG", "x"],
                &["ACL", "LOG", "1", "2"],
                &["ACL", "LOAD"],
                &["ACL", "SAVE"],
                &["ACL", "DRYRUN", "nobody", "get", "x"],
                &["ACL", "DRYRUN", "default", "nosuch"],
                &["ACL", "DRYRUN", "default", "get"],
                &["ACL", "DRYRUN", "default", "get", "x"],
                &["ACL", "HELP"],
            ],
        ),
    );
    duo.run(
        "dryrun",
        &steps(
            0,
            &[
                &[
                    "ACL",
                    "SETUSER",
                    "u",
                    "on",
                    "nopass",
                    "~k*",
                    "%R~r*",
                    "&ch*",
                    "+@read",
                    "+set",
                    "+publish",
                    "+subscribe",
                    "+psubscribe",
                ],
                &["ACL", "DRYRUN", "u", "get", "k1"],
                &["ACL", "DRYRUN", "u", "get", "r1"],
                &["ACL", "DRYRUN", "u", "set", "r1", "v"],
                &["ACL", "DRYRUN", "u", "set", "k1", "v"],
                &["ACL", "DRYRUN", "u", "del", "k1"],
                &["ACL", "DRYRUN", "u", "mget", "k1", "r1", "x1"],
                &["ACL", "DRYRUN", "u", "publish", "chan", "m"],
                &["ACL", "DRYRUN", "u", "publish", "other", "m"],
                &["ACL", "DRYRUN", "u", "subscribe", "chx", "other"],
                &["ACL", "DRYRUN", "u", "psubscribe", "ch*"],
                &["ACL", "DRYRUN", "u", "psubscribe", "c*"],
                &["ACL", "DRYRUN", "u", "config", "get", "x"],
                &["ACL", "DRYRUN", "u", "auth", "x"],
            ],
        ),
    );
    // CAT's lists come in Redis's hash order: compared as sets.
    for cat in ["", "read", "dangerous", "scripting", "CONNECTION"] {
        let mut argv = vec!["ACL", "CAT"];
        if !cat.is_empty() {
            argv.push(cat);
        }
        let (s, r) = (duo.s[0].cmd(&argv), duo.r[0].cmd(&argv));
        // (Less CLIENT NO-TOUCH and SETINFO, which Shardis has from Redis 7.2.)
        let mut s = sorted_words(&s);
        s.retain(|w| !w.contains("client|no-touch") && !w.contains("client|setinfo"));
        assert_eq!(s, sorted_words(&r), "ACL CAT {cat}");
    }
    for (bits, len) in [(None, 64), (Some("5"), 2), (Some("128"), 32)] {
        let mut argv = vec!["ACL", "GENPASS"];
        argv.extend(bits);
        for c in [&mut duo.s[0], &mut duo.r[0]] {
            match c.cmd(&argv) {
                Frame::Bulk(b) => {
                    assert_eq!(b.len(), len);
                    assert!(b.iter().all(|x| x.is_ascii_hexdigit()));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

/// The words of a reply's strings, sorted (for replies listed in hash order).
fn sorted_words(f: &Frame) -> Vec<String> {
    let mut out: Vec<String> = show(f)
        .split(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == '[' || c == ']')
        .filter(|w| !w.is_empty() && *w != "$" && *w != "*")
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

/// A user limited to some commands, keys and channels, by hand on a connection of its
/// own: the same replies from both servers, refusals included.
#[test]
fn a_restricted_user_is_refused_as_in_redis() {
    let mut duo = Duo::new(Server::shardis(2), 2);
    let admin = 0;
    let user = 1;
    duo.run(
        "setup",
        &steps(
            admin,
            &[
                &[
                    "ACL",
                    "SETUSER",
                    "app",
                    "on",
                    ">secret",
                    "~app:*",
                    "%R~shared:*",
                    "&news.*",
                ],
                &[
                    "ACL",
                    "SETUSER",
                    "app",
                    "+@read",
                    "+@write",
                    "-flushall",
                    "+multi",
                    "+exec",
                    "+discard",
                ],
                &[
                    "ACL",
                    "SETUSER",
                    "app",
                    "+publish",
                    "+subscribe",
                    "+psubscribe",
                    "+eval",
                    "+evalsha",
                ],
                &["SET", "shared:a", "1"],
                &["SET", "secret:a", "2"],
            ],
        ),
    );
    duo.run(
        "auth",
        &steps(
            user,
            &[
                &["AUTH", "app", "wrong"],
                &["AUTH", "nobody", "secret"],
                &["AUTH", "secret"],
                &["AUTH", "app", "secret"],
                &["ACL", "WHOAMI"],
            ],
        ),
    );
    duo.run(
        "commands",
        &steps(
            user,
            &[
                &["SET", "app:1", "v"],
                &["GET", "app:1"],
                &["GET", "shared:a"],
                &["SET", "shared:a", "3"],
                &["GET", "secret:a"],
                &["MGET", "app:1", "shared:a", "secret:a"],
                &["MSET", "app:2", "x", "shared:b", "y"],
                &["COPY", "shared:a", "app:3"],
                &["COPY", "app:1", "shared:c"],
                &["RENAME", "app:1", "app:4"],
                &["FLUSHALL"],
                &["CONFIG", "GET", "maxmemory"],
                &["DBSIZE"],
                &["PUBLISH", "news.today", "hi"],
                &["PUBLISH", "sports", "hi"],
                &["EVAL", "return redis.call('get', KEYS[1])", "1", "app:4"],
                &["EVAL", "return redis.call('get', 'secret:a')", "0"],
                &["EVAL", "return redis.call('flushall')", "0"],
                &["EVAL", "return redis.call('publish', 'sports', 'x')", "0"],
                &["EVAL", "return redis.pcall('get', 'secret:a')", "0"],
                &["EVAL", "return {redis.acl_check_cmd('get', 'app:1'), redis.acl_check_cmd('get', 'secret:a'), redis.acl_check_cmd('flushall')}", "0"],
                &["EVAL", "return redis.acl_check_cmd('nosuch')", "0"],
                &["EVAL", "return 1", "1", "secret:a"],
                &["RPUSH", "app:list", "3", "1", "2"],
                &["SORT", "app:list"],
                &["SORT", "app:list", "BY", "app:w_*"],
                &["SORT", "app:list", "BY", "nosort", "LIMIT", "0", "2", "GET", "#"],
                &["SORT", "app:list", "LIMIT", "x", "1", "GET", "#"],
                &["SORT", "app:list", "ALPHA", "BOGUS", "GET", "#"],
                // A script's SORT is checked as the caller's (Redis's script client
                // has the caller's user).
                &["EVAL", "return redis.call('sort', KEYS[1], 'BY', 'app:w_*')", "1", "app:list"],
                &["EVAL", "return redis.pcall('sort', KEYS[1], 'GET', 'secret:*')", "1", "app:list"],
                &["EVAL", "return redis.call('sort', KEYS[1], 'BY', 'nosort', 'GET', '#')", "1", "app:list"],
                &["ACL", "WHOAMI"],
                &["AUTH", "secret"],
            ],
        ),
    );
    duo.run(
        "transactions",
        &steps(
            user,
            &[
                &["MULTI"],
                &["SET", "app:5", "1"],
                &["GET", "secret:a"],
                &["EXEC"],
                // SORT's own refusal of BY and GET comes when it runs, inside EXEC.
                &["MULTI"],
                &["SORT", "app:list", "BY", "app:w_*"],
                &["SORT", "app:list", "GET", "#"],
                &["SET", "app:7", "1"],
                &["EXEC"],
                &["GET", "app:7"],
                &["MULTI"],
                &["SET", "app:5", "1"],
                &["INCR", "app:6"],
                &["GET", "app:5"],
            ],
        ),
    );
    // The rules change between MULTI and EXEC: EXEC checks again.
    duo.run(
        "rules change",
        &steps(admin, &[&["ACL", "SETUSER", "app", "-incr"]]),
    );
    duo.run(
        "exec",
        &steps(user, &[&["EXEC"], &["GET", "app:5"], &["INCR", "app:6"]]),
    );
    duo.run(
        "subscribe",
        &steps(
            user,
            &[
                &["SUBSCRIBE", "sports"],
                &["PSUBSCRIBE", "news.*", "*"],
                &["SUBSCRIBE", "news.a", "news.b"],
                &["UNSUBSCRIBE", "nosuch"],
            ],
        ),
    );
    // Narrowed channels close the subscriber whose subscriptions they refuse.
    duo.run(
        "narrowed",
        &steps(
            admin,
            &[&["ACL", "SETUSER", "app", "resetchannels", "&news.a"]],
        ),
    );
    for c in [&mut duo.s[user], &mut duo.r[user]] {
        // (Past the second SUBSCRIBE reply still unread.)
        assert!(wait_until(Duration::from_secs(5), || c
            .is_closed(Duration::from_millis(200))));
    }
    duo.run(
        "log",
        &steps(
            admin,
            &[
                &["ACL", "LOG", "RESET"],
                &["ACL", "LOG"],
                &["ACL", "SETUSER", "app", "off"],
                &["ACL", "USERS"],
            ],
        ),
    );
}

/// ACL LOG after a few refusals: the same entries (fields other than age and client
/// info) on both servers, repeats counted in one entry.
#[test]
fn acl_log_records_refusals_as_redis() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let mut logs = Vec::new();
    for server in [&shardis, &redis] {
        let mut admin = server.raw();
        admin.cmd(&[
            "ACL", "SETUSER", "u", "on", ">pw", "~a*", "&c", "+get", "+publish", "+multi", "+eval",
        ]);
        let mut u = server.raw();
        u.cmd(&["AUTH", "u", "bad"]);
        u.cmd(&["AUTH", "u", "bad"]);
        u.cmd(&["auth", "u", "bad"]);
        u.cmd(&["HELLO", "2", "AUTH", "nobody", "x"]);
        u.cmd(&["AUTH", "u", "pw"]);
        u.cmd(&["GET", "b"]);
        u.cmd(&["SET", "a", "1"]);
        u.cmd(&["PUBLISH", "d", "m"]);
        u.cmd(&["EVAL", "return redis.pcall('get', 'zz')", "0"]);
        u.cmd(&["MULTI"]);
        u.cmd(&["GET", "b"]);
        let log = admin.cmd(&["ACL", "LOG"]);
        let Frame::Array(entries) = log else {
            panic!("{log:?}")
        };
        let keep: Vec<String> = entries
            .iter()
            .map(|e| {
                let Frame::Array(kv) = e else { panic!("{e:?}") };
                let mut fields = Vec::new();
                for pair in kv.chunks(2) {
                    let k = show(&pair[0]);
                    if k.contains("age-seconds") {
                        continue;
                    }
                    if k.contains("client-info") {
                        // The line is the client's, with its user and last command.
                        let v = show(&pair[1]);
                        assert!(v.contains(" user=") && v.contains(" cmd="), "{v}");
                        continue;
                    }
                    fields.push(format!("{k}={}", show(&pair[1])));
                }
                fields.join(" ")
            })
            .collect();
        logs.push(keep);
        assert_eq!(
            show(&admin.cmd(&["ACL", "LOG", "2"]))
                .matches("count")
                .count(),
            2
        );
        assert_eq!(show(&admin.cmd(&["ACL", "LOG", "RESET"])), "+OK");
        assert_eq!(show(&admin.cmd(&["ACL", "LOG"])), "*[]");
    }
    assert_eq!(logs[0], logs[1]);
}

/// `requirepass` is the default user's password; AUTH, HELLO AUTH and RESET as Redis.
#[test]
fn requirepass_and_auth_follow_the_default_user() {
    let mut duo = Duo::new(Server::shardis_with(2, &["--requirepass", "pw"]), 2);
    duo.shardis.raw(); // (started)
    let redis = Server::redis_with(&["--requirepass", "pw"]);
    duo.r = vec![redis.raw(), redis.raw()];
    duo.redis = redis;
    duo.run(
        "auth",
        &steps(
            0,
            &[
                &["GET", "x"],
                &["ACL", "WHOAMI"],
                &["AUTH", "nope"],
                &["AUTH", "default", "nope"],
                &["AUTH", "pw"],
                &["ACL", "WHOAMI"],
                &["ACL", "LIST"],
                &["CONFIG", "SET", "requirepass", "pw2"],
                &["ACL", "LIST"],
                &["ACL", "SETUSER", "ops", "on", ">opw", "+@all", "~*"],
                &["RESET"],
                &["GET", "x"],
                &["HELLO", "2", "AUTH", "ops", "bad"],
                &["AUTH", "pw"],
                &["AUTH", "pw2"],
                &["AUTH", "ops", "opw"],
                &["ACL", "WHOAMI"],
                &["ACL", "SETUSER", "ops", "off"],
                &["ACL", "WHOAMI"],
                &["RESET"],
                &["AUTH", "ops", "opw"],
                &["AUTH", "default", "pw2"],
                &["CONFIG", "SET", "requirepass", ""],
                &["ACL", "LIST"],
                &["AUTH", "x"],
            ],
        ),
    );
    // A connection made while a password was needed runs once none is.
    duo.run("open", &steps(1, &[&["GET", "x"], &["ACL", "WHOAMI"]]));
}

/// DELUSER (and CLIENT KILL USER) close the user's connections, the caller's own after
/// its reply.
#[test]
fn deleting_a_user_closes_its_connections() {
    for server in [Server::shardis(2), Server::redis()] {
        let mut admin = server.raw();
        admin.cmd(&["ACL", "SETUSER", "t", "on", "nopass", "+@all", "~*", "&*"]);
        let mut conns: Vec<RawConn> = (0..4).map(|_| server.raw()).collect();
        for c in &mut conns {
            assert_eq!(show(&c.cmd(&["AUTH", "t", "x"])), "+OK");
        }
        assert_eq!(
            show(&admin.cmd(&["CLIENT", "KILL", "USER", "nobody"])),
            "-ERR No such user 'nobody'"
        );
        let killed = admin.cmd(&["CLIENT", "KILL", "USER", "t", "SKIPME", "yes"]);
        assert_eq!(show(&killed), ":4");
        let mut conns: Vec<RawConn> = (0..3).map(|_| server.raw()).collect();
        for c in &mut conns {
            c.cmd(&["AUTH", "t", "x"]);
        }
        // The caller is one of them.
        assert_eq!(show(&conns[0].cmd(&["ACL", "DELUSER", "t"])), ":1");
        for c in &mut conns {
            assert!(c.is_closed(Duration::from_secs(5)));
        }
        assert_eq!(show(&admin.cmd(&["PING"])), "+PONG");
    }
}

/// ACL SAVE writes the file ACL LOAD reads back (and redis-server reads it too); a bad
/// file changes nothing; users come from the file or `user` lines at start.
#[test]
fn the_acl_file_round_trips_with_redis() {
    let dir = tempdir();
    let file = format!("{dir}/users.acl");
    std::fs::write(&file, "user default on nopass ~* &* +@all\n").unwrap();
    let shardis = Server::shardis_with(2, &["--aclfile", &file]);
    let mut c = shardis.raw();
    for argv in [
        &[
            "ACL",
            "SETUSER",
            "a",
            "on",
            ">pa",
            "~a:*",
            "&x",
            "+@read",
            "-@dangerous",
        ][..],
        &[
            "ACL",
            "SETUSER",
            "b",
            "off",
            "nopass",
            "%R~r*",
            "(+set ~s*)",
        ],
    ] {
        assert_eq!(show(&c.cmd(argv)), "+OK");
    }
    let list_before = show(&c.cmd(&["ACL", "LIST"]));
    assert_eq!(show(&c.cmd(&["ACL", "SAVE"])), "+OK");
    assert_eq!(show(&c.cmd(&["ACL", "SETUSER", "c", "on"])), "+OK");
    assert_eq!(show(&c.cmd(&["ACL", "LOAD"])), "+OK");
    assert_eq!(show(&c.cmd(&["ACL", "LIST"])), list_before);
    // redis-server reads the file Shardis wrote, and lists the same users.
    let redis = Server::redis_with(&["--aclfile", &file]);
    let mut r = redis.raw();
    assert_eq!(
        sorted_words(&r.cmd(&["ACL", "LIST"])),
        sorted_words(&c.cmd(&["ACL", "LIST"]))
    );
    // A relative path names a file in `dir`, as Redis (which works in `dir`) reads it.
    let rel = Server::shardis_with(1, &["--dir", &dir, "--aclfile", "users.acl"]);
    assert_eq!(
        sorted_words(&rel.raw().cmd(&["ACL", "LIST"])),
        sorted_words(&c.cmd(&["ACL", "LIST"]))
    );
    drop(rel);
    // A bad line: the same error, and nothing changes.
    let saved = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{saved}user d on +nosuch\nnot a user line\n"),
    )
    .unwrap();
    let (se, re) = (c.cmd(&["ACL", "LOAD"]), r.cmd(&["ACL", "LOAD"]));
    assert_eq!(show(&se), show(&re));
    assert_eq!(show(&c.cmd(&["ACL", "LIST"])), list_before);
    // At start: a bad file stops the server, as Redis.
    let port = free_port().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shardis"))
        .args(["--port", &port, "--dir", &dir, "--aclfile", &file])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("Aborting Redis startup because of ACL errors"),
        "{log}"
    );
    // `user` lines in the config file.
    let conf = format!("{dir}/shardis.conf");
    std::fs::write(
        &conf,
        "user default on >dpw ~* &* +@all\nuser reader on >rpw ~* +@read\n",
    )
    .unwrap();
    let s = Server::shardis_config(&conf, &[]);
    let mut c = s.raw();
    assert_eq!(
        show(&c.cmd(&["GET", "x"])),
        "-NOAUTH Authentication required."
    );
    assert_eq!(show(&c.cmd(&["AUTH", "reader", "rpw"])), "+OK");
    assert_eq!(show(&c.cmd(&["GET", "x"])), "$-1 (nil)");
    assert_eq!(
        show(&c.cmd(&["SET", "x", "1"])),
        "-NOPERM this user has no permissions to run the 'set' command"
    );
    assert_eq!(
        show(&c.cmd(&["ACL", "SAVE"])).split(". ").next(),
        Some("-NOPERM this user has no permissions to run the 'acl|save' command")
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> String {
    let d = std::env::temp_dir().join(format!(
        "shardis-acl-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d.display().to_string()
}

/// A real client library (redis-rs) authenticates as a named user from its URL and is
/// held to that user's rules.
#[test]
fn a_client_library_logs_in_as_a_named_user() {
    let server = Server::shardis(2);
    let mut admin = server.raw();
    let ok = admin.cmd(&[
        "ACL",
        "SETUSER",
        "svc",
        "on",
        ">s3cret",
        "~svc:*",
        "+@all",
        "-@dangerous",
    ]);
    assert_eq!(show(&ok), "+OK");
    let url = format!("redis://svc:s3cret@127.0.0.1:{}/", server.port);
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_connection().unwrap();
    let who: String = redis::cmd("ACL").arg("WHOAMI").query(&mut con).unwrap();
    assert_eq!(who, "svc");
    let _: () = redis::cmd("SET")
        .arg("svc:1")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let v: String = redis::cmd("GET").arg("svc:1").query(&mut con).unwrap();
    assert_eq!(v, "v");
    let err = redis::cmd("GET")
        .arg("other")
        .query::<Option<String>>(&mut con)
        .unwrap_err();
    assert_eq!(err.code(), Some("NOPERM"), "{err}");
    let err = redis::cmd("FLUSHALL").query::<()>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("NOPERM"), "{err}");
    let bad = redis::Client::open(format!("redis://svc:nope@127.0.0.1:{}/", server.port)).unwrap();
    let err = bad
        .get_connection()
        .err()
        .expect("a wrong password is refused");
    assert_eq!(err.kind(), redis::ErrorKind::AuthenticationFailed, "{err}");
}

/// What the master and the AOF send is applied whatever the default user may run:
/// Redis gives those clients no user at all.
#[test]
fn replication_and_the_aof_are_not_held_to_the_default_user() {
    let restricted = [
        "--user", "default", "on", "nopass", "~*", "&*", "+@all", "-set",
    ];
    let master = Server::redis();
    let mut args = restricted.to_vec();
    let port = master.port.to_string();
    args.extend(["--replicaof", "127.0.0.1", &port]);
    let replica = Server::shardis_with(2, &args);
    let mut m = master.raw();
    let mut r = replica.raw();
    assert_eq!(
        show(&r.cmd(&["SET", "k", "v"])).split(' ').next(),
        Some("-NOPERM")
    );
    assert_eq!(show(&m.cmd(&["SET", "k", "v"])), "+OK");
    assert_eq!(
        show(&m.cmd(&["EVAL", "return redis.call('set', 'k2', 'v2')", "0"])),
        "+OK"
    );
    assert!(wait_until(Duration::from_secs(10), || show(
        &r.cmd(&["GET", "k2"])
    ) == "$\"v2\""));
    assert_eq!(show(&r.cmd(&["GET", "k"])), "$\"v\"");
    drop(replica);
    // The AOF, written by another user, read back at start.
    let dir = tempdir();
    let mut args = restricted.to_vec();
    args.extend(["--user", "writer", "on", ">w", "~*", "+@all"]);
    args.extend(["--appendonly", "yes", "--dir", &dir]);
    let s = Server::shardis_with(2, &args);
    let mut c = s.raw();
    assert_eq!(show(&c.cmd(&["AUTH", "writer", "w"])), "+OK");
    for i in 0..50 {
        assert_eq!(show(&c.cmd(&["SET", &format!("k{i}"), "v"])), "+OK");
    }
    drop(s);
    let s = Server::shardis_with(2, &args);
    let mut c = s.raw();
    assert_eq!(show(&c.cmd(&["DBSIZE"])), ":50");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
