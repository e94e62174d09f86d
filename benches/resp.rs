//! RESP benchmarks: parsing pipelined requests and encoding replies.
//!
//! The one idea to hold: these are the per-request costs on the connection's hot path,
//! measured on whole pipelines (100 requests per buffer) as a connection sees them after
//! one socket read; throughput is reported per request.
//! Run: `cargo bench --bench resp`.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use shardis::protocol::{parse_request, Limits, ParseOutcome, Reply};

fn multibulk(argv: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", argv.len()).into_bytes();
    for a in argv {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn pipeline(n: usize, f: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    (0..n).flat_map(f).collect()
}

fn parse_all(data: &[u8]) -> usize {
    let mut buf = BytesMut::from(data);
    let mut n = 0;
    while let ParseOutcome::Request(argv) = parse_request(&mut buf, Limits::default()) {
        n += argv.len();
        black_box(argv);
    }
    n
}

fn parse(c: &mut Criterion) {
    let gets = pipeline(100, |i| {
        multibulk(&[b"GET", format!("key:{i:08}").as_bytes()])
    });
    let sets = pipeline(100, |i| {
        multibulk(&[
            b"SET",
            format!("key:{i:08}").as_bytes(),
            b"0123456789abcdef",
        ])
    });
    let inline = pipeline(100, |i| format!("GET key:{i:08}\r\n").into_bytes());
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(100));
    g.bench_function("100 GET", |b| b.iter(|| parse_all(black_box(&gets))));
    g.bench_function("100 SET 16B", |b| b.iter(|| parse_all(black_box(&sets))));
    g.bench_function("100 GET inline", |b| {
        b.iter(|| parse_all(black_box(&inline)))
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let value = Bytes::from_static(b"0123456789abcdef");
    let bulks: Vec<Reply> = (0..100).map(|_| Reply::Bulk(value.clone())).collect();
    let ints: Vec<Reply> = (0..100).map(Reply::Int).collect();
    let array = Reply::Array(
        (0..100)
            .map(|i| Reply::Bulk(Bytes::from(format!("member:{i}"))))
            .collect(),
    );
    let map = Reply::Map(
        (0..50)
            .map(|i| {
                (
                    Reply::Bulk(Bytes::from(format!("f{i}"))),
                    Reply::Double(i as f64 * 1.5),
                )
            })
            .collect(),
    );
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(100));
    g.bench_function("100 bulk 16B", |b| {
        b.iter(|| {
            out.clear();
            for r in &bulks {
                r.encode(2, &mut out);
            }
            black_box(out.len())
        })
    });
    g.bench_function("100 +OK", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..100 {
                Reply::ok().encode(2, &mut out);
            }
            black_box(out.len())
        })
    });
    g.bench_function("100 int", |b| {
        b.iter(|| {
            out.clear();
            for r in &ints {
                r.encode(2, &mut out);
            }
            black_box(out.len())
        })
    });
    g.bench_function("array of 100 bulks", |b| {
        b.iter(|| {
            out.clear();
            array.encode(2, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("RESP3 map of 50 doubles", |b| {
        b.iter(|| {
            out.clear();
            map.encode(3, &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, parse, encode);
criterion_main!(benches);
