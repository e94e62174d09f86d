//! PLACEHOLDER: its owner replaces this file with the zset commands.

use super::Command;

pub static COMMANDS: &[Command] = &[];
