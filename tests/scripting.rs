//! Lua scripting against the real binary: EVAL / EVALSHA / SCRIPT replies compared
//! with a real redis-server, then what only a multi-core server can get wrong.
//!
//! The one idea to hold: reply texts are never transcribed here; the same commands go
//! to redis-server 7.0 and the replies must be identical (errors with their `script:
//! <sha>, on @user_script:<line>.` suffix, conversions both ways, RESP3 after
//! `redis.setresp(3)` and for a HELLO 3 client). Keys are chosen with `shard_of` so
//! that a script really spans shards; atomicity is checked by an invariant a torn
//! script would break (counters on four shards incremented together are always equal
//! to a reader), and replication by what a real redis-server replica ends up holding.

mod common;

use common::{
    conn_on, keys_on_distinct_shards, show, wait_until, Duo, Frame, RawConn, Server, Step,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

fn step(conn: usize, argv: &[&str]) -> Step {
    Step::Cmd(conn, argv.iter().map(|s| s.to_string()).collect())
}

/// Reaches the undeclared key ARGV[1] only when KEYS[1] says so.
const FAR: &str =
    "if redis.call('get', KEYS[1]) == 'far' then return redis.call('get', ARGV[1]) end return 'near'";

const INCR_ALL: &str = "for i, k in ipairs(KEYS) do redis.call('incr', k) end return #KEYS";

/// Sets its keys to expire in 1 ms, computes for longer than that, and reads them one
/// by one and together (MGET, EXISTS: split over shards when the keys span them):
/// Redis 7.0 reads the clock once for a script, so they are still there.
const OUTLIVES: &str = "for i, k in ipairs(KEYS) do redis.call('set', k, 'v', 'px', 1) end \
    local x = 0 for i = 1, 3000000 do x = x + i end \
    local seen = {} for i, k in ipairs(KEYS) do \
    table.insert(seen, redis.call('get', k)) table.insert(seen, redis.call('exists', k)) end \
    table.insert(seen, redis.call('mget', unpack(KEYS))) \
    table.insert(seen, redis.call('exists', unpack(KEYS))) return seen";

#[test]
fn scripts_answer_as_redis() {
    let mut duo = Duo::new(Server::shardis(2), 2);
    let keys = keys_on_distinct_shards("k", 2, 2);
    let (k0, k1) = (keys[0].as_str(), keys[1].as_str());
    let cases: Vec<Vec<&str>> = vec![
        vec!["SET", "s", "str"],
        // SORT's patterns reach every shard from a script, as outside one.
        vec!["RPUSH", "sl", "3", "1", "2"],
        vec![
            "MSET", "o_1", "one", "o_2", "two", "o_3", "three", "w_1", "3", "w_2", "2", "w_3", "1",
        ],
        vec!["EVAL", "return redis.call('sort', KEYS[1], 'get', 'o_*')", "1", "sl"],
        vec![
            "EVAL",
            "return redis.call('sort', KEYS[1], 'by', 'w_*', 'get', '#', 'get', 'w_*')",
            "1",
            "sl",
        ],
        vec![
            "EVAL",
            "redis.call('set', KEYS[2], 1) return redis.call('sort', KEYS[1], 'by', 'w_*', 'store', KEYS[2])",
            "2",
            "sl",
            "{sl}d",
        ],
        vec!["LRANGE", "{sl}d", "0", "-1"],
        // A set sorted BY a constant is left in its own order, but not for a script:
        // Redis sorts it ALPHA there so the result is deterministic.
        vec![
            "SADD", "myset", "a", "b", "c", "d", "e", "f", "g", "h", "i", "l", "m", "n", "o",
            "p", "q", "r", "s", "t", "u", "v", "z", "aa", "aaa", "azz",
        ],
        vec!["EVAL", "return redis.call('sort',KEYS[1],'by','_')", "1", "myset"],
        // (Undeclared, from whichever shard: the script holds every shard.)
        vec!["EVAL", "return redis.call('sort','myset','by','_')", "0"],
        vec!["EVAL", "return redis.call('sort','myset','by','_')", "1", k0],
        vec!["EVAL", "return redis.call('sort','myset','by','_')", "1", k1],
        vec![
            "EVAL",
            "return redis.call('sort',KEYS[1],'by','_','get','#','get','_:*')",
            "1",
            "myset",
        ],
        // Errors raised by redis.call, caught by redis.pcall, raised by Lua itself.
        vec!["EVAL", "return redis.call('incr','s')", "0"],
        vec!["EVAL", "return redis.pcall('incr','s')", "0"],
        vec!["EVAL", "local ok, e = pcall(redis.call, 'incr', 's') return e", "0"],
        vec!["EVAL", "return 1 + nil", "0"],
        vec!["EVAL", "\n\nerror('boom')", "0"],
        vec!["EVAL", "error({err='tbl'})", "0"],
        vec!["EVAL", "return (", "0"],
        // A script that did not compile is not cached.
        vec!["EVALSHA", "728acb63e2aaef0ee859ece5db586bff5d800d1e", "0"],
        vec!["SCRIPT", "EXISTS", "728acb63e2aaef0ee859ece5db586bff5d800d1e"],
        vec!["EVAL", "#!lua flags=bogus\nreturn 1", "0"],
        vec!["SCRIPT", "EXISTS", "2c629bb5a96608e69af706765b522dcf69f1375e"],
        // cjson prints every number with %.14g.
        vec![
            "EVAL",
            "return cjson.encode({123456789012345, 2^53, 12, -7, 1e14, 99999999999999})",
            "0",
        ],
        // The strings' metatable is read-only, and what a script tried on it does not
        // reach the next script's strings.
        vec!["EVAL", "getmetatable('').__index = nil return 1", "0"],
        vec!["EVAL", "getmetatable('').foo = 1 return 1", "0"],
        vec!["EVAL", "getmetatable('').__index.upper = function() return 'x' end", "0"],
        vec!["EVAL", "rawset(getmetatable(''), '__index', nil) return 1", "0"],
        vec!["EVAL", "return {('abc'):upper(), getmetatable('').__index == string}", "0"],
        // A shebang line ends at any white space (a file with CRLF line ends).
        vec!["EVAL", "#!lua\r\nreturn 1", "0"],
        vec!["EVAL", "#!lua\tflags=no-writes\nreturn redis.call('set','x','y')", "0"],
        vec!["EVAL", "return redis.call('nosuch')", "0"],
        vec!["EVAL", "return redis.call('get')", "0"],
        vec!["EVAL", "return redis.call()", "0"],
        vec!["EVAL", "return redis.call('set','x', {})", "0"],
        vec!["EVAL", "return redis.call('blpop','x',0)", "0"],
        vec!["EVAL", "return redis.call('multi')", "0"],
        vec!["EVAL", "return redis.call('eval','return 1','0')", "0"],
        vec!["EVAL", "return redis.pcall()", "0"],
        vec!["EVAL", "return redis.pcall('set','x', {})", "0"],
        vec!["EVAL", "return redis.pcall('get')", "0"],
        // What a caught error is (a table, as Redis raises it).
        vec![
            "EVAL",
            "return {xpcall(function() return redis.call('incr','s') end, \
             function(e) return type(e) .. ':' .. tostring(e.err) end)}",
            "0",
        ],
        // redis.call from a coroutine (another Lua thread), with a reply pushed
        // directly and one made by the general conversion.
        vec![
            "EVAL",
            "return coroutine.wrap(function() return redis.call('ping') end)()",
            "0",
        ],
        vec!["RPUSH", "cl", "a", "b"],
        vec![
            "EVAL",
            "return coroutine.wrap(function() return redis.call('lrange', 'cl', 0, -1) end)()",
            "0",
        ],
        vec![
            "EVAL",
            "return {pcall(coroutine.wrap(function() return redis.call('hgetall', 'cl') end))}",
            "0",
        ],
        // Numbers as arguments: `%.17g`.
        vec![
            "EVAL",
            "local out = {} for i, n in ipairs({-0.0, 1e20, 0.1 + 0.2, 2^63, 7, 0/0, -(0/0), 1/0}) do \
             redis.call('set', 'n', n) table.insert(out, redis.call('get', 'n')) end \
             return out",
            "0",
        ],
        // The sandbox.
        vec!["EVAL", "x = 1", "0"],
        vec!["EVAL", "string.x = 1; return 1", "0"],
        vec!["EVAL", "redis = nil", "0"],
        vec!["EVAL", "return foo", "0"],
        vec!["EVAL", "return print('hi')", "0"],
        vec!["EVAL", "return os.time()", "0"],
        vec!["EVAL", "rawset(_G, 'y', 1) return y", "0"],
        vec!["EVAL", "setmetatable(_G, nil)", "0"],
        vec!["EVAL", "return getmetatable(_G)", "0"],
        vec!["EVAL", "return loadstring('return 7')()", "0"],
        vec!["EVAL", "return _VERSION", "0"],
        vec![
            "EVAL",
            "return coroutine.wrap(function() coroutine.yield(5) end)()",
            "0",
        ],
        // Return values.
        vec!["EVAL", "return {1,2,{3,'x'},nil,5}", "0"],
        vec!["EVAL", "return {1,2,3.7,'a',true,false,nil,'z'}", "0"],
        vec!["EVAL", "return {ok='fine'}", "0"],
        vec!["EVAL", "return {err='bad thing'}", "0"],
        vec!["EVAL", "return {double=3.5}", "0"],
        vec!["EVAL", "return {map={a=1}}", "0"],
        vec!["EVAL", "return 3.99", "0"],
        vec!["EVAL", "return -0.5", "0"],
        vec!["EVAL", "return 2^53", "0"],
        vec!["EVAL", "return 'a\0b'", "0"],
        vec!["EVAL", "return true", "0"],
        vec!["EVAL", "return false", "0"],
        // Replies as a script sees them.
        vec!["EVAL", "return redis.call('get','nokey')", "0"],
        vec!["EVAL", "return type(redis.call('ping'))", "0"],
        vec!["EVAL", "return redis.call('ping')['ok']", "0"],
        vec!["EVAL", "return redis.call('hgetall','nohash')", "0"],
        vec!["EVAL", "return redis.call('set','num', 3.5)", "0"],
        vec!["EVAL", "return redis.call('incrbyfloat','f', 0.1)", "0"],
        vec!["EVAL", "return redis.call('zadd','z','1','a')", "0"],
        vec![
            "EVAL",
            "return redis.call('zrange','z','0','-1','withscores')",
            "0",
        ],
        vec![
            "EVAL",
            "redis.setresp(3) return redis.call('zrange','z','0','-1','withscores')",
            "0",
        ],
        vec!["EVAL", "redis.setresp(3) return redis.call('zscore','z','a')", "0"],
        vec!["EVAL", "return redis.call('hset','h','a','1','b','2')", "0"],
        vec![
            "EVAL",
            "redis.setresp(3) local t = redis.call('hgetall','h') return t.map.a",
            "0",
        ],
        // KEYS, ARGV, numkeys.
        vec!["EVAL", "return KEYS[1]..ARGV[1]", "1", "k", "a"],
        vec!["EVAL", "return #KEYS + #ARGV", "2", "a", "b", "c", "d", "e"],
        vec!["EVAL", "return _G.KEYS[1]", "1", "kk"],
        vec!["EVAL", "return 1", "-1"],
        vec!["EVAL", "return 1", "2", "a"],
        vec!["EVAL", "return 1", "x"],
        vec!["EVAL", "return 1"],
        // Keys on both shards, declared or not.
        vec!["EVAL", INCR_ALL, "2", k0, k1],
        vec!["EVAL", "return redis.call('mget', KEYS[1], KEYS[2], 'none')", "2", k0, k1],
        vec![
            "EVAL",
            "return redis.call('mset', ARGV[1], 'a', ARGV[2], 'b')",
            "0",
            k0,
            k1,
        ],
        vec!["EVAL", "return redis.call('dbsize')", "0"],
        vec!["EVAL", "redis.call('select', 3); return redis.call('set','dbx',1)", "0"],
        vec!["GET", "dbx"],
        vec!["EVAL", "return redis.call('select','99')", "0"],
        // The redis library.
        vec!["EVAL", "return redis.sha1hex('')", "0"],
        vec!["EVAL", "return redis.sha1hex()", "0"],
        vec!["EVAL", "return redis.error_reply('E2 custom')", "0"],
        vec!["EVAL", "return redis.error_reply(5)", "0"],
        vec!["EVAL", "return redis.status_reply('x')", "0"],
        vec!["EVAL", "return redis.setresp(4)", "0"],
        vec!["EVAL", "redis.set_repl(99)", "0"],
        vec!["EVAL", "return redis.replicate_commands()", "0"],
        vec!["EVAL", "return redis.breakpoint()", "0"],
        vec!["EVAL", "return redis.acl_check_cmd('get','x')", "0"],
        vec!["EVAL", "return redis.acl_check_cmd('nosuch')", "0"],
        vec!["EVAL", "return redis.log(redis.LOG_WARNING, 'from', 'a script')", "0"],
        vec!["EVAL", "return redis.log(9, 'x')", "0"],
        vec!["EVAL", "return redis.REDIS_VERSION_NUM", "0"],
        // Callbacks Lua 5.1 cannot yield across.
        vec![
            "EVAL",
            "local a = {3,1,2} table.sort(a, function(x,y) redis.call('ping') return x<y end) return a",
            "0",
        ],
        vec![
            "EVAL",
            "return string.gsub('abc', 'b', function(c) return redis.call('echo', 'X') end)",
            "0",
        ],
        // Read-only scripts and shebangs.
        vec!["EVAL_RO", "return redis.call('set','a',1)", "0"],
        vec!["EVAL_RO", "return redis.call('get','a')", "0"],
        vec!["EVAL", "#!lua flags=no-writes\nreturn redis.call('set','a',1)", "0"],
        vec!["EVAL", "#!lua\nreturn 1 + nil", "0"],
        vec!["EVAL", "#!lua flags=bogus\nreturn 1", "0"],
        vec!["EVAL", "#!python\nreturn 1", "0"],
        vec!["EVAL", "#!lua name=x\nreturn 1", "0"],
        // The cache.
        vec!["SCRIPT", "LOAD", "return 1"],
        vec!["SCRIPT", "LOAD", "return ("],
        vec!["SCRIPT", "EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "abc"],
        vec!["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
        vec!["EVALSHA", "E0E1F9FABFC9D4800C877A703B823AC0578FF8DB", "0"],
        vec!["EVALSHA_RO", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
        vec!["SCRIPT", "FLUSH", "bogus"],
        vec!["SCRIPT", "FLUSH", "ASYNC"],
        vec!["SCRIPT", "EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"],
        vec!["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
        vec!["SCRIPT", "KILL"],
        vec!["SCRIPT"],
        vec!["SCRIPT", "HELP"],
        vec!["SCRIPT", "NOSUCH"],
        // Declared keys on one shard: the first run holds every shard and finds the
        // script stays there; later runs run on that shard alone.
        vec!["EVAL", "return redis.call('incr', KEYS[1])", "1", k0],
        vec!["EVAL", "return redis.call('incr', KEYS[1])", "1", k0],
        vec!["EVAL", "return redis.call('incr', KEYS[1])", "1", k1],
        vec!["EVAL", "return {redis.call('incr', KEYS[1]), redis.call('get', KEYS[1])}", "1", k0],
        vec!["EVAL", "return {redis.call('incr', KEYS[1]), redis.call('get', KEYS[1])}", "1", k0],
        vec!["EVAL", "return redis.call('time')[1] > '0'", "1", k0],
        vec!["EVAL", "return redis.call('time')[1] > '0'", "1", k0],
        vec!["EVAL", "redis.call('select', 2) return redis.call('incr', KEYS[1])", "1", k0],
        vec!["EVAL", "redis.call('select', 2) return redis.call('incr', KEYS[1])", "1", k0],
        vec!["GET", k0],
        // Keys set to expire do not expire in the middle of a script: holding every
        // shard (first run), on its shard alone (second), over two shards.
        vec!["EVAL", OUTLIVES, "1", k0],
        vec!["EVAL", OUTLIVES, "1", k0],
        vec!["EVAL", OUTLIVES, "2", k0, k1],
        vec![
            "EVAL",
            "redis.call('select', 9) redis.call('set', KEYS[1], 'v', 'px', 1) \
             local x = 0 for i = 1, 3000000 do x = x + i end \
             return {redis.call('keys', '*'), redis.call('scan', 0)[2], \
             redis.call('randomkey'), redis.call('exists', KEYS[1])}",
            "1",
            k0,
        ],
        // A script seen to stay on its shard that one day reaches another (before any
        // write) moves and still answers right.
        vec!["EVAL", FAR, "1", k0, k1],
        vec!["SET", k0, "far"],
        vec!["SET", k1, "there"],
        vec!["EVAL", FAR, "1", k0, k1],
        vec!["EVAL", FAR, "1", k0, k1],
        vec!["DEL", k0, k1],
        // Inside MULTI, with keys on both shards.
        vec!["MULTI"],
        vec!["EVAL", INCR_ALL, "2", k0, k1],
        vec!["INCR", k0],
        vec!["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
        vec!["EVAL", "return redis.call('get', KEYS[1])", "1", k0],
        vec!["EXEC"],
        vec!["EVAL", "return redis.call('flushall')", "0"],
        vec!["EVAL", "return redis.call('dbsize')", "0"],
    ];
    let steps: Vec<Step> = cases.iter().map(|c| step(0, c)).collect();
    duo.run("RESP2", &steps);
    // A RESP3 client gets booleans and typed values.
    let mut steps = vec![Step::Any(1, vec!["HELLO".into(), "3".into()])];
    for c in [
        vec!["EVAL", "return true", "0"],
        vec!["EVAL", "return false", "0"],
        vec!["EVAL", "return {double=1.5}", "0"],
        vec!["EVAL", "return {map={a=1}}", "0"],
        vec!["EVAL", "return {set={a=true}}", "0"],
        vec![
            "EVAL",
            "return {big_number='123456789012345678901234567890'}",
            "0",
        ],
        vec![
            "EVAL",
            "redis.setresp(3) return redis.call('hgetall','nohash')",
            "0",
        ],
        vec!["EVAL", "return redis.call('hgetall','nohash')", "0"],
        vec!["EVAL", "return nil", "0"],
        vec!["EVAL", "redis.setresp(3) return true", "0"],
        vec!["EVAL", "redis.setresp(3) return false", "0"],
    ] {
        steps.push(step(1, &c));
    }
    duo.run("RESP3", &steps);
}

/// `DEBUG SET-DISABLE-DENY-SCRIPTS 1` lets a script reach `no-script` commands, as
/// Redis's own tests use it: DEBUG PROTOCOL then hands a script every RESP3 type
/// (an attribute is dropped, the reply it precedes kept), converted back for RESP2
/// and RESP3 clients; a big number's line break is blanked for either.
#[test]
fn scripts_read_every_reply_type_as_redis() {
    let debug = ["--enable-debug-command", "yes"];
    let mut duo = Duo::pair(
        Server::shardis_with(2, &debug),
        Server::redis_with(&debug),
        1,
    );
    let protocol =
        |t: &str| format!("redis.setresp(3) return redis.call('debug', 'protocol', '{t}')");
    let types = [
        "string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib",
        "verbatim", "true", "false",
    ];
    let mut steps = vec![
        step(0, &["EVAL", &protocol("string"), "0"]),
        step(0, &["DEBUG", "SET-DISABLE-DENY-SCRIPTS", "1"]),
    ];
    for hello in ["2", "3"] {
        steps.push(Step::Any(0, vec!["HELLO".into(), hello.into()]));
        for t in types {
            steps.push(step(0, &["EVAL", &protocol(t), "0"]));
            steps.push(step(
                0,
                &[
                    "EVAL",
                    &protocol(t).replace("setresp(3)", "setresp(2)"),
                    "0",
                ],
            ));
        }
        steps.push(step(0, &["EVAL", "return {big_number='12\\r\\n3'}", "0"]));
    }
    steps.push(step(0, &["DEBUG", "SET-DISABLE-DENY-SCRIPTS", "0"]));
    steps.push(step(0, &["EVAL", &protocol("string"), "0"]));
    duo.run("DEBUG PROTOCOL from scripts", &steps);
}

/// The error stats of a script's errors: those a `redis.call` got are counted when
/// made (also when the script goes on, or returns them: `ignore_error_stats_update`),
/// errors the script makes when it returns them, nested ones too, and errors inside
/// EXEC; a command refused before it ran counts as rejected.
#[test]
fn script_errors_count_in_the_error_stats_as_redis() {
    let mut duo = Duo::new(Server::shardis(2), 1);
    let cases: Vec<Vec<&str>> = vec![
        vec!["CONFIG", "RESETSTAT"],
        vec!["SET", "s", "str"],
        // An unknown subcommand counts no call of its container.
        vec!["OBJECT", "foo"],
        vec![
            "EVAL",
            "redis.pcall('nosuch') redis.pcall('incr','x','y') return 1",
            "0",
        ],
        vec!["EVAL", "return redis.pcall('get','a','b')", "0"],
        vec!["EVAL", "return redis.error_reply('oops')", "0"],
        vec!["EVAL", "return redis.error_reply('-oops')", "0"],
        vec!["EVAL", "return redis.error_reply('MY oops')", "0"],
        vec!["EVAL", "return redis.error_reply('-MY2 oops\r\n')", "0"],
        vec![
            "EVAL",
            "local e = redis.error_reply('x') return e['ignore_error_stats_update']",
            "0",
        ],
        vec![
            "EVAL",
            "local e = redis.pcall('nosuch') return e['ignore_error_stats_update']",
            "0",
        ],
        vec![
            "EVAL",
            "local e = redis.pcall('incr','s') return e['ignore_error_stats_update']",
            "0",
        ],
        vec!["EVAL", "return {err='X bad'}", "0"],
        vec![
            "EVAL",
            "return {1, redis.pcall('incr','s'), {err='NEST x'}}",
            "0",
        ],
        vec!["EVAL", "return redis.call('incr','s')", "0"],
        vec![
            "EVAL",
            "local e = redis.pcall('incr','s') e.err = 'Y changed' return e",
            "0",
        ],
        vec!["EVAL", "return pcall(redis.call, 'incr', 's')", "0"],
        vec!["MULTI"],
        vec!["INCR", "s"],
        vec!["EVAL", "return redis.pcall('incr','s')", "0"],
        vec!["EXEC"],
    ];
    let steps: Vec<Step> = cases.iter().map(|c| step(0, c)).collect();
    duo.run("errors", &steps);
    let stats = |c: &mut RawConn| {
        let mut lines = Vec::new();
        for section in ["errorstats", "commandstats"] {
            let text = match c.cmd(&["INFO", section]) {
                Frame::Bulk(b) | Frame::Verbatim(b) => String::from_utf8_lossy(&b).into_owned(),
                other => panic!("INFO: {}", show(&other)),
            };
            for l in text
                .lines()
                .filter(|l| l.contains(':') && !l.contains("config"))
            {
                // Calls, rejected and failed counts; not the times.
                let counts: Vec<&str> = l.split(',').filter(|f| !f.contains("usec")).collect();
                lines.push(counts.join(","));
            }
        }
        lines.sort();
        lines
    };
    let (s, r) = (stats(&mut duo.s[0]), stats(&mut duo.r[0]));
    assert_eq!(s, r, "{}", duo.transcript());
}

#[test]
fn script_libraries_answer_as_redis() {
    let mut duo = Duo::new(Server::shardis(1), 1);
    let exprs = [
        // cjson
        "cjson.encode({1,2,'a/b',{x=1},true,cjson.null})",
        "cjson.encode({})",
        "cjson.encode({[1]=1,[20]=2})",
        "cjson.encode({[1]=1,[3]=2})",
        "cjson.encode({a={b={c='\\n\\0x'}}, [5]=3})",
        "cjson.encode({a=1,b=2,c=3,d={1,2}})",
        "cjson.encode(0/0)",
        "cjson.encode(1/3)",
        "cjson.encode(1e20)",
        "cjson.encode(-0.5)",
        "cjson.encode(function() end)",
        "cjson.encode({[true]=1})",
        "cjson.encode('\\127\\31\\233\\\"')",
        "cjson.encode()",
        "cjson.decode('[1,2,{\"a\":null}]')[3].a == cjson.null",
        "cjson.decode('{\"a\":[1,2.5,\"x\\\\u00e9\"]}').a[3]",
        "cjson.decode('\"\\\\ud83d\\\\ude00\"')",
        "cjson.decode('1e2')",
        "cjson.decode(' [ true , false ] ')",
        "cjson.decode('[1,')",
        "cjson.decode('nope')",
        "cjson.decode('')",
        "cjson.decode('[1] x')",
        "cjson.decode('{\"a\" 1}')",
        "cjson.decode('[1 2]')",
        "cjson.decode('{1:2}')",
        "cjson.decode()",
        "type(cjson.null)",
        "cjson.encode(cjson.decode('{\"k\":[1,{\"z\":\"\\\\/\"}]}'))",
        // bit
        "bit.band(0xff, 0x0f, 0x3)",
        "bit.bor(1,2,4)",
        "bit.bxor(5,1)",
        "bit.bnot(0)",
        "bit.lshift(1, 31)",
        "bit.rshift(-1, 28)",
        "bit.arshift(-256, 4)",
        "bit.rol(0x12345678, 12)",
        "bit.ror(0x12345678, 12)",
        "bit.tobit(0xffffffff + 1)",
        "bit.tobit(2^32 + 5)",
        "bit.tobit(1.5)",
        "bit.tobit(2.5)",
        "bit.tohex(255)",
        "bit.tohex(-1, -4)",
        "bit.tohex(255, 2)",
        "bit.bswap(0x12345678)",
        "bit.band('7', 3)",
        "bit.band()",
        "bit.band({})",
    ];
    let mut steps: Vec<Step> = exprs
        .iter()
        .map(|e| step(0, &["EVAL", &format!("return {e}"), "0"]))
        .collect();
    // cmsgpack and struct: whole scripts (the replies carry the packed bytes), edge
    // cases of both libraries, and the Lua stack limits hostile payloads meet.
    let scripts = [
        // math.random: Redis's lrand48, the same numbers for the same seed.
        "math.randomseed(7) return {math.random(), math.random(5), math.random(-3, 3), math.random(2.7)}",
        "math.randomseed(-12345) local t = {} for i = 1, 50 do t[i] = math.random(1000000) end return t",
        "math.randomseed(2^40 + 3) return {math.random(100), tostring(math.random())}",
        "math.randomseed('9') return math.random('5', 8)",
        "return math.random(0)",
        "return math.random(3, 1)",
        "return math.random(1, 2, 3)",
        "return math.random('x')",
        "return math.randomseed()",
        "return cmsgpack.pack()",
        "return cmsgpack.unpack()",
        "return cmsgpack.unpack({})",
        "return cmsgpack.unpack(string.char(0xc1))",
        "return cmsgpack.unpack_one('abc', 10)",
        "return cmsgpack.unpack_one('abc', -1)",
        "return cmsgpack.unpack_one('abc', 'x')",
        "return cmsgpack.unpack_limit('abc')",
        "return {cmsgpack.unpack(cmsgpack.pack({1,2,3}, 'x', {a=1}))}",
        "return cmsgpack.unpack(string.sub(cmsgpack.pack('hello'), 1, 3))",
        "return cmsgpack.pack(0.5, 1e100, -1, -33, 300, 70000, 5000000000, -5000000000, 2^63, 'abc', true, false, {}, {1,2}, {a={b={}}}, 0/0, 1/0, -1/0, -0.0, 2^53+1, -2^63)",
        "return cmsgpack.pack({[1]=1,[3]=3}, {[0]=1}, {1.5}, {[1.5]=2}, {x=nil}, string.rep('a', 40), string.rep('b', 300), string.rep('c', 70000):sub(1,10))",
        "local t = {} local c = t for i=1,20 do c.x = {} c = c.x end return cmsgpack.pack(t)",
        "local ok, e = pcall(cmsgpack.unpack, string.rep(string.char(0x91), 3999) .. string.char(1)) return tostring(ok)",
        "local ok, e = pcall(cmsgpack.unpack, string.rep(string.char(0x91), 4000) .. string.char(1)) return tostring(e)",
        "return type(cmsgpack.unpack(string.rep(string.char(0x91), 4000) .. string.char(1)))",
        "return type(cmsgpack.unpack(string.rep(string.char(0x81, 1), 3999) .. string.char(1)))",
        "return type(cmsgpack.unpack(string.rep(string.char(0x81, 1), 4000) .. string.char(1)))",
        "local t = {} for i=1,20000 do t[i]=i end return #{cmsgpack.unpack(cmsgpack.pack(unpack(t, 1, 7000)))}",
        "local t = {} for i=1,20000 do t[i]=i end return #{cmsgpack.unpack(cmsgpack.pack(unpack(t, 1, 4000)))}",
        "local t = {} for i=1,20000 do t[i]=i end return #{cmsgpack.unpack(cmsgpack.pack(unpack(t, 1, 4001)))}",
        "local a, b = cmsgpack.unpack_one(cmsgpack.pack(1,2)) return {a, b}",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1,2,3), 2, 1)}",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1,2,3), 0)}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1,2,3), 2)}",
        "local x = cmsgpack.unpack(cmsgpack.pack({a=1,b={1,2,{c='d'}}})) return {x.a, x.b[3].c}",
        "return {cmsgpack.unpack(string.char(0xcf,255,255,255,255,255,255,255,255, 0xd3,128,0,0,0,0,0,0,0, 0xca,0x40,0x49,0x0f,0xdb, 0xd1,0xff,0x00, 0xdb,0,0,0,2,104,105))}",
        "return tostring(cmsgpack.unpack(string.char(0xca,0x40,0x49,0x0f,0xdb)))",
        "return cmsgpack._NAME .. cmsgpack._VERSION",
        "return cmsgpack.unpack(123)",
        "return struct.pack('>hIc3s!4d', -2, 65536, 'abcd', 'z', 0.5)",
        "return {struct.unpack('>hIc3s!4d', struct.pack('>hIc3s!4d', -2, 65536, 'abcd', 'z', 0.5))}",
        "return struct.pack()",
        "return struct.pack('q', 1)",
        "return struct.pack('i40', 1)",
        "return struct.pack('!3', 1)",
        "return struct.pack('i99999999999', 1)",
        "return struct.pack('c5', 'ab')",
        "return struct.pack('i', 'x')",
        "return struct.pack('i')",
        "return struct.pack('<i2 >i2 Bb', 258, 258, 255, -1)",
        "return struct.pack('i16', -1)",
        "return struct.pack('!i3 b i3', 1, 2, 3)",
        "return struct.pack('c0s', 'hello', 'w')",
        "return struct.pack('fd', 1.1, 1.1)",
        "return {struct.unpack('i', 'ab')}",
        "return {struct.unpack('i', 'abcd', 0)}",
        "return {struct.unpack('i', 'abcd', -1)}",
        "return {struct.unpack('i', 'abcdabcd', 5)}",
        "return {struct.unpack('s', 'abc')}",
        "return {struct.unpack('bc0', string.char(3) .. 'abcdef')}",
        "return {struct.unpack('c0', 'abcdef')}",
        "return {struct.unpack('Bc0', string.char(9) .. 'abc')}",
        "return {struct.unpack('>I3 i3 H h', string.char(255,255,255, 255,255,254, 1,2, 255,0))}",
        "return {struct.unpack('i16', string.rep(string.char(255), 16))}",
        "return {struct.unpack('f', struct.pack('f', 0.1))}",
        "return {struct.unpack('zz', 'ab')}",
        "return struct.size('i!4dbc3')",
        "return struct.size('s')",
        "return struct.size('c0')",
        "return struct.size('qz')",
        "return struct.size('%')",
        "return struct.size()",
        "return struct.pack('b', 300)",
        "return struct.pack('B', -1)",
        "return struct.pack('>L', 2^64)",
    ];
    steps.extend(scripts.iter().map(|s| step(0, &["EVAL", s, "0"])));
    duo.run("cjson, bit, cmsgpack and struct", &steps);
}

#[test]
fn a_script_is_atomic_across_shards() {
    const SHARDS: usize = 4;
    let server = Server::shardis(SHARDS);
    let keys = keys_on_distinct_shards("ctr", SHARDS, SHARDS);
    let stop = Arc::new(AtomicBool::new(false));
    // Readers: the counters live on four shards and are only ever incremented
    // together, so no reader may see them differ.
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let mut c = server.raw();
            let keys = keys.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut seen = 0;
                while !stop.load(Ordering::Relaxed) {
                    let mut argv = vec!["MGET"];
                    argv.extend(keys.iter().map(String::as_str));
                    if r == 1 {
                        // A read-only script reaching the keys without declaring them.
                        argv = vec!["EVAL_RO", "local t = {} for i, k in ipairs(ARGV) do t[i] = redis.call('get', k) end return t", "0"];
                        argv.extend(keys.iter().map(String::as_str));
                    }
                    let reply = c.cmd(&argv);
                    let Frame::Array(items) = &reply else {
                        panic!("reader {r}: {}", show(&reply));
                    };
                    assert!(
                        items.windows(2).all(|w| w[0] == w[1]),
                        "reader {r} saw a script half done: {}",
                        show(&reply)
                    );
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let mut c = server.raw();
            let keys = keys.clone();
            thread::spawn(move || {
                for i in 0..200 {
                    let mut argv = vec!["EVAL", INCR_ALL];
                    let n = keys.len().to_string();
                    // Declared keys, or the same keys reached undeclared.
                    let declared = (w + i) % 2 == 0;
                    if declared {
                        argv.push(&n);
                        argv.extend(keys.iter().map(String::as_str));
                    } else {
                        argv = vec![
                            "EVAL",
                            "for i, k in ipairs(ARGV) do redis.call('incr', k) end return #ARGV",
                            "0",
                        ];
                        argv.extend(keys.iter().map(String::as_str));
                    }
                    assert_eq!(c.cmd(&argv), Frame::Int(4), "writer {w}");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0, "a reader never read");
    }
    let mut c = server.raw();
    for k in &keys {
        assert_eq!(c.cmd(&["GET", k]), Frame::Bulk(b"600".to_vec()), "{k}");
    }
}

#[test]
fn a_script_on_one_shard_is_atomic_and_cannot_leave_it_after_writing() {
    let server = Server::shardis(2);
    let far = keys_on_distinct_shards("f", 2, 2);
    let mut c = server.raw();
    let script = "redis.call('incr', KEYS[1]) \
                  if redis.call('get', KEYS[1]) == '3' then return redis.call('get', ARGV[1]) end \
                  return 'near'";
    // Runs 1 (holding every shard: it stays) and 2 (on its shard) stay near.
    for _ in 0..2 {
        assert_eq!(
            c.cmd(&["EVAL", script, "1", &far[0], &far[1]]),
            Frame::Bulk(b"near".to_vec())
        );
    }
    // Run 3 wrote, then reached another shard: it cannot move any more. The write
    // stays (scripts have no rollback) and the next run holds every shard.
    match c.cmd(&["EVAL", script, "1", &far[0], &far[1]]) {
        Frame::Error(e) => assert!(
            e.starts_with("ERR Script attempted to access a key on another shard after writing"),
            "{e}"
        ),
        other => panic!("{}", show(&other)),
    }
    assert_eq!(c.cmd(&["GET", &far[0]]), Frame::Bulk(b"3".to_vec()));
    assert_eq!(c.cmd(&["SET", &far[0], "2"]), Frame::Simple("OK".into()));
    assert_eq!(c.cmd(&["SET", &far[1], "v"]), Frame::Simple("OK".into()));
    assert_eq!(
        c.cmd(&["EVAL", script, "1", &far[0], &far[1]]),
        Frame::Bulk(b"v".to_vec())
    );

    // Keys under one hash tag, incremented together by scripts that run on their
    // shard alone, are always equal to a reader.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let mut r = server.raw();
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let reply = r.cmd(&["MGET", "{t}a", "{t}b"]);
                let Frame::Array(items) = &reply else {
                    panic!("{}", show(&reply))
                };
                assert_eq!(
                    items[0], items[1],
                    "a script on one shard was seen half done"
                );
            }
        })
    };
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let mut w = server.raw();
            thread::spawn(move || {
                for _ in 0..300 {
                    let reply = w.cmd(&["EVAL", INCR_ALL, "2", "{t}a", "{t}b"]);
                    assert_eq!(reply, Frame::Int(2));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert_eq!(c.cmd(&["GET", "{t}b"]), Frame::Bulk(b"600".to_vec()));
}

/// Reads KEYS[1], and ARGV[1] too (an undeclared key) when ARGV[2] says so.
const PEEK: &str = "local mine = redis.call('get', KEYS[1]) \
    if ARGV[2] == 'peek' then return {mine, redis.call('get', ARGV[1])} end \
    return redis.call('incr', KEYS[1])";

/// Send `requests` as one write and read their replies.
fn pipeline(c: &mut RawConn, requests: &[Vec<String>]) -> Vec<Frame> {
    let mut out = Vec::new();
    for r in requests {
        let argv: Vec<&[u8]> = r.iter().map(|a| a.as_bytes()).collect();
        out.extend(common::encode_request(&argv));
    }
    c.send(&out);
    requests.iter().map(|_| c.read_frame()).collect()
}

/// Scripts known to keep to another core's shard join that shard's batch when
/// pipelined (`dispatch::Run::batch_script`), and the pipeline still runs in order, as
/// Redis runs it: with commands for either shard between the scripts, and with a
/// batched script that reaches beyond its shard on this run (it stops its batch, runs
/// holding every shard, and sees the effects of the requests before it and none of
/// those after it, on either shard).
#[test]
fn pipelined_scripts_run_in_order_as_redis() {
    let (shardis, redis) = (Server::shardis(2), Server::redis());
    let far = keys_on_distinct_shards("p", 2, 2);
    let near = &far[0];
    let far = &far[1];
    let mut s = conn_on(&shardis, 0);
    let mut r = redis.raw();
    let cmd = |argv: &[&str]| argv.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    // A script of its own for each round (it stops being batched once it reached
    // beyond its shard), whose first run holds every shard and finds it keeps to its
    // key's shard.
    let mut learnt = |n: usize| -> String {
        let body = format!("{PEEK} -- round {n}");
        let sha = match s.cmd(&["SCRIPT", "LOAD", &body]) {
            Frame::Bulk(b) => String::from_utf8(b).unwrap(),
            other => panic!("{}", show(&other)),
        };
        assert_eq!(
            r.cmd(&["SCRIPT", "LOAD", &body]),
            Frame::Bulk(sha.clone().into_bytes())
        );
        for c in [&mut s, &mut r] {
            assert!(matches!(
                c.cmd(&["EVALSHA", &sha, "1", far, near, "-"]),
                Frame::Int(_)
            ));
        }
        sha
    };
    let shas: Vec<String> = (0..3).map(&mut learnt).collect();
    let evalsha = |n: usize, what: &str| cmd(&["EVALSHA", &shas[n], "1", far, near, what]);
    let rounds: Vec<Vec<Vec<String>>> = vec![
        // Scripts for the far shard, and keyed commands for both between them.
        vec![
            evalsha(0, "-"),
            evalsha(0, "-"),
            cmd(&["SET", near, "n1"]),
            evalsha(0, "-"),
            cmd(&["INCR", far]),
            evalsha(0, "-"),
            cmd(&["GET", far]),
            cmd(&["PING"]),
            evalsha(0, "-"),
        ],
        // A batched script that reaches the near key on this run: it must see the
        // SET before it, not the one after, and the INCRs of its own shard after it
        // must run after it.
        vec![
            cmd(&["SET", near, "before"]),
            evalsha(1, "-"),
            evalsha(1, "peek"),
            cmd(&["INCR", far]),
            evalsha(1, "-"),
            cmd(&["SET", near, "after"]),
            evalsha(1, "peek"),
            cmd(&["GET", near]),
        ],
        // The same, the script first and a command over both shards after it.
        vec![
            evalsha(2, "peek"),
            cmd(&["MSET", near, "m1", far, "41"]),
            evalsha(2, "-"),
            cmd(&["MGET", near, far]),
            evalsha(2, "peek"),
        ],
    ];
    for (n, round) in rounds.iter().enumerate() {
        let got = pipeline(&mut s, round);
        let want = pipeline(&mut r, round);
        assert_eq!(
            got.iter().map(show).collect::<Vec<_>>(),
            want.iter().map(show).collect::<Vec<_>>(),
            "round {n}"
        );
    }
}

/// Moves one unit from KEYS[1] to KEYS[2] if KEYS[1] has one.
const MOVE_ONE: &str = "if tonumber(redis.call('get', KEYS[1])) > 0 then \
    redis.call('decr', KEYS[1]) redis.call('incr', KEYS[2]) return 1 end return 0";

/// A script whose declared keys span shards, once seen to keep to them, holds only
/// those keys: such scripts run side by side from every core (each core's thread
/// waits for the other's answers while it serves its own shard) and stay atomic. Six
/// counters on two shards, units moved between pairs on different shards by eight
/// clients on both cores, summed by readers (MGET and a script on all six): the sum
/// never changes.
/// A script that reaches an undeclared key is not sent to its declared keys' shard
/// alone, even when that key shares the shard: the next run's undeclared key may
/// not (a job queue's `incr` of a declared counter, then a write of `job:<id>`).
#[test]
fn a_script_reaching_undeclared_keys_on_its_shard_still_reaches_others() {
    let server = Server::shardis(2);
    let counter = &keys_on_distinct_shards("c", 1, 2)[0];
    let jobs = keys_on_distinct_shards("job", 8, 2);
    let mut c = server.raw();
    let script = "redis.call('incr', KEYS[1]) return redis.call('set', ARGV[1], 'x')";
    // The first run's undeclared key shares the counter's shard; later ones alternate.
    for job in &jobs {
        assert_eq!(
            c.cmd(&["EVAL", script, "1", counter, job]),
            Frame::Simple("OK".into()),
            "{job}"
        );
    }
    assert_eq!(c.cmd(&["GET", counter]), Frame::Bulk(b"8".to_vec()));
    for job in &jobs {
        assert_eq!(c.cmd(&["EXISTS", job]), Frame::Int(1), "{job}");
    }
}

#[test]
fn scripts_holding_their_keys_run_side_by_side_atomically() {
    let server = Server::shardis(2);
    let keys = keys_on_distinct_shards("m", 6, 2);
    let mut c = server.raw();
    for k in &keys {
        assert_eq!(c.cmd(&["SET", k, "100"]), Frame::Simple("OK".into()));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let mut c = conn_on(&server, r);
            let (keys, stop) = (keys.clone(), stop.clone());
            thread::spawn(move || {
                let sum = "local n = 0 for i, k in ipairs(KEYS) do \
                    n = n + tonumber(redis.call('get', k)) end return n";
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    let mut argv = vec!["MGET"];
                    if r == 1 {
                        argv = vec!["EVAL", sum, "6"];
                    }
                    argv.extend(keys.iter().map(String::as_str));
                    let total = match c.cmd(&argv) {
                        Frame::Int(n) => n,
                        Frame::Array(items) => items
                            .iter()
                            .map(|f| match f {
                                Frame::Bulk(b) => {
                                    std::str::from_utf8(b).unwrap().parse::<i64>().unwrap()
                                }
                                other => panic!("{}", show(other)),
                            })
                            .sum(),
                        other => panic!("reader {r}: {}", show(&other)),
                    };
                    assert_eq!(total, 600, "reader {r} saw a move half done");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let movers: Vec<_> = (0..8)
        .map(|w| {
            let mut c = conn_on(&server, w % 2);
            let keys = keys.clone();
            thread::spawn(move || {
                let mut moved = 0;
                for i in 0..300 {
                    // An even and an odd key: always two shards.
                    let from = 2 * ((w + i) % 3) + (i % 2);
                    let to = 2 * ((w * 7 + i * 5) % 3) + 1 - (i % 2);
                    match c.cmd(&["EVAL", MOVE_ONE, "2", &keys[from], &keys[to]]) {
                        Frame::Int(n) => moved += n,
                        other => panic!("mover {w}: {}", show(&other)),
                    }
                }
                moved
            })
        })
        .collect();
    let moved: i64 = movers.into_iter().map(|m| m.join().unwrap()).sum();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0, "a reader never read");
    }
    assert!(moved > 0);
    let mut argv = vec!["MGET"];
    argv.extend(keys.iter().map(String::as_str));
    let Frame::Array(items) = c.cmd(&argv) else {
        panic!()
    };
    let total: i64 = items
        .iter()
        .map(|f| match f {
            Frame::Bulk(b) => std::str::from_utf8(b).unwrap().parse::<i64>().unwrap(),
            other => panic!("{}", show(other)),
        })
        .sum();
    assert_eq!(total, 600);
}

/// While a script holding keys on both shards waits for the other core's answer, its
/// own core goes on with everything else (`scripting::slices`): scripts on one shard
/// (sent back while the interpreter is taken), scripts holding every shard, SCRIPT
/// LOAD and FCALL (which wait for the interpreter), plain commands. Clients of every
/// kind on both cores at once; every count must come out exact, and nothing may hang.
#[test]
fn a_core_whose_script_waits_for_the_other_serves_every_other_kind_of_work() {
    let server = Server::shardis(2);
    // k[0], k[2] on shard 0; k[1], k[3] on shard 1.
    let k = keys_on_distinct_shards("w", 4, 2);
    let mut c = server.raw();
    let lib = "#!lua name=wait\nredis.register_function('both', function(keys) \
        redis.call('incr', keys[1]) return redis.call('incr', keys[2]) end)";
    assert_eq!(
        c.cmd(&["FUNCTION", "LOAD", lib]),
        Frame::Bulk(b"wait".to_vec())
    );
    const N: i64 = 150;
    let both = "redis.call('incr', KEYS[1]) return redis.call('incr', KEYS[2])";
    let one = "return redis.call('incr', KEYS[1])";
    let wide = "redis.call('incr', ARGV[1]) return redis.call('incr', ARGV[2])";
    let mut jobs: Vec<thread::JoinHandle<()>> = Vec::new();
    for core in 0..2 {
        let spawn = |f: Box<dyn FnOnce(RawConn) + Send>| {
            let conn = conn_on(&server, core);
            thread::spawn(move || f(conn))
        };
        for _ in 0..2 {
            let ks = k.clone();
            jobs.push(spawn(Box::new(move |mut c| {
                let k = ks;
                for _ in 0..N {
                    let r = c.cmd(&["EVAL", both, "2", &k[0], &k[1]]);
                    assert!(matches!(r, Frame::Int(_)), "both: {}", show(&r));
                }
            })));
        }
        let ks = k.clone();
        jobs.push(spawn(Box::new(move |mut c| {
            let k = ks;
            for _ in 0..N {
                let r = c.cmd(&["EVAL", one, "1", &k[2 + core]]);
                assert!(matches!(r, Frame::Int(_)), "one: {}", show(&r));
                let r = c.cmd(&["FCALL", "both", "2", &k[0], &k[1]]);
                assert!(matches!(r, Frame::Int(_)), "fcall: {}", show(&r));
            }
        })));
        let ks = k.clone();
        jobs.push(spawn(Box::new(move |mut c| {
            let k = ks;
            for i in 0..N {
                // Undeclared keys: it holds every shard.
                let r = c.cmd(&["EVAL", wide, "0", &k[2], &k[3]]);
                assert!(matches!(r, Frame::Int(_)), "wide: {}", show(&r));
                let body = format!("return {}", i + 1000 * core as i64);
                let Frame::Bulk(sha) = c.cmd(&["SCRIPT", "LOAD", &body]) else {
                    panic!("SCRIPT LOAD")
                };
                let sha = String::from_utf8(sha).unwrap();
                let r = c.cmd(&["EVALSHA", &sha, "0"]);
                assert_eq!(r, Frame::Int(i + 1000 * core as i64));
                assert!(matches!(c.cmd(&["INCR", "plain"]), Frame::Int(_)));
            }
        })));
    }
    for j in jobs {
        j.join().unwrap();
    }
    let get = |c: &mut RawConn, key: &str| match c.cmd(&["GET", key]) {
        Frame::Bulk(b) => String::from_utf8(b).unwrap().parse::<i64>().unwrap(),
        other => panic!("{key}: {}", show(&other)),
    };
    // Both cores: two EVAL clients and one FCALL client on k[0] and k[1]; one-shard
    // scripts on k[2] (core 0's client) and k[3] (core 1's); the wide scripts on both.
    assert_eq!(get(&mut c, &k[0]), 6 * N);
    assert_eq!(get(&mut c, &k[1]), 6 * N);
    assert_eq!(get(&mut c, &k[2]), 3 * N);
    assert_eq!(get(&mut c, &k[3]), 3 * N);
    assert_eq!(get(&mut c, "plain"), 2 * N);
}

/// A script holding its declared keys that reaches another key, free here, claims it
/// too, before or after a write, and runs as Redis runs it; either way it holds every
/// shard from then on.
#[test]
fn a_script_holding_its_keys_may_still_reach_others() {
    let server = Server::shardis(2);
    let keys = keys_on_distinct_shards("s", 4, 2);
    let mut c = server.raw();
    let reads_first = "if ARGV[1] == 'far' then redis.call('incr', ARGV[2]) end \
        redis.call('incr', KEYS[1]) return redis.call('incr', KEYS[2])";
    let writes_first = "redis.call('incr', KEYS[1]) \
        if ARGV[1] == 'far' then redis.call('mset', ARGV[2], 'x', ARGV[3], 'y') end \
        return redis.call('incr', KEYS[2])";
    for script in [reads_first, writes_first] {
        // Run 1 holds every shard and finds it keeps to its keys; run 2 holds them
        // alone; run 3 reaches further; run 4 holds every shard again.
        for (run, arg) in ["near", "near", "far", "far"].iter().enumerate() {
            let reply = c.cmd(&[
                "EVAL", script, "2", &keys[0], &keys[1], arg, &keys[2], &keys[3],
            ]);
            assert!(
                matches!(reply, Frame::Int(_)),
                "run {run}: {}",
                show(&reply)
            );
        }
    }
    // Each script incremented its declared keys 4 times; the undeclared key of the
    // first script twice, the second script's MSET left its values.
    assert_eq!(c.cmd(&["GET", &keys[0]]), Frame::Bulk(b"8".to_vec()));
    assert_eq!(c.cmd(&["GET", &keys[1]]), Frame::Bulk(b"8".to_vec()));
    assert_eq!(c.cmd(&["GET", &keys[2]]), Frame::Bulk(b"x".to_vec()));
    assert_eq!(c.cmd(&["GET", &keys[3]]), Frame::Bulk(b"y".to_vec()));
}

/// Three shards. A script holding keys on shards 1 and 2 computes on core 0 (until
/// SCRIPT KILL). A script seen to keep to its keys that then reaches one of those
/// claimed keys: after a write, that command is refused (Redis would have run it);
/// before any write, the script runs again holding every shard, once the first one
/// has ended.
#[test]
fn a_script_holding_its_keys_that_reaches_a_claimed_key() {
    let server = Server::shardis_with(3, &["--busy-reply-threshold", "60000"]);
    // Shards 0, 1, 2, 0, 1, 2.
    let keys = keys_on_distinct_shards("c", 6, 3);
    let (k1, k2, k3, k4) = (&keys[1], &keys[2], &keys[4], &keys[5]);
    let mut runner = conn_on(&server, 0);
    let mut other = conn_on(&server, 1);
    let mut killer = conn_on(&server, 2);
    let computes = "redis.call('get', KEYS[1]) redis.call('get', KEYS[2]) \
        if ARGV[1] == 'loop' then while true do end end return 1";
    let writes_first = "redis.call('set', KEYS[1], 'w') \
        if ARGV[1] == 'far' then redis.call('get', ARGV[2]) end return 1";
    let reads_first = "if ARGV[1] == 'far' then redis.call('get', ARGV[2]) end \
        redis.call('set', KEYS[2], 'r') return 1";
    // First runs: each holds every shard and keeps to its keys.
    assert_eq!(
        runner.cmd(&["EVAL", computes, "2", k1, k2, "x"]),
        Frame::Int(1)
    );
    for script in [writes_first, reads_first] {
        assert_eq!(
            other.cmd(&["EVAL", script, "2", k3, k4, "near"]),
            Frame::Int(1)
        );
    }
    send(&mut runner, &["EVAL", computes, "2", k1, k2, "loop"]);
    thread::sleep(Duration::from_millis(200));
    match other.cmd(&["EVAL", writes_first, "2", k3, k4, "far", k1]) {
        Frame::Error(e) => assert!(
            e.starts_with("ERR Script attempted to access an undeclared key after writing"),
            "{e}"
        ),
        reply => panic!("{}", show(&reply)),
    }
    send(&mut other, &["EVAL", reads_first, "2", k3, k4, "far", k1]);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(killer.cmd(&["SCRIPT", "KILL"]), Frame::Simple("OK".into()));
    assert!(matches!(runner.read_frame(), Frame::Error(e) if e.starts_with("ERR Script killed")));
    assert_eq!(other.read_frame(), Frame::Int(1));
    assert_eq!(killer.cmd(&["GET", k3]), Frame::Bulk(b"w".to_vec()));
    assert_eq!(killer.cmd(&["GET", k4]), Frame::Bulk(b"r".to_vec()));
}

/// A busy script holding its declared keys makes its core's shard busy (commands on
/// the other shard's free keys run), answers `-BUSY` to a script sent to its shard,
/// and stops on SCRIPT KILL.
#[test]
fn a_busy_script_holding_its_keys_stops_on_script_kill() {
    let server = Server::shardis_with(2, &["--busy-reply-threshold", "100"]);
    let keys = keys_on_distinct_shards("b", 4, 2);
    let mut runner = conn_on(&server, 0);
    let mut other = conn_on(&server, 1);
    let script = "redis.call('get', KEYS[2]) \
        if redis.call('get', KEYS[1]) == 'loop' then while true do end end return 1";
    assert_eq!(
        runner.cmd(&["EVAL", script, "2", &keys[0], &keys[1]]),
        Frame::Int(1)
    );
    assert_eq!(
        runner.cmd(&["SET", &keys[0], "loop"]),
        Frame::Simple("OK".into())
    );
    send(&mut runner, &["EVAL", script, "2", &keys[0], &keys[1]]);
    thread::sleep(Duration::from_millis(300));
    let on_its_shard = "return redis.call('get', KEYS[1])";
    assert!(
        wait_until(Duration::from_secs(10), || {
            matches!(other.cmd(&["GET", &keys[2]]), Frame::Error(e) if e.starts_with("BUSY "))
        }),
        "no -BUSY for a key of the busy core's shard"
    );
    assert_eq!(
        other.cmd(&["SET", &keys[3], "v"]),
        Frame::Simple("OK".into())
    );
    // A script on one shard, run once holding every shard and then on the shard.
    assert!(matches!(
        other.cmd(&["EVAL", on_its_shard, "1", &keys[2]]),
        Frame::Error(e) if e.starts_with("BUSY ")
    ));
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]), Frame::Simple("OK".into()));
    assert!(matches!(runner.read_frame(), Frame::Error(e) if e.starts_with("ERR Script killed")));
    assert_eq!(
        other.cmd(&["EVAL", on_its_shard, "1", &keys[3]]),
        Frame::Bulk(b"v".to_vec())
    );
    assert_eq!(
        runner.cmd(&["GET", &keys[0]]),
        Frame::Bulk(b"loop".to_vec())
    );
}

#[test]
fn a_script_loaded_on_one_core_runs_on_every_core() {
    let server = Server::shardis(2);
    let (mut a, mut b) = (conn_on(&server, 0), conn_on(&server, 1));
    let sha = match a.cmd(&["SCRIPT", "LOAD", "return ARGV[1] .. '!'"]) {
        Frame::Bulk(s) => String::from_utf8(s).unwrap(),
        other => panic!("SCRIPT LOAD: {}", show(&other)),
    };
    assert_eq!(
        b.cmd(&["EVALSHA", &sha, "0", "hi"]),
        Frame::Bulk(b"hi!".to_vec())
    );
    // EVAL caches too; FLUSH on one core empties the cache for all of them.
    assert_eq!(b.cmd(&["EVAL", "return 42", "0"]), Frame::Int(42));
    let sha42 = "1fa00e76656cc152ad327c13fe365858fd7be306";
    assert_eq!(a.cmd(&["EVALSHA", sha42, "0"]), Frame::Int(42));
    let info =
        |c: &mut RawConn, field: &str| -> u64 { common::info_field(c, field).parse().unwrap() };
    assert_eq!(info(&mut a, "number_of_cached_scripts"), 2);
    assert!(info(&mut a, "used_memory_lua") > 0);
    assert!(info(&mut b, "used_memory_scripts_eval") > 0);
    assert_eq!(b.cmd(&["SCRIPT", "FLUSH"]), Frame::Simple("OK".into()));
    assert_eq!(info(&mut a, "number_of_cached_scripts"), 0);
    for c in [&mut a, &mut b] {
        assert!(
            matches!(c.cmd(&["EVALSHA", &sha, "0", "x"]), Frame::Error(e) if e.starts_with("NOSCRIPT"))
        );
    }
}

/// SCRIPT FLUSH resets the interpreters, as Redis resets its one ("reset Lua VM" in
/// Redis's own suite): the memory of scripts compiled on every core is given back,
/// not kept until Lua's collector gets round to it.
#[test]
fn script_flush_gives_the_interpreters_memory_back() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let mut conns = [
        ("redis", redis.raw()),
        ("shardis core 0", conn_on(&shardis, 0)),
        ("shardis core 1", conn_on(&shardis, 1)),
    ];
    let lua =
        |c: &mut RawConn| -> u64 { common::info_field(c, "used_memory_lua").parse().unwrap() };
    // 300 distinct scripts compiled on each core (run where their connection is).
    for (_, c) in conns.iter_mut() {
        for i in 0..300 {
            let script = format!("local t = {{}} for j = 1, {i} do t[j] = j end return #t");
            assert_eq!(c.cmd(&["EVAL", &script, "0"]), Frame::Int(i));
        }
    }
    // Redis: flush and run a script on its one connection. Shardis: flush through core
    // 0, run a script on core 1; used_memory_lua sums both cores' interpreters.
    for (flusher, runner) in [(0, 0), (1, 2)] {
        let full = lua(&mut conns[flusher].1);
        assert_eq!(
            conns[flusher].1.cmd(&["SCRIPT", "FLUSH"]),
            Frame::Simple("OK".into())
        );
        assert_eq!(
            conns[runner].1.cmd(&["EVAL", "return 1", "0"]),
            Frame::Int(1)
        );
        let after = lua(&mut conns[runner].1);
        assert!(
            after * 2 < full,
            "{}: used_memory_lua {full} with 300 scripts, {after} after SCRIPT FLUSH",
            conns[flusher].0
        );
    }
}

#[test]
fn a_replica_gets_a_scripts_effects_not_the_script() {
    let master = Server::shardis(2);
    let replica = Server::redis_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let keys = keys_on_distinct_shards("rk", 2, 2);
    let mut m = master.raw();
    let mut r = replica.raw();
    assert!(
        wait_until(Duration::from_secs(20), || {
            matches!(r.cmd(&["INFO", "replication"]), Frame::Bulk(b) | Frame::Verbatim(b)
                if String::from_utf8_lossy(&b).contains("master_link_status:up"))
        }),
        "the replica did not connect"
    );
    // Time and randomness stay on the master: the replica gets the values written.
    let script = "redis.call('set', KEYS[1], redis.call('time')[1] .. math.random()) \
                  redis.call('rpush', KEYS[2], 'a', 'b') \
                  redis.call('incr', KEYS[2])";
    let reply = m.cmd(&["EVAL", script, "2", &keys[0], &keys[1]]);
    assert!(
        matches!(&reply, Frame::Error(e) if e.starts_with("WRONGTYPE")),
        "{}",
        show(&reply)
    );
    assert_eq!(m.cmd(&["WAIT", "1", "5000"]), Frame::Int(1));
    // The writes before the error stay (no rollback), on both shards, and reached the
    // replica exactly.
    let value = m.cmd(&["GET", &keys[0]]);
    assert!(matches!(value, Frame::Bulk(_)));
    assert_eq!(r.cmd(&["GET", &keys[0]]), value);
    assert_eq!(
        r.cmd(&["LRANGE", &keys[1], "0", "-1"]),
        Frame::Array(vec![Frame::Bulk(b"a".to_vec()), Frame::Bulk(b"b".to_vec())])
    );
    // A script without flags may not write on the read-only replica: its writes get
    // `-READONLY` when they run (with flags it is refused before it starts).
    for call in ["call", "pcall"] {
        let script = format!("return redis.{call}('set', KEYS[1], 'replica')");
        let reply = r.cmd(&["EVAL", &script, "1", &keys[0]]);
        assert!(
            matches!(&reply, Frame::Error(e) if e.starts_with("READONLY You can't write")),
            "{}",
            show(&reply)
        );
    }
    assert_eq!(r.cmd(&["GET", &keys[0]]), value);
}

/// A connection that sent `argv` and has not read the reply yet.
fn send(c: &mut RawConn, argv: &[&str]) {
    let v: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
    c.send_cmd(&v);
}

/// Start, through `runner`, a script that never ends on `key`'s shard alone: its
/// first run holds every shard and finds it keeps to its key; the second loops there.
fn start_endless_script_on_its_shard(runner: &mut RawConn, key: &str) {
    let script = "if redis.call('GET', KEYS[1]) == 'loop' then while true do end end return 1";
    assert_eq!(runner.cmd(&["EVAL", script, "1", key]), Frame::Int(1));
    assert_eq!(
        runner.cmd(&["SET", key, "loop"]),
        Frame::Simple("OK".into())
    );
    send(runner, &["EVAL", script, "1", key]);
}

#[test]
fn a_busy_script_answers_busy_and_stops_on_script_kill() {
    let server = Server::shardis_with(2, &["--busy-reply-threshold", "100"]);
    let mut other = conn_on(&server, 1);
    assert_eq!(
        other.cmd(&["SCRIPT", "KILL"]),
        Frame::Error("NOTBUSY No scripts in execution right now.".into())
    );
    let mut runner = conn_on(&server, 0);
    // A loop, and loops that catch errors: Redis's kill error gets through pcall and
    // xpcall (it raises it again on every line).
    let loops = [
        "local i = 0 while true do i = i + 1 end",
        "local f = function() while 1 do redis.call('ping') end end while 1 do pcall(f) end",
        "while 1 do xpcall(function() while 1 do end end, function(e) return 'x' end) end",
    ];
    for script in loops {
        send(&mut runner, &["EVAL", script, "0"]);
        // Past the threshold, other clients are told why they cannot run. (A command
        // sent before it waits for the script, behind its claims: see the README.)
        thread::sleep(Duration::from_millis(300));
        assert!(
            wait_until(Duration::from_secs(10), || {
                matches!(other.cmd(&["GET", "x"]), Frame::Error(e) if e.starts_with("BUSY "))
            }),
            "no -BUSY while a script loops"
        );
        assert_eq!(other.cmd(&["SCRIPT", "KILL"]), Frame::Simple("OK".into()));
        match runner.read_frame() {
            Frame::Error(e) => assert!(
                e.starts_with("ERR Script killed by user with SCRIPT KILL... script: ")
                    && e.ends_with(", on @user_script:1."),
                "{script}: {e}"
            ),
            other => panic!("the killed script answered {}", show(&other)),
        }
        assert_eq!(other.cmd(&["GET", "x"]), Frame::NullBulk);
        assert_eq!(runner.cmd(&["PING"]), Frame::Simple("PONG".into()));
    }

    // A script that wrote cannot be killed; SHUTDOWN NOSAVE still stops the server.
    shutdown_nosave_stops_an_unkillable_script(server, runner, other);
}

/// Run a script that writes and then loops through `runner`: SCRIPT KILL from `other`
/// is refused, SHUTDOWN NOSAVE stops the server.
fn shutdown_nosave_stops_an_unkillable_script(
    mut server: Server,
    mut runner: RawConn,
    mut other: RawConn,
) {
    send(
        &mut runner,
        &[
            "EVAL",
            "redis.call('set', KEYS[1], '1') while true do end",
            "1",
            "w",
        ],
    );
    thread::sleep(Duration::from_millis(150));
    assert!(wait_until(Duration::from_secs(10), || {
        matches!(other.cmd(&["GET", "x"]), Frame::Error(e) if e.starts_with("BUSY "))
    }));
    assert!(
        matches!(other.cmd(&["SCRIPT", "KILL"]), Frame::Error(e) if e.starts_with("UNKILLABLE "))
    );
    other.send_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(
        server.wait_exit(Duration::from_secs(10)).is_some(),
        "SHUTDOWN NOSAVE did not stop a server running an unkillable script"
    );
}

/// A script that would hold every shard (here, one never seen), sent before a busy
/// script on one shard passes the threshold, is answered `-BUSY` when it passes, as by
/// Redis, instead of waiting behind it (for ever, for a script that never ends); after
/// SCRIPT KILL the same script runs. (Found with ioredis at the default threshold.)
#[test]
fn a_script_queued_behind_a_busy_script_gets_busy() {
    let server = Server::shardis_with(2, &["--busy-reply-threshold", "500"]);
    let keys = keys_on_distinct_shards("k", 2, 2);
    let (free, busy) = (&keys[0], &keys[1]);
    let mut runner = conn_on(&server, 1);
    // (Connected first: a new connection's CLIENT INFO would wait or be -BUSY too.)
    let mut queued: Vec<RawConn> = [0, 1].iter().map(|&core| conn_on(&server, core)).collect();
    let mut killer = conn_on(&server, 0);
    start_endless_script_on_its_shard(&mut runner, busy);
    thread::sleep(Duration::from_millis(100));
    let reader = "return redis.call('GET', KEYS[1]) or 'none'";
    for c in queued.iter_mut() {
        send(c, &["EVAL", reader, "1", free]);
    }
    for c in queued.iter_mut() {
        assert!(
            matches!(c.read_frame(), Frame::Error(e) if e.starts_with("BUSY ")),
            "a script queued before the threshold gets -BUSY once it passes"
        );
    }
    assert_eq!(killer.cmd(&["SCRIPT", "KILL"]), Frame::Simple("OK".into()));
    assert!(matches!(runner.read_frame(), Frame::Error(e) if e.contains("Script killed")));
    for c in queued.iter_mut() {
        assert_eq!(
            c.cmd(&["EVAL", reader, "1", free]),
            Frame::Bulk(b"none".to_vec())
        );
    }
}

/// A script whose keys share one shard runs there alone: past the threshold, commands
/// on that shard's keys get `-BUSY` (they would wait for it), commands on the other
/// shard's keys run, and SCRIPT KILL stops it.
#[test]
fn a_busy_script_on_one_shard_makes_only_that_shard_busy() {
    let server = Server::shardis_with(2, &["--busy-reply-threshold", "100"]);
    let keys = keys_on_distinct_shards("k", 2, 2);
    let (free, busy) = (&keys[0], &keys[1]);
    let mut runner = conn_on(&server, 0);
    let mut other = conn_on(&server, 0);
    start_endless_script_on_its_shard(&mut runner, busy);
    thread::sleep(Duration::from_millis(300));
    assert!(
        wait_until(Duration::from_secs(10), || {
            other.cmd(&["GET", busy])
                == Frame::Error(
                    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
                        .into(),
                )
        }),
        "no -BUSY for the busy shard's key"
    );
    assert_eq!(other.cmd(&["SET", free, "v"]), Frame::Simple("OK".into()));
    assert_eq!(other.cmd(&["GET", free]), Frame::Bulk(b"v".to_vec()));
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]), Frame::Simple("OK".into()));
    assert!(matches!(runner.read_frame(), Frame::Error(e) if e.starts_with("ERR Script killed")));
    assert_eq!(other.cmd(&["GET", busy]), Frame::Bulk(b"loop".to_vec()));
}

