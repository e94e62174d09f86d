//! CONFIG GET / SET / RESETSTAT / REWRITE (Redis's `config.c`).

use super::Command;

pub static COMMANDS: &[Command] = &[];
