//! Connection commands (Redis's `networking.c`): PING, ECHO, QUIT, RESET, SELECT, AUTH,
//! HELLO, CLIENT *.

use super::Command;

pub static COMMANDS: &[Command] = &[];
