//! Redis's CRC64 (Jones polynomial, reflected): the RDB trailer and DUMP payloads.
//! OWNER: helper A.

/// Running CRC64 over bytes fed in pieces.
#[derive(Clone, Copy, Default, Debug)]
pub struct Crc64(pub u64);

impl Crc64 {
    pub fn update(&mut self, bytes: &[u8]) {
        let _ = bytes;
        todo!("helper A")
    }
    pub fn value(&self) -> u64 {
        self.0
    }
}