/// A client on the core a busy script runs on is answered too: the script is
/// suspended between slices once past the threshold, so `-BUSY`, SCRIPT KILL and
/// SHUTDOWN NOSAVE reach it. With one shard every client is on that core; the script
/// runs holding every shard the first time, and as a job of its shard after that.
#[test]
fn a_busy_script_lets_clients_of_its_own_core_kill_it() {
    let server = Server::shardis_with(1, &["--busy-reply-threshold", "100"]);
    let mut runner = server.raw();
    let mut other = server.raw();
    let script = "if redis.call('GET', KEYS[1]) == 'loop' then local i = 0 while true do i = i + 1 end end return 1";
    let busy = |c: &mut RawConn| {
        wait_until(Duration::from_secs(10), || {
            c.cmd(&["GET", "k"])
                == Frame::Error(
                    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
                        .into(),
                )
        })
    };
    // First run: holding every shard. Then (seen to keep to its key) on the shard.
    assert_eq!(
        runner.cmd(&["SET", "k", "loop"]),
        Frame::Simple("OK".into())
    );
    for run in ["holding every shard", "on its shard"] {
        send(&mut runner, &["EVAL", script, "1", "k"]);
        thread::sleep(Duration::from_millis(150));
        assert!(
            busy(&mut other),
            "no -BUSY for the script's own core ({run})"
        );
        // Keyless commands are busy too, as in Redis; MULTI is allowed.
        assert!(matches!(other.cmd(&["DBSIZE"]), Frame::Error(e) if e.starts_with("BUSY ")));
        assert!(matches!(other.cmd(&["PING"]), Frame::Error(e) if e.starts_with("BUSY ")));
        assert_eq!(
            other.cmd(&["SCRIPT", "KILL"]),
            Frame::Simple("OK".into()),
            "{run}"
        );
        match runner.read_frame() {
            Frame::Error(e) => assert!(e.starts_with("ERR Script killed by user"), "{run}: {e}"),
            f => panic!("{run}: the killed script answered {}", show(&f)),
        }
        assert_eq!(other.cmd(&["GET", "k"]), Frame::Bulk(b"loop".to_vec()));
        assert_eq!(runner.cmd(&["PING"]), Frame::Simple("PONG".into()));
    }
    // Redis's log line, once per script.
    assert_eq!(
        server
            .log_text()
            .matches(
                "Slow script detected: still in execution after 100 milliseconds. You can try \
                 killing the script using the SCRIPT KILL command. Script name is: "
            )
            .count(),
        2
    );
    // A script that wrote cannot be killed; SHUTDOWN NOSAVE still stops the server.
    shutdown_nosave_stops_an_unkillable_script(server, runner, other);
}

