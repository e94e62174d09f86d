//! Redis's CRC64 (Jones polynomial, reflected): the RDB trailer and DUMP payloads.
//!
//! The CRC is `crc-64-jones` as Redis's `crc64.c` computes it: polynomial
//! 0xad93d23594c935a9 reflected in and out, initial value 0, no final xor, so
//! `crc64(0, "123456789") == 0xe9c6d914c4b8d9ca`. Hand-written rather than a crate: a
//! whole snapshot goes through it, and slice-by-8 tables (built at compile time) make
//! it several times faster than one table lookup per byte.

/// The Jones polynomial, bit-reflected (LSB-first form used by the reflected CRC).
const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

const fn build_tables() -> [[u64; 256]; 8] {
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            k += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut j = 1;
        while j < 8 {
            let prev = t[j - 1][i];
            t[j][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            j += 1;
        }
        i += 1;
    }
    t
}

static TABLES: [[u64; 256]; 8] = build_tables();

/// Running CRC64 over bytes fed in pieces.
#[derive(Clone, Copy, Default, Debug)]
pub struct Crc64(pub u64);

impl Crc64 {
    pub fn update(&mut self, bytes: &[u8]) {
        let t = &TABLES;
        let mut crc = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = crc ^ u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            crc = t[7][(v & 0xff) as usize]
                ^ t[6][((v >> 8) & 0xff) as usize]
                ^ t[5][((v >> 16) & 0xff) as usize]
                ^ t[4][((v >> 24) & 0xff) as usize]
                ^ t[3][((v >> 32) & 0xff) as usize]
                ^ t[2][((v >> 40) & 0xff) as usize]
                ^ t[1][((v >> 48) & 0xff) as usize]
                ^ t[0][(v >> 56) as usize];
        }
        for &b in chunks.remainder() {
            crc = t[0][((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
        }
        self.0 = crc;
    }
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// CRC64 of `bytes` continuing from `crc` (Redis's `crc64(crc, p, len)`).
pub fn crc64(crc: u64, bytes: &[u8]) -> u64 {
    let mut c = Crc64(crc);
    c.update(bytes);
    c.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-by-bit reference.
    fn slow(mut crc: u64, bytes: &[u8]) -> u64 {
        for &b in bytes {
            crc ^= b as u64;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLY_REFLECTED
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    #[test]
    fn redis_test_vectors() {
        assert_eq!(crc64(0, b"123456789"), 0xe9c6d914c4b8d9ca);
        let lorem = b"This is a test of the emergency broadcast system.";
        assert_eq!(crc64(0, lorem), slow(0, lorem));
    }

    #[test]
    fn pieces_equal_whole() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            let mut c = Crc64::default();
            c.update(&data[..split]);
            c.update(&data[split..]);
            assert_eq!(c.value(), slow(0, &data));
        }
    }
}
