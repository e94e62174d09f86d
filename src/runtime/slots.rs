//! Hash slots: `CRC16(hashtag(key)) & 16383`, and the table that maps slots to shards.
//!
//! The slot, not the key, is the unit of ownership, in standalone mode too: hash tags
//! (`{user1}:a`) then put related keys on one shard, and cluster mode can later hand
//! out slots between nodes with the same table.

pub const SLOTS: usize = 16384;

/// The part of the key that is hashed: the first `{...}` with a non-empty body, else all.
pub fn hashtag(key: &[u8]) -> &[u8] {
    if let Some(open) = memchr::memchr(b'{', key) {
        if let Some(len) = memchr::memchr(b'}', &key[open + 1..]) {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// Redis's key slot (CLUSTER KEYSLOT).
pub fn key_slot(key: &[u8]) -> u16 {
    crc16_xmodem(hashtag(key)) & (SLOTS as u16 - 1)
}

/// CRC16-XMODEM (polynomial 0x1021, initial value 0), Redis's `crc16`, two bytes per
/// step. Every request's key is hashed to find its shard: finding the tag and this
/// CRC took 259 instructions for a 16-byte key with the `crc16` crate (one byte per
/// step, in the augmented form) and a byte loop for `{`, 6% of a pipelined GET over 2
/// shards.
fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut pairs = data.chunks_exact(2);
    let mut crc = 0u16;
    for pair in &mut pairs {
        let x = crc ^ u16::from_be_bytes([pair[0], pair[1]]);
        crc = CRC16_TABLES[1][usize::from(x >> 8)] ^ CRC16_TABLES[0][usize::from(x as u8)];
    }
    if let [b] = pairs.remainder() {
        crc = (crc << 8) ^ CRC16_TABLES[0][usize::from((crc >> 8) as u8 ^ b)];
    }
    crc
}

/// `CRC16_TABLES[0][i]`: the CRC of byte `i`; `[1][i]`: of byte `i` followed by a zero
/// byte (the first byte of a pair, shifted through the second).
static CRC16_TABLES: [[u16; 256]; 2] = {
    let mut tables = [[0u16; 256]; 2];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let one = tables[0][i];
        tables[1][i] = (one << 8) ^ tables[0][(one >> 8) as usize];
        i += 1;
    }
    tables
};

/// Which shard owns each slot: contiguous ranges, as equal as possible (shard
/// `slot * n / 16384`). Worked out, not looked up: a table of 16384 owners is 32 KiB
/// that every request's key would pull through the core's cache.
#[derive(Clone, Debug)]
pub struct SlotTable {
    shards: usize,
}

impl SlotTable {
    pub fn new(nshards: usize) -> SlotTable {
        SlotTable {
            shards: nshards.max(1),
        }
    }
    pub fn shard_of_slot(&self, slot: u16) -> usize {
        slot as usize % SLOTS * self.shards / SLOTS
    }
    pub fn shard_of(&self, key: &[u8]) -> usize {
        if self.shards == 1 {
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

    proptest::proptest! {
        #[test]
        fn crc_is_the_crc16_crates_xmodem(data in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            proptest::prop_assert_eq!(
                crc16_xmodem(&data),
                crc16::State::<crc16::XMODEM>::calculate(&data)
            );
        }
    }

    #[test]
    fn crc_check_value() {
        // The catalogue's check value of CRC-16/XMODEM.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
    }

    #[test]
    fn shards_own_contiguous_ranges_of_nearly_equal_size() {
        for n in 1..=64 {
            let t = SlotTable::new(n);
            let owners: Vec<usize> = (0..SLOTS as u16).map(|s| t.shard_of_slot(s)).collect();
            assert!(owners.windows(2).all(|w| w[1] == w[0] || w[1] == w[0] + 1));
            assert_eq!((owners[0], owners[SLOTS - 1]), (0, n - 1));
            let sizes: Vec<usize> = (0..n)
                .map(|i| owners.iter().filter(|&&o| o == i).count())
                .collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "{n} shards: {sizes:?}");
        }
    }
}