/// While a script on one shard is suspended, the other shard's keys are served, from
/// both cores, and the busy shard's work waits for the script, not interleaved with
/// it: a script that counts a key up ends with the count it wrote. The script's
/// caller is on the shard's core, then on the other one.
#[test]
fn a_suspended_script_on_one_shard_stays_atomic() {
    let server = Server::shardis_with(2, &["--busy-reply-threshold", "50"]);
    let keys = keys_on_distinct_shards("a", 2, 2);
    let (free, busy) = (&keys[0], &keys[1]);
    let script = "for i = 1, tonumber(ARGV[1]) do redis.call('INCR', KEYS[1]) end \
        return tonumber(redis.call('GET', KEYS[1]))";
    for caller in [1, 0] {
        let mut runner = conn_on(&server, caller);
        let mut here = conn_on(&server, 1);
        let mut there = conn_on(&server, 0);
        assert_eq!(runner.cmd(&["SET", busy, "0"]), Frame::Simple("OK".into()));
        // Its first run holds every shard; it runs on its key's shard after that.
        assert_eq!(runner.cmd(&["EVAL", script, "1", busy, "1"]), Frame::Int(1));
        assert_eq!(runner.cmd(&["SET", busy, "0"]), Frame::Simple("OK".into()));
        // Seen once, so that it runs on its shard alone from now on.
        let read = "return redis.call('GET', KEYS[1])";
        assert_eq!(there.cmd(&["SET", free, "v"]), Frame::Simple("OK".into()));
        assert_eq!(
            there.cmd(&["EVAL", read, "1", free]),
            Frame::Bulk(b"v".to_vec())
        );
        send(&mut runner, &["EVAL", script, "1", busy, "2000000"]);
        thread::sleep(Duration::from_millis(100));
        for c in [&mut here, &mut there] {
            assert_eq!(c.cmd(&["SET", free, "v"]), Frame::Simple("OK".into()));
            assert!(
                matches!(c.cmd(&["INCR", busy]), Frame::Error(e) if e.starts_with("BUSY ")),
                "caller on core {caller}: no -BUSY for the busy shard's key"
            );
        }
        // Scripts on the free shard's key. On the busy script's core its interpreters
        // are in use: -BUSY, as Redis answers any script then (it used to wait for the
        // busy one to end). On the other core a script known to stay on its shard
        // runs; one never seen, whose first run would hold every shard (the busy one
        // too), gets -BUSY instead of waiting.
        assert!(
            matches!(here.cmd(&["EVAL", read, "1", free]), Frame::Error(e) if e.starts_with("BUSY ")),
            "caller on core {caller}: a script on the busy core waited"
        );
        assert_eq!(
            there.cmd(&["EVAL", read, "1", free]),
            Frame::Bulk(b"v".to_vec())
        );
        let unseen = format!("return redis.call('EXISTS', KEYS[1]) -- {caller}");
        assert!(
            matches!(there.cmd(&["EVAL", &unseen, "1", free]), Frame::Error(e) if e.starts_with("BUSY ")),
            "caller on core {caller}: a script holding every shard waited"
        );
        assert_eq!(
            runner.read_frame(),
            Frame::Int(2000000),
            "caller on core {caller}"
        );
        assert_eq!(here.cmd(&["GET", busy]), Frame::Bulk(b"2000000".to_vec()));
    }
}

