//! DEBUG DIGEST / DEBUG DIGEST-VALUE: Redis's SHA1-based digests of keys and values
//! (`debug.c`'s `xorDigest` / `mixDigest`), equal to Redis's for equal contents.
//!
//! Two operations build every digest: *xor* (`d ^= SHA1(bytes)`, order-independent,
//! for set members, hash fields and sorted set members, and for keys within a
//! database) and *mix* (`d = SHA1(d ^ SHA1(bytes))`, order-dependent, for list elements
//! and a field's parts). A value's digest starts with its type mixed in, and
//! `!!expire!!` is xored in when the key has a TTL. The one idea to hold for the
//! sharded dataset digest: within one database the key digests are combined by xor, so
//! each shard computes, per database, whether it has keys and the xor of its keys'
//! digests, and the caller combines the shards' parts in database order (mixing in each
//! non-empty database's id first), which gives Redis's digest whatever the spread of
//! keys over shards. Scores are formatted as `%.17g`, as Redis 7.0's `debug.c`.

use crate::protocol::reply::format_double_resp;
use crate::protocol::Reply;
use crate::runtime::Shards;
use crate::shard::Shard;
use crate::storage::hash::Hash;
use crate::storage::set::Member;
use crate::storage::stream::StreamId;
use crate::storage::{StrValue, Value};
use bytes::Bytes;

pub type Digest = [u8; 20];

fn sha1(bytes: &[u8]) -> Digest {
    sha1_smol::Sha1::from(bytes).digest().bytes()
}

/// `xorDigest`: `d ^= SHA1(bytes)`.
pub fn xor(d: &mut Digest, bytes: &[u8]) {
    for (a, b) in d.iter_mut().zip(sha1(bytes)) {
        *a ^= b;
    }
}

/// `mixDigest`: `d = SHA1(d ^ SHA1(bytes))`.
pub fn mix(d: &mut Digest, bytes: &[u8]) {
    xor(d, bytes);
    *d = sha1(&d[..]);
}

/// Redis's object type number (`OBJ_STRING` ...).
fn type_id(v: &Value) -> u32 {
    match v {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Stream(_) => 6,
    }
}

/// `xorObjectDigest` into `d`: the value's type and contents, and the TTL marker.
pub fn xor_value(d: &mut Digest, value: &Value, has_expire: bool) {
    mix(d, &type_id(value).to_be_bytes());
    let mut buf = Vec::new();
    match value {
        Value::Str(StrValue::Int(i)) => mix(d, itoa::Buffer::new().format(*i).as_bytes()),
        Value::Str(s) => mix(d, &s.as_bytes()),
        Value::List(l) => {
            for e in l.iter() {
                buf.clear();
                e.write_to(&mut buf);
                mix(d, &buf);
            }
        }
        Value::Stream(s) => {
            // Each live entry: "ms.seq", then its fields and values, all mixed in order.
            s.range(StreamId::MIN, StreamId::MAX, false, |e| {
                mix(d, format!("{}.{}", e.id.ms, e.id.seq).as_bytes());
                for (f, v) in &e.fields {
                    buf.clear();
                    f.write_to(&mut buf);
                    mix(d, &buf);
                    buf.clear();
                    v.write_to(&mut buf);
                    mix(d, &buf);
                }
                true
            });
        }
        Value::Set(s) => {
            for m in s.iter() {
                match m {
                    Member::Str(b) => xor(d, b),
                    Member::Int(_) => {
                        buf.clear();
                        m.write_to(&mut buf);
                        xor(d, &buf);
                    }
                }
            }
        }
        Value::ZSet(z) => {
            for (m, score) in z.iter(false) {
                let mut ele = [0u8; 20];
                buf.clear();
                m.write_to(&mut buf);
                mix(&mut ele, &buf);
                mix(&mut ele, format_double_resp(score).as_bytes());
                xor(d, &ele);
            }
        }
        Value::Hash(h) => {
            let mut pair = |f: &[u8], v: &[u8]| {
                let mut ele = [0u8; 20];
                mix(&mut ele, f);
                mix(&mut ele, v);
                xor(d, &ele);
            };
            match h {
                Hash::Table(t) => {
                    for (f, v) in t.iter() {
                        pair(f, v);
                    }
                }
                Hash::Listpack(_) => {
                    let mut fb = Vec::new();
                    for (f, v) in h.iter() {
                        fb.clear();
                        buf.clear();
                        f.write_to(&mut fb);
                        v.write_to(&mut buf);
                        pair(&fb, &buf);
                    }
                }
            }
        }
    }
    if has_expire {
        xor(d, b"!!expire!!");
    }
}

