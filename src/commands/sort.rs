//! PLACEHOLDER: its owner replaces this file with the sort commands.

use super::Command;

pub static COMMANDS: &[Command] = &[];