/// redis-py's `Lock` (acquire is SET NX PX; release, extend and reacquire are Lua
/// scripts run with EVALSHA, EVAL after NOSCRIPT) guarding a read-modify-write from
/// four threads: the count is exact only if no grant is lost or doubled. redis-py
/// 8.1.0 comes with the tests as a wheel (Python imports from it directly).
#[test]
fn redis_py_locks_count_exactly() {
    let server = Server::shardis(2);
    let text = common::python_client("lock_contention.py", &[server.port.to_string()]);
    assert_eq!(
        text.trim(),
        "counter=160 extended=16 reacquired=16 stolen=2"
    );
}

/// `redis.set_repl` sends a script's later writes to the AOF, the replicas, both or
/// neither, on a script of one shard and on one holding every shard: what reaches the
/// replica and the AOF is what redis-server sends.
#[test]
fn set_repl_chooses_where_writes_go_as_redis() {
    let script = "\
        redis.set_repl(redis.REPL_NONE) redis.call('SET', KEYS[1], 'x') \
        redis.set_repl(redis.REPL_AOF) redis.call('SET', KEYS[2], 'x') \
        redis.set_repl(redis.REPL_REPLICA) redis.call('SET', KEYS[3], 'x') \
        redis.set_repl(redis.REPL_ALL) redis.call('SET', KEYS[4], 'x') \
        return 1";
    let undeclared = "\
        redis.set_repl(redis.REPL_NONE) redis.call('SET', 'wide:none', 'x') \
        redis.set_repl(redis.REPL_AOF) redis.call('SET', 'wide:aof', 'x') \
        redis.set_repl(redis.REPL_REPLICA) redis.call('SET', 'wide:replica', 'x') \
        redis.set_repl(redis.REPL_ALL) redis.call('SET', 'wide:all', 'x') \
        return 1";
    let mut seen = Vec::new();
    for master in [
        Server::redis_with(&["--appendonly", "yes", "--enable-debug-command", "yes"]),
        Server::shardis_with(2, &["--appendonly", "yes"]),
    ] {
        let replica = Server::redis_with(&["--enable-debug-command", "yes"]);
        common::follow(&replica, &master);
        let mut m = master.raw();
        let keys = ["{t}none", "{t}aof", "{t}replica", "{t}all"];
        let mut argv = vec!["EVAL", script, "4"];
        argv.extend(keys);
        let mut out = vec![show(&m.cmd(&argv))];
        out.push(show(&m.cmd(&["EVAL", undeclared, "0"])));
        out.push(show(&m.cmd(&["EVAL", "redis.set_repl(7)", "0"])));
        out.push(show(&m.cmd(&["SET", "after", "x"])));
        let mut r = replica.raw();
        assert!(common::wait_until(Duration::from_secs(10), || {
            r.cmd(&["EXISTS", "after"]) == Frame::Int(1)
        }));
        let names = [
            "{t}none",
            "{t}aof",
            "{t}replica",
            "{t}all",
            "wide:none",
            "wide:aof",
            "wide:replica",
            "wide:all",
        ];
        let on_replica: Vec<&str> = names
            .iter()
            .copied()
            .filter(|k| r.cmd(&["EXISTS", k]) == Frame::Int(1))
            .collect();
        out.push(format!("replica: {on_replica:?}"));
        // Redis may hold its AOF writes back while a background fsync runs: wait
        // for the last write to be in the file.
        let has = |aof: &[u8], k: &str| {
            let needle = format!("${}\r\n{k}\r\n", k.len());
            aof.windows(needle.len()).any(|w| w == needle.as_bytes())
        };
        assert!(common::wait_until(Duration::from_secs(10), || has(
            &common::files_under(master.dir()),
            "after"
        )));
        let aof = common::files_under(master.dir());
        let in_aof: Vec<&str> = names.iter().copied().filter(|k| has(&aof, k)).collect();
        out.push(format!("aof: {in_aof:?}"));
        seen.push(out);
    }
    assert_eq!(seen[0], seen[1]);
}

