//! The append-only file. OWNER: helper B (see the issue-5 brief).

/// A shard's AOF state (its current increment file's buffer and durability).
#[derive(Default)]
pub struct ShardAof {}

/// Process-wide AOF state (the manifest, rewrite status), in `ServerInfo`.
#[derive(Default)]
pub struct Global {}
