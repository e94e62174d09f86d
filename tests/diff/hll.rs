//! TEMPLATE: the family's owner fills in `command` with a generator for each of the
//! family's commands (see differential.rs for the `Gen` helpers and the `Cmp` kinds).

use super::{Argv, Cmp, Gen};

pub fn command(_g: &mut Gen) -> Option<(Argv, Cmp)> {
    None
}
