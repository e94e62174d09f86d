//! Scripts for the differential test: EVAL, EVAL_RO and FCALL whose bodies run a few of
//! the generator's own commands through `redis.call` or `redis.pcall`, so every
//! command the generator knows is also checked as a script runs it (conversions of its
//! reply, its errors caught or raised with the script's line, SELECT inside a script,
//! commands refused in scripts or in read-only ones), and the script's effects are
//! checked where they land: the keyspace, and the replicas.
//!
//! The commands are written into the body as Lua string literals, so a body (a sha)
//! always touches the same keys: where Shardis runs a script is learnt per sha, and
//! Redis has no such notion. The declared keys are drawn apart from the body (some
//! on the body's shard, some not, sometimes none), so both the one-shard path and the
//! every-shard path run. Only commands whose replies are compared exactly are used.
//! FUNCTION LOAD REPLACE now and then makes the same kind of body an FCALL'able
//! function, `f1`, of the library `difflib`.

use super::{Argv, Cmp, Gen};
use rand::Rng;

/// A Lua string literal holding `bytes` exactly.
fn literal(bytes: &[u8]) -> String {
    let mut s = String::from("'");
    for &b in bytes {
        match b {
            b'\'' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\{b}")),
        }
    }
    s.push('\'');
    s
}

/// 1 to 4 commands whose replies are compared exactly.
fn inner_commands(g: &mut Gen) -> Vec<Argv> {
    let n = g.rng.gen_range(1..=4);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        for _attempt in 0..20 {
            let (argv, cmp) = g.command_any();
            if matches!(cmp, Cmp::Exact) && !argv[0].eq_ignore_ascii_case(b"eval") {
                out.push(argv);
                break;
            }
        }
    }
    if out.is_empty() {
        out.push(vec![b"GET".to_vec(), g.key()]);
    }
    out
}

/// Statements running `cmds`, collecting their replies in `r`, then `return r` (or, at
/// times, the last reply alone).
fn body(g: &mut Gen, cmds: &[Argv]) -> String {
    let mut s = String::from("local r = {}\n");
    for (i, argv) in cmds.iter().enumerate() {
        let call = if g.chance(0.8) { "pcall" } else { "call" };
        let args: Vec<String> = argv.iter().map(|a| literal(a)).collect();
        s.push_str(&format!(
            "r[{}] = redis.{call}({})\n",
            i + 1,
            args.join(", ")
        ));
    }
    if g.chance(0.2) {
        s.push_str(&format!("return r[{}]", cmds.len()));
    } else {
        s.push_str("return r");
    }
    s
}

pub fn command(g: &mut Gen) -> Option<(Argv, Cmp)> {
    let cmds = inner_commands(g);
    let code = body(g, &cmds);
    let numkeys = g.rng.gen_range(0..=2);
    let keys: Vec<Vec<u8>> = (0..numkeys).map(|_| g.key()).collect();
    let mut argv: Argv = match g.rng.gen_range(0..10) {
        0 => {
            let lib = format!(
                "#!lua name=difflib\nredis.register_function('f1', function(KEYS, ARGV)\n{code}\nend)"
            );
            return Some((
                vec![
                    b"FUNCTION".to_vec(),
                    b"LOAD".to_vec(),
                    b"REPLACE".to_vec(),
                    lib.into_bytes(),
                ],
                Cmp::Exact,
            ));
        }
        1 | 2 => vec![b"FCALL".to_vec(), b"f1".to_vec()],
        3 => vec![b"EVAL_RO".to_vec(), code.into_bytes()],
        _ => vec![b"EVAL".to_vec(), code.into_bytes()],
    };
    argv.push(numkeys.to_string().into_bytes());
    argv.extend(keys);
    if g.chance(0.3) {
        argv.push(g.value());
    }
    Some((argv, Cmp::Exact))
}
