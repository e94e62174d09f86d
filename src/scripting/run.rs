//! Running a script: holding every shard, and `redis.call` from inside it.
//!
//! [`eval`] takes the shards (one transaction over all of them, see the module plan in
//! `scripting`), puts what `redis.call` needs in this thread's [`Running`] slot, runs
//! the compiled function on this thread's interpreter, then releases. While the slot is
//! filled, [`call_from_script`] runs each command synchronously: a command for this
//! core's shard inline, one for another core's shard as a hop whose answer this thread
//! waits for (`Answer::wait`), a command over several shards or a server-wide one by
//! driving its future to completion here (its hops are answered by the other cores,
//! which the script holds but does not occupy).

use super::convert;
use super::engine::{self, Outcome};
use crate::client::ClientRef;
use crate::commands::{errors, traits, Command, Exec};
use crate::protocol::Reply;
use crate::runtime::admission;
use crate::runtime::transaction::{self, Tx};
use crate::runtime::Shards;
use crate::shard::propagation::Effect;
use crate::shard::Shard;
use bytes::Bytes;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A script runs somewhere (at most one at a time: each holds every shard).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The running script has run a write (SCRIPT KILL then refuses).
static WROTE: AtomicBool = AtomicBool::new(false);
/// SCRIPT KILL asked the running script to stop; its interpreter's hook sees it.
static KILL: AtomicBool = AtomicBool::new(false);

/// When the running script started (ms), 0 when none runs.
static STARTED_MS: AtomicU64 = AtomicU64::new(0);

/// True while a script has run longer than `busy-reply-threshold`: other clients then
/// get `-BUSY` (see `runtime::admission`), except for the commands flagged
/// `allow_busy` (SCRIPT KILL, SHUTDOWN...). The script's own core answers nothing
/// until it ends; the others answer at once instead of queueing behind it.
pub fn busy(server: &crate::runtime::ServerInfo) -> bool {
    let started = STARTED_MS.load(Ordering::Relaxed);
    if started == 0 {
        return false;
    }
    let limit = server.config.current().get_int("busy-reply-threshold");
    limit > 0 && crate::clock::now_ms().saturating_sub(started) >= limit as u64
}

/// SCRIPT KILL, from a client on another core (the script's own core is busy with it).
pub fn kill() -> Reply {
    if !ACTIVE.load(Ordering::SeqCst) {
        return Reply::err("NOTBUSY No scripts in execution right now.");
    }
    if WROTE.load(Ordering::SeqCst) {
        return Reply::err(
            "UNKILLABLE Sorry the script already executed write commands against the \
             dataset. You can either wait the script termination or kill the server in a \
             hard way using the SHUTDOWN NOSAVE command.",
        );
    }
    KILL.store(true, Ordering::SeqCst);
    Reply::ok()
}

/// True once SCRIPT KILL asked the running script to stop.
pub fn kill_requested() -> bool {
    KILL.load(Ordering::Relaxed)
}

/// What `redis.call` needs while a script runs on this thread.
struct Running {
    /// The handle the script's commands go through: its own transaction's, or that
    /// of the EXEC it is queued in (which already holds every shard).
    shards: Shards,
    /// The script's own transaction, released when it ends (none inside EXEC).
    own: Option<Tx>,
    client: ClientRef,
    /// The script's own database (SELECT in a script does not change the caller's).
    db: usize,
    /// EVAL_RO, EVALSHA_RO, or `#!lua flags=no-writes`.
    read_only: bool,
    /// The protocol replies reach the script in (`redis.setresp`).
    resp: u8,
}

thread_local! {
    static RUNNING: RefCell<Option<Running>> = const { RefCell::new(None) };
}

/// What EVAL was asked to run.
pub struct Script {
    pub sha: String,
    pub body: Bytes,
    pub keys: Vec<Bytes>,
    pub args: Vec<Bytes>,
    pub read_only: bool,
}

