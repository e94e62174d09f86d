//! PLACEHOLDER: its owner replaces this file with the set commands.

use super::Command;

pub static COMMANDS: &[Command] = &[];
