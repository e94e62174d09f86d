//! Dict benchmarks: insert, get and remove 100k keys, against `std::collections::HashMap`
//! with its default hasher and with the same foldhash hasher the Dict uses.
//!
//! The one idea to hold: the Dict pays for incremental rehashing and chained buckets
//! (no pause when growing, SCAN guarantees, cheap random sampling); these numbers say
//! what that costs per operation against a flat table. Keys are `CompactBytes`, the
//! keyspace's own key type. Run: `cargo bench --bench dict`.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shardis::storage::compact::CompactBytes;
use shardis::storage::dict::Dict;
use std::collections::HashMap;

const N: usize = 100_000;

fn keys() -> Vec<Vec<u8>> {
    (0..N).map(|i| format!("key:{i:08}").into_bytes()).collect()
}

type FoldMap<V> = HashMap<CompactBytes, V, foldhash::fast::FixedState>;

fn filled_dict(keys: &[Vec<u8>]) -> Dict<CompactBytes, u64> {
    let mut d = Dict::new();
    for (i, k) in keys.iter().enumerate() {
        d.insert(CompactBytes::new(k), i as u64);
    }
    d
}

fn filled_std(keys: &[Vec<u8>]) -> HashMap<CompactBytes, u64> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| (CompactBytes::new(k), i as u64))
        .collect()
}

fn filled_fold(keys: &[Vec<u8>]) -> FoldMap<u64> {
    let mut m = FoldMap::with_hasher(foldhash::fast::FixedState::with_seed(7));
    for (i, k) in keys.iter().enumerate() {
        m.insert(CompactBytes::new(k), i as u64);
    }
    m
}

fn insert(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("insert 100k");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    g.bench_function("Dict", |b| b.iter(|| black_box(filled_dict(&keys).len())));
    g.bench_function("HashMap std hasher", |b| {
        b.iter(|| black_box(filled_std(&keys).len()))
    });
    g.bench_function("HashMap foldhash", |b| {
        b.iter(|| black_box(filled_fold(&keys).len()))
    });
    g.finish();
}

fn get(c: &mut Criterion) {
    let keys = keys();
    let dict = filled_dict(&keys);
    let std_map = filled_std(&keys);
    let fold = filled_fold(&keys);
    let mut g = c.benchmark_group("get 100k");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    g.bench_function("Dict", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for k in &keys {
                sum += dict.get(k.as_slice()).copied().unwrap_or(0);
            }
            black_box(sum)
        })
    });
    g.bench_function("HashMap std hasher", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for k in &keys {
                sum += std_map.get(k.as_slice()).copied().unwrap_or(0);
            }
            black_box(sum)
        })
    });
    g.bench_function("HashMap foldhash", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for k in &keys {
                sum += fold.get(k.as_slice()).copied().unwrap_or(0);
            }
            black_box(sum)
        })
    });
    g.finish();
}

fn remove(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("remove 100k");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    g.bench_function("Dict", |b| {
        b.iter_batched(
            || filled_dict(&keys),
            |mut d| {
                for k in &keys {
                    black_box(d.remove(k.as_slice()));
                }
                d
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("HashMap std hasher", |b| {
        b.iter_batched(
            || filled_std(&keys),
            |mut m| {
                for k in &keys {
                    black_box(m.remove(k.as_slice()));
                }
                m
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("HashMap foldhash", |b| {
        b.iter_batched(
            || filled_fold(&keys),
            |mut m| {
                for k in &keys {
                    black_box(m.remove(k.as_slice()));
                }
                m
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, insert, get, remove);
criterion_main!(benches);
