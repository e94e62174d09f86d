//! The RDB format. OWNER: helper A (see the issue-5 brief).

pub mod crc64;
pub mod decode;
pub mod encode;
