//! INFO (Redis's `server.c` genRedisInfoString): every section, summed over shards, plus `shards`.

use super::Command;

pub static COMMANDS: &[Command] = &[];
