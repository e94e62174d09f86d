//! DEBUG DIGEST / DEBUG DIGEST-VALUE: Redis's SHA1-based digests of keys and values
//! (`debug.c`'s `xorDigest` / `mixDigest`), equal to Redis's for equal contents.
//! OWNER: helper A.

use crate::protocol::Reply;
use crate::runtime::Shards;
use bytes::Bytes;

/// DEBUG DIGEST: one digest of every database's keys, values and TTLs.
pub async fn debug_digest(_s: &Shards) -> Reply {
    Reply::err("ERR DEBUG DIGEST is not implemented yet")
}

/// DEBUG DIGEST-VALUE key...: each key's value digest (zeros for a missing key).
pub async fn debug_digest_value(_s: &Shards, _keys: &[Bytes]) -> Reply {
    Reply::err("ERR DEBUG DIGEST-VALUE is not implemented yet")
}
