//! RESP, the Redis serialization protocol: parsing requests and encoding replies.
//!
//! Owns: the byte-level grammar only. A request becomes a `Vec<Bytes>` argv (slices of
//! the read buffer, no copy); a reply is a [`Reply`] value that is encoded for the
//! connection's protocol version (2 or 3) at the last moment. The one idea to hold:
//! nothing here knows about commands or sockets, and no input may panic — a malformed
//! request becomes a [`ProtocolError`] whose text is exactly Redis's.

pub mod parse;
pub mod reply;
pub mod response;

pub use parse::{parse_request, Limits, ParseOutcome, ProtocolError, RequestParser};
pub use reply::Reply;
