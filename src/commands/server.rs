//! Server commands (Redis's `server.c`, `config.c`, `slowlog.c`, `latency.c`): INFO, CONFIG, COMMAND, DBSIZE, TIME, SLOWLOG, LATENCY, SHUTDOWN, DEBUG.

use super::Command;

pub static COMMANDS: &[Command] = &[];
