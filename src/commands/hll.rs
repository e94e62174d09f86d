//! PLACEHOLDER: its owner replaces this file with the hll commands.

use super::Command;

pub static COMMANDS: &[Command] = &[];
