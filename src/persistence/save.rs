//! OWNER: lead.

use crate::protocol::Reply;
use crate::runtime::Shards;
use bytes::Bytes;

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: save, empty, load.
pub async fn debug_reload(_s: &Shards, _opts: &[Bytes]) -> Reply {
    Reply::err("ERR DEBUG RELOAD is not implemented yet")
}

/// Process-wide snapshot state (INFO persistence, LASTSAVE), in `ServerInfo`.
#[derive(Default)]
pub struct Status {}
