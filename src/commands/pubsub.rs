//! Pub/Sub commands (Redis's `pubsub.c`): SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE,
//! PUNSUBSCRIBE, SSUBSCRIBE, SUNSUBSCRIBE, PUBLISH, SPUBLISH and the PUBSUB
//! subcommands.
//!
//! Thin: each parses its arguments and calls `runtime::pubsub`, which owns the per-core
//! registries and the fan-out across cores (its module doc says where things live).
//! The one idea to hold: a subscribe-family reply is several replies in a row, one per
//! name ([`Reply::Sequence`] of pushes: `>3` in RESP3, `*3` in RESP2), and the count
//! it carries is channels + patterns, shard channels counted apart, as Redis 7.0.
//! Without cluster mode shard channels are one more namespace, as in a standalone
//! Redis 7.0: SPUBLISH reaches SSUBSCRIBErs only, and no slot checks apply.

use super::{errors, traits, Command, Exec, LocalBoxFuture};
use crate::client::{ClientRef, Subscription};
use crate::protocol::Reply;
use crate::runtime::{pubsub, Shards};
use crate::shard::propagation::Effect;
use bytes::Bytes;

const SUB: &str = "pubsub noscript loading stale";
const SUB_ACL: &str = "pubsub slow";
const PUB: &str = "pubsub loading stale fast";
const PUB_ACL: &str = "pubsub fast";
const INTRO: &str = "pubsub loading stale";

pub static COMMANDS: &[Command] = &[
    Command::new("subscribe", -2, SUB, SUB_ACL, Exec::Server(subscribe))
        .traits(traits::SUBSCRIBE_CONTEXT),
    Command::new("unsubscribe", -1, SUB, SUB_ACL, Exec::Server(unsubscribe))
        .traits(traits::SUBSCRIBE_CONTEXT),
    Command::new("psubscribe", -2, SUB, SUB_ACL, Exec::Server(psubscribe))
        .traits(traits::SUBSCRIBE_CONTEXT),
    Command::new("punsubscribe", -1, SUB, SUB_ACL, Exec::Server(punsubscribe))
        .traits(traits::SUBSCRIBE_CONTEXT),
    // The shard forms name their channels as keys (COMMAND INFO, cluster clients);
    // as `Server` commands they are not routed by them.
    Command::new("ssubscribe", -2, SUB, SUB_ACL, Exec::Server(ssubscribe))
        .keys(1, -1, 1)
        .traits(traits::SUBSCRIBE_CONTEXT),
    Command::new("sunsubscribe", -1, SUB, SUB_ACL, Exec::Server(sunsubscribe))
        .keys(1, -1, 1)
        .traits(traits::SUBSCRIBE_CONTEXT),
    // Their handlers serve MULTI/EXEC; elsewhere `dispatch` batches them (the traits).
    Command::new("publish", 3, PUB, PUB_ACL, Exec::Server(publish))
        .traits(traits::PUBLISHES | traits::MAY_REPLICATE),
    Command::new("spublish", 3, PUB, PUB_ACL, Exec::Server(spublish))
        .keys(1, 1, 1)
        .traits(traits::PUBLISHES_SHARD | traits::MAY_REPLICATE),
    Command::new("pubsub", -2, "", "slow", Exec::Container).subcommands(PUBSUB),
];

static PUBSUB: &[Command] = &[
    Command::new(
        "pubsub|channels",
        -2,
        INTRO,
        SUB_ACL,
        Exec::Server(pubsub_channels),
    ),
    Command::new(
        "pubsub|shardchannels",
        -2,
        INTRO,
        SUB_ACL,
        Exec::Server(pubsub_shardchannels),
    ),
    Command::new(
        "pubsub|numsub",
        -2,
        INTRO,
        SUB_ACL,
        Exec::Server(pubsub_numsub),
    ),
    Command::new(
        "pubsub|shardnumsub",
        -2,
        INTRO,
        SUB_ACL,
        Exec::Server(pubsub_shardnumsub),
    ),
    Command::new(
        "pubsub|numpat",
        2,
        INTRO,
        SUB_ACL,
        Exec::Server(pubsub_numpat),
    ),
    Command::new(
        "pubsub|help",
        2,
        "loading stale",
        "slow",
        Exec::Server(pubsub_help),
    ),
];