/// cjson's configuration functions, as lua-cjson in Redis 7.0: each setting's checks
/// and errors, its effect on encode / decode, `cjson.new()` with its own settings, and
/// a setting made by one script holding for the next one on any connection (one
/// interpreter in Redis; on every core here) until SCRIPT FLUSH. Also strtod's view of
/// numbers that strict JSON refuses, and shebang lines split as `sdssplitargs`.
#[test]
fn cjson_settings_and_shebangs_as_redis() {
    let mut duo = Duo::new(Server::shardis(2), 4);
    let eval = |c: usize, body: &str| step(c, &["EVAL", body, "0"]);
    let sparse = "return cjson.encode({1,2,nil,nil,nil,nil,nil,nil,nil,nil,nil,nil,13})";
    let steps = vec![
        eval(
            0,
            "local t = cjson.decode('[1, 0x10, +2, 01, -inf, Infinity, 0x1.8p1]') \
                 return {t[1], t[2], t[3], t[4], tostring(t[5]), tostring(t[6]), t[7]}",
        ),
        eval(0, "return cjson.decode('[.5]')"),
        eval(0, sparse),
        eval(0, "return {cjson.encode_sparse_array()}"),
        eval(0, "return {cjson.encode_sparse_array(true, 'a')}"),
        eval(0, "return {cjson.encode_sparse_array(1)}"),
        eval(0, "return cjson.encode_max_depth('x')"),
        eval(0, "return cjson.encode_max_depth(0)"),
        eval(0, "return cjson.encode_max_depth(1, 2)"),
        eval(0, "return cjson.encode_invalid_numbers('maybe')"),
        eval(0, "return cjson.encode_invalid_numbers({})"),
        eval(0, "return cjson.encode({1/0})"),
        // Set on one connection, seen on all.
        eval(
            0,
            "cjson.encode_sparse_array(true) return cjson.encode_invalid_numbers('null')",
        ),
        eval(1, sparse),
        eval(2, "return cjson.encode({1/0, 0/0})"),
        eval(
            3,
            "cjson.encode_invalid_numbers(true) return cjson.encode({1/0, -1/0, {[1/0]=1}})",
        ),
        eval(
            1,
            "cjson.encode_invalid_numbers(false) return cjson.encode_number_precision(3)",
        ),
        eval(2, "return cjson.encode({3.14159, 123456})"),
        eval(
            3,
            "cjson.encode_number_precision(14) return cjson.encode_keep_buffer(false)",
        ),
        eval(0, "return tostring(cjson.encode_keep_buffer())"),
        eval(
            1,
            "cjson.decode_invalid_numbers(false) return {pcall(cjson.decode, '[0x10]')}",
        ),
        eval(2, "return {pcall(cjson.decode, '[+1]')}"),
        eval(
            3,
            "cjson.decode_invalid_numbers(true) cjson.decode_max_depth(2) \
                 return {pcall(cjson.decode, '[[[1]]]')}",
        ),
        eval(
            0,
            "cjson.decode_max_depth(1000) cjson.encode_max_depth(2) \
                 return {pcall(cjson.encode, {{{1}}})}",
        ),
        eval(
            1,
            "cjson.encode_max_depth(1000) local j = cjson.new() j.encode_max_depth(1) \
                 return {pcall(j.encode, {{1}}), cjson.encode({{1}})}",
        ),
        // SCRIPT FLUSH starts Redis's interpreter afresh: the defaults are back.
        eval(2, "return cjson.encode_number_precision(5)"),
        step(3, &["SCRIPT", "FLUSH"]),
        eval(0, "return cjson.encode(3.14159)"),
        eval(1, sparse),
        // Shebangs: quotes, a missing newline, empty flags.
        step(0, &["EVAL", "#!lua flags=\"no-writes\"\nreturn 1", "0"]),
        step(
            0,
            &["EVAL", "#!lua \"flags=no-writes,allow-oom\"\nreturn 2", "0"],
        ),
        step(0, &["EVAL", "#!lua flags=\"no-writes\nreturn 1", "0"]),
        step(0, &["EVAL", "#!lua flags=no-writes", "0"]),
        step(0, &["EVAL", "#!lua flags=\nreturn 3", "0"]),
        step(0, &["EVAL", "#!lua flags=no-writes,\nreturn 4", "0"]),
        step(0, &["EVAL", "#!\"lua\"\nreturn 5", "0"]),
        step(
            0,
            &[
                "FUNCTION",
                "LOAD",
                "#!lua name=\"q\"\nredis.register_function('q', function() return 1 end)",
            ],
        ),
        step(
            0,
            &[
                "FUNCTION",
                "LOAD",
                "#!lua name='q2' \"\"\nredis.register_function('q2', function() return 1 end)",
            ],
        ),
        step(
            0,
            &[
                "FUNCTION",
                "LOAD",
                "#!lua name=\"q3\nredis.register_function('q3', function() return 1 end)",
            ],
        ),
        step(1, &["FCALL", "q", "0"]),
        // A big map packs and unpacks (it once ran out of Lua references).
        eval(
            0,
            "local m = {} for i = 1, 100000 do m[tostring(i)] = i end \
                 local e = cmsgpack.pack({m1 = m}) local d = cmsgpack.unpack(e) \
                 local n = 0 for _ in pairs(d.m1) do n = n + 1 end return {#e, n}",
        ),
        // The globals' metatable is read-only.
        eval(0, "return type(getmetatable(_G))"),
        eval(0, "local g = getmetatable(_G) g.__index = {}"),
        eval(0, "getmetatable(_G).x = 1"),
        eval(0, "setmetatable(_G, {})"),
    ];
    duo.run("cjson and shebangs", &steps);
}
