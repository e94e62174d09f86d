//! String commands (Redis's `t_string.c`): GET, SET and friends, counters, ranges, LCS.

use super::Command;

pub static COMMANDS: &[Command] = &[];
