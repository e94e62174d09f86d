//! Keyspace notifications (Redis's `notify.c`): which classes of events are on
//! (`notify-keyspace-events`), and the events a core raised that the runtime has not
//! published yet. A leaf: storage, commands and the runtime import it; it imports
//! nothing of ours.
//!
//! **Who raises what.** Exactly as Redis 7.0: a command's handler raises its events
//! itself ([`raise`], through `Ctx::notify`), at the point where it changed the data,
//! because only the handler knows which branch it took (HDEL raises `hdel` and then
//! `del` only if the hash became empty; EXPIRE raises `expire`, or `del` for a time in
//! the past; SINTERSTORE raises `sinterstore` or `del` for an empty result). The command
//! table says which keys a write may touch ([`Touch`](crate::commands::Touch), for
//! WATCH) but not which event it was; matching commands by name in the runtime is what
//! the table exists to avoid. The keyspace raises the events that are not any
//! command's: `new` when a key is added (`Db::set`, Redis's `dbAdd`), `expired` when a
//! key is deleted because its TTL passed, lazily or by the active cycle, and the
//! `keymiss` of a read lookup (`Ctx::lookup_read`).
//!
//! **Where events wait.** A shard is only touched by its own thread, so the events it
//! raises go to a thread-local log, in the order they were raised, each with its
//! database. The runtime takes them ([`take`]) right after the command that raised
//! them, before its reply leaves the shard, and publishes them as Pub/Sub messages
//! (`runtime::pubsub::publish_events`): `__keyspace@<db>__:<key>` with the event as
//! message (`K`), `__keyevent@<db>__:<event>` with the key as message (`E`). Taking
//! them before the reply is sent is what gives a client's sequential commands their
//! events in order at every subscriber, whichever shards ran them (each core's inbox
//! is FIFO). Events raised outside a command (the active expiry cycle, a lazy expiry
//! during KEYS or SCAN) are published when that work ends.
//!
//! **Zero cost when off.** The classes live in a thread-local copy of the option
//! (refreshed with the shard's configuration); with neither `K` nor `E` on, or the
//! event's class off, [`raise`] is one thread-local load and a test, and nothing is
//! logged.

use bytes::Bytes;
use std::cell::{Cell, RefCell};

pub const KEYSPACE: u32 = 1 << 0;
pub const KEYEVENT: u32 = 1 << 1;
pub const GENERIC: u32 = 1 << 2;
pub const STRING: u32 = 1 << 3;
pub const LIST: u32 = 1 << 4;
pub const SET: u32 = 1 << 5;
pub const HASH: u32 = 1 << 6;
pub const ZSET: u32 = 1 << 7;
pub const EXPIRED: u32 = 1 << 8;
pub const EVICTED: u32 = 1 << 9;
pub const STREAM: u32 = 1 << 10;
pub const KEY_MISS: u32 = 1 << 11;
pub const MODULE: u32 = 1 << 13;
pub const NEW: u32 = 1 << 14;
/// `A`: every class but `m` and `n` (Redis's NOTIFY_ALL).
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The class characters and their flags, in the order Redis prints them.
const CLASSES: [(char, u32); 11] = [
    ('g', GENERIC),
    ('$', STRING),
    ('l', LIST),
    ('s', SET),
    ('h', HASH),
    ('z', ZSET),
    ('x', EXPIRED),
    ('e', EVICTED),
    ('t', STREAM),
    ('d', MODULE),
    ('n', NEW),
];

/// Parse `notify-keyspace-events` (Redis's `keyspaceEventsStringToFlags`); `None` for a
/// character that names no class.
pub fn parse(value: &str) -> Option<u32> {
    value.chars().try_fold(0, |flags, c| {
        let flag = match c {
            'A' => ALL,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            'm' => KEY_MISS,
            _ => CLASSES.iter().find(|(ch, _)| *ch == c)?.1,
        };
        Some(flags | flag)
    })
}

/// Print flags back as Redis does (`keyspaceEventsFlagsToString`): `A` when all of
/// `A`'s classes are on (and then, as Redis, no `n` even when it is on), else each
/// class, then `K`, `E`, `m`.
pub fn format(flags: u32) -> String {
    let mut out = String::new();
    if flags & ALL == ALL {
        out.push('A');
    } else {
        out.extend(
            CLASSES
                .iter()
                .filter(|(_, f)| flags & f != 0)
                .map(|(c, _)| c),
        );
    }
    for (c, f) in [('K', KEYSPACE), ('E', KEYEVENT), ('m', KEY_MISS)] {
        if flags & f != 0 {
            out.push(c);
        }
    }
    out
}

/// One raised event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub name: &'static str,
    pub db: usize,
    pub key: Bytes,
}

thread_local! {
    /// This core's copy of the option; 0 unless `K` or `E` is on.
    static ON: Cell<u32> = const { Cell::new(0) };
    static LOG: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
}

/// Set this core's classes from the option's flags (a shard's configuration refresh).
pub fn set_flags(flags: u32) {
    let on = if flags & (KEYSPACE | KEYEVENT) != 0 {
        flags
    } else {
        0
    };
    ON.set(on);
}

/// The classes on for this core (0 when nothing is published).
#[inline]
pub fn flags() -> u32 {
    ON.get()
}

/// True if events of `class` are published.
#[inline]
pub fn wants(class: u32) -> bool {
    ON.get() & class != 0
}

/// Raise event `name` of `class` on `key` in database `db`, if that class is on.
#[inline]
pub fn raise(class: u32, name: &'static str, db: usize, key: &[u8]) {
    if wants(class) {
        let key = Bytes::copy_from_slice(key);
        LOG.with_borrow_mut(|l| l.push(Event { name, db, key }));
    }
}

/// Run `f` with every class off: for changes that are not a command's (a gathered
/// multi-shard command's copies and write-backs, see `runtime::multishard`).
pub fn muted<R>(f: impl FnOnce() -> R) -> R {
    let on = ON.replace(0);
    let r = f();
    ON.set(on);
    r
}

/// The events raised since the last call, in order (empty, without allocating, when
/// there are none).
#[inline]
pub fn take() -> Vec<Event> {
    if ON.get() == 0 {
        return Vec::new();
    }
    LOG.with_borrow_mut(std::mem::take)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format_follow_redis() {
        let f = |s: &str| format(parse(s).unwrap());
        assert_eq!(f("KEA"), "AKE");
        assert_eq!(f("Kx"), "xK");
        assert_eq!(f("Elg$"), "g$lE");
        assert_eq!(f("AnKm"), "AKm");
        assert_eq!(f("nm"), "nm");
        assert_eq!(f(""), "");
        assert_eq!(f("g$lshzxetdKE"), "AKE");
        assert_eq!(parse("Q"), None);
        assert_eq!(parse("a"), None);
    }

    #[test]
    fn nothing_is_logged_without_k_or_e() {
        set_flags(ALL);
        raise(GENERIC, "del", 0, b"k");
        assert!(take().is_empty());
        set_flags(ALL | KEYSPACE);
        raise(GENERIC, "del", 0, b"k");
        raise(NEW, "new", 0, b"k");
        assert_eq!(
            take(),
            vec![Event {
                name: "del",
                db: 0,
                key: Bytes::from_static(b"k")
            }]
        );
        set_flags(0);
    }
}
