//! PLACEHOLDER: its owner replaces this file with the list commands.

use super::Command;

pub static COMMANDS: &[Command] = &[];