/// DEBUG DIGEST-VALUE's digest of one value.
pub fn value_digest(value: &Value, has_expire: bool) -> Digest {
    let mut d = [0u8; 20];
    xor_value(&mut d, value, has_expire);
    d
}

/// One key's digest as DEBUG DIGEST computes it (key mixed in, then the value).
pub fn key_digest(key: &[u8], value: &Value, has_expire: bool) -> Digest {
    let mut d = [0u8; 20];
    mix(&mut d, key);
    xor_value(&mut d, value, has_expire);
    d
}

/// One shard's part of DEBUG DIGEST: per database, `Some(xor of SHA1(key digest))`
/// when it holds keys. Logically expired keys not yet deleted count, as in Redis.
pub fn shard_part(shard: &Shard) -> Vec<Option<Digest>> {
    shard
        .dbs
        .iter()
        .map(|db| {
            if db.keys.is_empty() {
                return None;
            }
            let mut acc = [0u8; 20];
            for (k, e) in db.keys.iter() {
                let has_expire = db.expire_of(k).is_some();
                xor(&mut acc, &key_digest(k, &e.value, has_expire));
            }
            Some(acc)
        })
        .collect()
}

/// Combine shards' parts (`computeDatasetDigest`): for each database in order that
/// some shard has keys in, mix in its id, then xor in every shard's part.
pub fn combine(parts: &[Vec<Option<Digest>>]) -> Digest {
    let mut fin = [0u8; 20];
    let dbs = parts.iter().map(|p| p.len()).max().unwrap_or(0);
    for j in 0..dbs {
        let here: Vec<&Digest> = parts.iter().filter_map(|p| p.get(j)?.as_ref()).collect();
        if here.is_empty() {
            continue;
        }
        mix(&mut fin, &(j as u32).to_be_bytes());
        for d in here {
            for (a, b) in fin.iter_mut().zip(d) {
                *a ^= b;
            }
        }
    }
    fin
}

/// Lower-case hex, as Redis prints digests.
pub fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// DEBUG DIGEST: one digest of every database's keys, values and TTLs.
pub async fn debug_digest(s: &Shards) -> Reply {
    let parts = s.all(|shard| shard_part(shard)).await;
    Reply::Status(hex(&combine(&parts)).into())
}

/// DEBUG DIGEST-VALUE key... in database 0 (the lead's DEBUG switchboard calls this;
/// [`debug_digest_value_in`] takes the client's database).
pub async fn debug_digest_value(s: &Shards, keys: &[Bytes]) -> Reply {
    debug_digest_value_in(s, 0, keys).await
}

/// DEBUG DIGEST-VALUE key...: each key's value digest (zeros for a missing key), in
/// database `db` (the client's). Logically expired keys still count, as in Redis.
pub async fn debug_digest_value_in(s: &Shards, db: usize, keys: &[Bytes]) -> Reply {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let k = key.clone();
        let d = s
            .on(s.shard_of(key), move |shard| {
                let Some(db) = shard.dbs.get(db) else {
                    return [0u8; 20];
                };
                match db.keys.get(&k[..]) {
                    Some(e) => value_digest(&e.value, db.expire_of(&k).is_some()),
                    None => [0u8; 20],
                }
            })
            .await;
        out.push(Reply::Status(hex(&d).into()));
    }
    Reply::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_dataset_is_zeros() {
        assert_eq!(
            hex(&combine(&[vec![None; 16], vec![None; 16]])),
            "0".repeat(40)
        );
    }

    #[test]
    fn split_over_shards_equals_one_shard() {
        let v = Value::Str(StrValue::from_set(b"v"));
        let a = key_digest(b"a", &v, false);
        let b = key_digest(b"b", &v, true);
        let part = |ds: &[Digest]| {
            let mut acc = [0u8; 20];
            for d in ds {
                xor(&mut acc, d);
            }
            acc
        };
        let one = combine(&[vec![Some(part(&[a, b])), None]]);
        let two = combine(&[vec![Some(part(&[a])), None], vec![Some(part(&[b])), None]]);
        assert_eq!(one, two);
    }
}