/// The handlers that differ only by the kind of subscription they serve.
macro_rules! kind_command {
    ($name:ident, $op:ident, $kind:ident) => {
        fn $name<'a>(
            c: &'a ClientRef,
            s: &'a Shards,
            argv: &'a [Bytes],
        ) -> LocalBoxFuture<'a, Reply> {
            Box::pin($op(c, s, Subscription::$kind, argv))
        }
    };
}

kind_command!(subscribe, subscribing, Channel);
kind_command!(psubscribe, subscribing, Pattern);
kind_command!(ssubscribe, subscribing, ShardChannel);
kind_command!(unsubscribe, unsubscribing, Channel);
kind_command!(punsubscribe, unsubscribing, Pattern);
kind_command!(sunsubscribe, unsubscribing, ShardChannel);
kind_command!(publish, publish_to, Channel);
kind_command!(spublish, publish_to, ShardChannel);
kind_command!(pubsub_channels, active, Channel);
kind_command!(pubsub_shardchannels, active, ShardChannel);
kind_command!(pubsub_numsub, numsub, Channel);
kind_command!(pubsub_shardnumsub, numsub, ShardChannel);

/// (P|S)SUBSCRIBE name ...: answered at once (it never leaves the core). SSUBSCRIBE
/// is refused inside EXEC, as Redis 7.0 refuses it to a client that expects one reply
/// per command (SUBSCRIBE and PSUBSCRIBE are let through there).
async fn subscribing(c: &ClientRef, s: &Shards, kind: Subscription, argv: &[Bytes]) -> Reply {
    if kind == Subscription::ShardChannel && c.borrow().deny_blocking {
        return Reply::err("ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client");
    }
    pubsub::subscribe(c, s, kind, &argv[1..])
}

/// (P|S)UNSUBSCRIBE [name ...]: answered at once.
async fn unsubscribing(c: &ClientRef, s: &Shards, kind: Subscription, argv: &[Bytes]) -> Reply {
    pubsub::unsubscribe(c, s, kind, &argv[1..])
}

/// PUBLISH / SPUBLISH channel message: the number of receivers.
/// Where a PUBLISH goes besides this server's subscribers: in cluster mode to the
/// other nodes over the bus, otherwise to replicas in the replication stream (Redis
/// does one or the other).
pub fn propagate(c: &ClientRef, s: &Shards, kind: Subscription, argv: &[Bytes]) {
    if crate::cluster::enabled() {
        let shard = kind == Subscription::ShardChannel;
        crate::cluster::propagate_publish(shard, &argv[1], &argv[2]);
    } else if let Some(log) = &s.tx_log {
        // In EXEC or a script: with the transaction's records, in its place, for the
        // replicas only (Redis propagates PUBLISH with PROPAGATE_REPL).
        if crate::runtime::call::propagating(&s.server) {
            let effect = Effect {
                db: c.borrow().db,
                argv: argv.to_vec(),
                to: crate::shard::propagation::TO_REPLICAS,
            };
            log.push(&[s.local_id], [effect]);
        }
    } else {
        crate::replication::propagate_publish(&s.server, c.borrow().db, argv);
    }
}

async fn publish_to(c: &ClientRef, s: &Shards, kind: Subscription, argv: &[Bytes]) -> Reply {
    propagate(c, s, kind, argv);
    let n = pubsub::publish(s, kind, &argv[1], &argv[2]);
    Reply::Int(n as i64)
}

/// PUBSUB CHANNELS / SHARDCHANNELS [pattern].
async fn active(_c: &ClientRef, s: &Shards, kind: Subscription, argv: &[Bytes]) -> Reply {
    if argv.len() > 3 {
        return errors::unknown_subcommand_or_arity("PUBSUB", &argv[1]);
    }
    let pattern = argv.get(2).cloned();
    let names = pubsub::names(s, kind, pattern).await;
    Reply::Array(names.into_iter().map(Reply::Bulk).collect())
}

