//! Keyspace commands (Redis's `db.c`): DEL, EXISTS, TYPE, RENAME, COPY, MOVE, SWAPDB, KEYS, SCAN, RANDOMKEY, FLUSHDB/ALL, TOUCH, OBJECT.

use super::Command;

pub static COMMANDS: &[Command] = &[];