/// Run `script` atomically over every shard and return its reply.
pub async fn eval(client: &ClientRef, shards: &Shards, script: Script) -> Reply {
    // Compile first: a script that does not compile holds nothing.
    let compiled = engine::with(|e| e.function(&script.sha, &script.body));
    let f = match compiled {
        Ok(f) => f,
        Err(msg) => return convert::error_line(&msg),
    };
    // Inside EXEC the transaction already holds every shard (a queued EVAL makes it
    // server-wide); asking again would wait for itself.
    let (handle, own) = match (shards.tx, &shards.tx_log) {
        (Some(id), Some(log)) => (shards.for_tx(id, log.clone()), None),
        _ => {
            let all: Vec<usize> = (0..shards.count()).collect();
            let tx = Tx::begin(shards, &all).await;
            (tx.shards.for_tx(tx.id, tx.log.clone()), Some(tx))
        }
    };
    let caller_db = client.borrow().db;
    RUNNING.with(|r| {
        *r.borrow_mut() = Some(Running {
            shards: handle,
            own,
            client: client.clone(),
            db: caller_db,
            read_only: script.read_only,
            resp: 2,
        })
    });
    WROTE.store(false, Ordering::SeqCst);
    KILL.store(false, Ordering::SeqCst);
    ACTIVE.store(true, Ordering::SeqCst);
    STARTED_MS.store(crate::clock::now_ms().max(1), Ordering::SeqCst);
    let outcome = engine::with(|e| {
        let outcome = e.call(&f, &script.keys, &script.args);
        match outcome {
            // Booleans follow the script's protocol (`redis.setresp`), as in Redis.
            Ok(Outcome::Returned(v)) => convert::lua_to_reply(&v, script_resp()),
            Ok(Outcome::Failed(err)) => engine::failure_reply(&err, &script.sha),
            Err(e) => convert::error_line(&format!("ERR {e}")),
        }
    });
    ACTIVE.store(false, Ordering::SeqCst);
    STARTED_MS.store(0, Ordering::SeqCst);
    KILL.store(false, Ordering::SeqCst);
    let running = RUNNING
        .with(|r| r.borrow_mut().take())
        .expect("the running script's slot is ours until it ends");
    client.borrow_mut().db = caller_db;
    if let Some(tx) = running.own {
        tx.finish().await;
    }
    outcome
}

/// The protocol the running script chose with `redis.setresp` (2 by default).
fn script_resp() -> u8 {
    RUNNING.with(|r| r.borrow().as_ref().map_or(2, |run| run.resp))
}

/// `redis.setresp`: the protocol later replies reach the script in.
pub fn set_resp(v: u8) {
    RUNNING.with(|r| {
        if let Some(run) = r.borrow_mut().as_mut() {
            run.resp = v;
        }
    });
}

/// `redis.call` / `redis.pcall`'s common part: the reply as a Lua value, and whether
/// the error (if it is one) must be raised even by `pcall` (bad arguments).
pub fn call_from_script(
    lua: &mlua::Lua,
    args: mlua::MultiValue,
) -> mlua::Result<(mlua::Value, bool)> {
    let hard = |msg: &str| Ok((convert::tagged(lua, "err", msg)?, true));
    if args.is_empty() {
        return hard("ERR Please specify at least one argument for this redis lib call");
    }
    let mut argv = Vec::with_capacity(args.len());
    for a in args.iter() {
        match a {
            mlua::Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            mlua::Value::Number(n) => argv.push(Bytes::from(number_arg(*n))),
            mlua::Value::Integer(n) => argv.push(Bytes::from(n.to_string())),
            _ => return hard("ERR Lua redis lib command arguments must be strings or integers"),
        }
    }
    let done = RUNNING.with(|r| {
        let mut slot = r.borrow_mut();
        let run = slot.as_mut()?;
        let reply = execute(run, argv);
        Some((reply, run.resp))
    });
    match done {
        Some((reply, resp)) => Ok((convert::reply_to_lua(lua, &reply, resp)?, false)),
        None => hard("ERR redis.call is only available inside a running script"),
    }
}

