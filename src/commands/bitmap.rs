//! Bitmap commands on strings (Redis's `bitops.c`): SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD.

use super::Command;

pub static COMMANDS: &[Command] = &[];
