//! TTL commands (Redis's `expire.c`): EXPIRE family with NX/XX/GT/LT, TTL, PTTL, EXPIRETIME, PERSIST.

use super::Command;

pub static COMMANDS: &[Command] = &[];
