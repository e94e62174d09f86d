//! Hash slots: `CRC16(hashtag(key)) & 16383`, and the table that maps slots to shards.
//!
//! The slot, not the key, is the unit of ownership, in standalone mode too: hash tags
//! (`{user1}:a`) then put related keys on one shard, and cluster mode can later hand
//! out slots between nodes with the same table.

pub const SLOTS: usize = 16384;

/// The part of the key that is hashed: the first `{...}` with a non-empty body, else all.
pub fn hashtag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&c| c == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&c| c == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// Redis's key slot (CLUSTER KEYSLOT).
pub fn key_slot(key: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(hashtag(key)) & (SLOTS as u16 - 1)
}

/// Which shard owns each slot: contiguous ranges, as equal as possible.
#[derive(Clone, Debug)]
pub struct SlotTable {
    owner: Vec<u16>,
    /// One shard owns every slot: no key needs hashing to find it.
    single: bool,
}

impl SlotTable {
    pub fn new(nshards: usize) -> SlotTable {
        let n = nshards.max(1);
        SlotTable {
            owner: (0..SLOTS).map(|s| (s * n / SLOTS) as u16).collect(),
            single: n == 1,
        }
    }
    pub fn shard_of_slot(&self, slot: u16) -> usize {
        self.owner[slot as usize] as usize
    }
    pub fn shard_of(&self, key: &[u8]) -> usize {
        if self.single {
            return 0;
        }
        self.shard_of_slot(key_slot(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT on redis-server.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(hashtag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hashtag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hashtag(b"foo{bar}{zap}"), b"bar");
    }
    #[test]
    fn table_covers_all_shards() {
        let t = SlotTable::new(3);
        assert_eq!(t.shard_of_slot(0), 0);
        assert_eq!(t.shard_of_slot(16383), 2);
    }
}
