//! SLOWLOG and LATENCY (Redis's `slowlog.c`, `latency.c`).

use super::Command;

pub static COMMANDS: &[Command] = &[];