/// A Lua number as a command argument: C's `%.17g`, as Redis formats it.
pub fn number_arg(n: f64) -> String {
    format_g(n, 17)
}

/// C's `%.<digits>g` (Lua's own `tostring` is `%.14g`).
pub fn format_g(n: f64, digits: i32) -> String {
    if !n.is_finite() {
        return if n.is_nan() {
            "nan".into()
        } else if n > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{n:.prec$e}", prec = (digits - 1) as usize);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..digits).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        let decimals = (digits - 1 - exp).max(0) as usize;
        trim(&format!("{n:.decimals$}"))
    }
}

/// Run one command of a script, as EXEC runs a queued command.
fn execute(run: &mut Running, argv: Vec<Bytes>) -> Reply {
    let cmd: &'static Command = match admission::resolve(&argv) {
        Ok(cmd) => cmd,
        Err((_, Some(cmd))) if !cmd.arity_ok(argv.len()) => {
            return Reply::err("ERR Wrong number of args calling Redis command from script")
        }
        Err(_) => return Reply::err("ERR Unknown Redis command called from script"),
    };
    if cmd.has_flag("noscript") {
        return Reply::err("ERR This Redis command is not allowed from script");
    }
    if run.read_only && cmd.is_write() {
        return Reply::err("ERR Write commands are not allowed from read-only scripts.");
    }
    if cmd.is_write() {
        WROTE.store(true, Ordering::SeqCst);
    }
    let t = &run.shards;
    let start = std::time::Instant::now();
    let reply = match cmd.exec {
        Exec::Shard(_) => {
            let (db, no_touch, id) = {
                let c = run.client.borrow();
                (run.db, c.no_touch, c.id)
            };
            match transaction::shards_of(t, cmd, &argv) {
                Some(v) if v.len() > 1 => {
                    let f = crate::runtime::multishard::run(t, cmd, db, &argv, no_touch, id);
                    return futures_lite::future::block_on(f);
                }
                v => {
                    let sid = v.and_then(|v| v.first().copied()).unwrap_or(t.local_id);
                    let job =
                        move |s: &mut Shard| transaction::run_in_tx(s, db, cmd, argv, no_touch, id);
                    return t.send_or_local(sid, job).wait();
                }
            }
        }
        Exec::Conn(f) => {
            let mut c = run.client.borrow_mut();
            c.db = run.db;
            let reply = f(&mut c, &argv);
            if cmd.has_trait(traits::SELECTS_DB) {
                run.db = c.db;
            }
            reply
        }
        Exec::Server(f) => {
            let reply = futures_lite::future::block_on(f(&run.client, t, &argv));
            if cmd.is_write() && !reply.is_error() && crate::runtime::call::propagating(&t.server) {
                let all: Vec<usize> = (0..t.count()).collect();
                let effect = Effect {
                    db: run.db,
                    argv: argv.clone(),
                };
                if let Some(log) = &run.shards.tx_log {
                    log.push(&all, [effect]);
                }
            }
            reply
        }
        Exec::Container => errors::syntax(),
    };
    crate::runtime::call::record_stats(&mut t.local.borrow_mut(), cmd, start, &reply);
    reply
}

#[cfg(test)]
mod tests {
    use super::number_arg;

    #[test]
    fn numbers_are_formatted_as_printf_17g() {
        for (n, want) in [
            (3.0, "3"),
            (3.5, "3.5"),
            (0.1, "0.10000000000000001"),
            (100.0, "100"),
            (1e17, "1e+17"),
            (1e16, "10000000000000000"),
            (-2.5e-5, "-2.5000000000000001e-05"),
            (0.0001, "0.0001"),
            (1.0 / 3.0, "0.33333333333333331"),
        ] {
            assert_eq!(number_arg(n), want, "{n}");
        }
        assert_eq!(super::format_g(0.1, 14), "0.1");
        assert_eq!(super::format_g(1e15, 14), "1e+15");
    }
}