/// PUBSUB NUMSUB / SHARDNUMSUB [channel ...]: channel, count pairs (flat, as Redis
/// sends them in RESP3 too).
async fn numsub(_c: &ClientRef, s: &Shards, kind: Subscription, argv: &[Bytes]) -> Reply {
    let names = &argv[2..];
    let counts = pubsub::counts(s, kind, names).await;
    let mut out = Vec::with_capacity(2 * names.len());
    for (n, count) in names.iter().zip(counts) {
        out.push(Reply::Bulk(n.clone()));
        out.push(Reply::Int(count as i64));
    }
    Reply::Array(out)
}

/// PUBSUB NUMPAT: distinct patterns over every core (Redis counts its pattern dict).
fn pubsub_numpat<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let n = pubsub::names(s, Subscription::Pattern, None).await.len();
        Reply::Int(n as i64)
    })
}

fn pubsub_help<'a>(
    _c: &'a ClientRef,
    _s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    const LINES: &[&str] = &[
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Return the currently active shard level channels matching a <pattern> (default: '*').",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Return the number of subscribers for the specified shard level channel(s)",
        "HELP",
        "    Prints this help.",
    ];
    let reply = Reply::Array(LINES.iter().map(|&l| Reply::status(l)).collect());
    Box::pin(std::future::ready(reply))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::{argv, client, one_shard};
    use futures_lite::future::block_on;

    fn run(f: crate::commands::ServerFn, c: &ClientRef, s: &Shards, line: &str) -> Vec<u8> {
        let a = argv(&line.split(' ').collect::<Vec<_>>());
        let mut out = bytes::BytesMut::new();
        block_on(f(c, s, &a)).encode(c.borrow().resp, &mut out);
        out.to_vec()
    }

    fn queued(c: &ClientRef) -> Vec<u8> {
        let p = c.borrow().pushes.clone();
        p.take().map(|b| b.to_vec()).unwrap_or_default()
    }

    #[test]
    fn subscribe_counts_channels_and_patterns_but_not_shard_channels() {
        let (s, c) = (one_shard(), client(1));
        assert_eq!(
            run(subscribe, &c, &s, "subscribe a b a"),
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:2\r\n"
        );
        assert_eq!(
            run(psubscribe, &c, &s, "psubscribe x*"),
            b"*3\r\n$10\r\npsubscribe\r\n$2\r\nx*\r\n:3\r\n"
        );
        assert_eq!(
            run(ssubscribe, &c, &s, "ssubscribe q"),
            b"*3\r\n$10\r\nssubscribe\r\n$1\r\nq\r\n:1\r\n"
        );
        assert_eq!(
            run(unsubscribe, &c, &s, "unsubscribe b zz"),
            b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$2\r\nzz\r\n:2\r\n"
        );
        pubsub::unsubscribe_all(&c, &s);
        assert!(!c.borrow().pubsub.active());
        assert_eq!(
            run(unsubscribe, &c, &s, "unsubscribe"),
            b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
        );
    }

    #[test]
    fn publish_queues_messages_in_each_subscribers_protocol() {
        let s = one_shard();
        let (two, three, other) = (client(1), client(2), client(3));
        three.borrow_mut().set_resp(3);
        run(subscribe, &two, &s, "subscribe ch");
        run(psubscribe, &three, &s, "psubscribe c?");
        run(ssubscribe, &other, &s, "ssubscribe ch");
        assert_eq!(run(publish, &other, &s, "publish ch hi"), b":2\r\n");
        assert_eq!(
            queued(&two),
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        );
        assert_eq!(
            queued(&three),
            b">4\r\n$8\r\npmessage\r\n$2\r\nc?\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        );
        assert_eq!(queued(&other), b"");
        assert_eq!(run(spublish, &two, &s, "spublish ch x"), b":1\r\n");
        assert_eq!(
            queued(&other),
            b"*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$1\r\nx\r\n"
        );
        assert_eq!(
            run(pubsub_numsub, &two, &s, "pubsub numsub ch zz"),
            b"*4\r\n$2\r\nch\r\n:1\r\n$2\r\nzz\r\n:0\r\n"
        );
        assert_eq!(run(pubsub_numpat, &two, &s, "pubsub numpat"), b":1\r\n");
        for c in [&two, &three, &other] {
            pubsub::unsubscribe_all(c, &s);
        }
        assert_eq!(run(publish, &two, &s, "publish ch hi"), b":0\r\n");
        assert_eq!(run(pubsub_channels, &two, &s, "pubsub channels"), b"*0\r\n");
    }
}
