//! PLACEHOLDER: its owner replaces this file with the geo commands.

use super::Command;

pub static COMMANDS: &[Command] = &[];
