//! The seed measurements, the Rust way, each beside its copying baseline in the same run.
//!
//! `cargo bench -p server --bench seed`
//!
//! - chunk: cut a chunk out of a cached title: `Bytes::slice` vs copying (into a fresh `Vec`, and
//!   into a reused buffer, the copy's best case), for 1 KiB, 20 MiB and 1 GiB.
//! - receive: put 1 MiB into a 100 MiB cache: rebuild the cache (`concat` of before/chunk/after)
//!   vs read straight into `&mut cache[off..off + len]` from an in-memory reader and from a
//!   loopback TCP socket, beside a plain 1 MiB memcpy.
//! - serve: send a 1 MiB chunk over loopback TCP: `writev` of header + `Bytes` slice (what hyper
//!   does with our bodies) vs `sendfile` from a memfd holding the title.
//!
//! Buffers are allocated once outside the timed loops: page faults on this VM run near 0.6 GB/s
//! and would otherwise dominate.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::io::{IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const MIB: usize = 1 << 20;

fn title(len: usize) -> Bytes {
    let mut v = vec![0u8; len];
    for (i, b) in v.iter_mut().enumerate().step_by(4096) {
        *b = i as u8;
    }
    Bytes::from(v)
}

fn chunk(c: &mut Criterion) {
    let big = title(1 << 30 | 4096);
    let mut g = c.benchmark_group("chunk");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut reused = vec![0u8; 20 * MIB];
    for (name, len) in [("1KiB", 1024usize), ("20MiB", 20 * MIB), ("1GiB", 1 << 30)] {
        g.bench_function(BenchmarkId::new("bytes_slice", name), |b| {
            b.iter(|| black_box(&big).slice(black_box(4096)..4096 + len))
        });
        if len <= 20 * MIB {
            g.bench_function(BenchmarkId::new("copy_to_vec", name), |b| {
                b.iter(|| black_box(&big[4096..4096 + len]).to_vec())
            });
            g.bench_function(BenchmarkId::new("copy_into_reused", name), |b| {
                b.iter(|| reused[..len].copy_from_slice(black_box(&big[4096..4096 + len])))
            });
        }
    }
    g.finish();
}

fn receive(c: &mut Criterion) {
    let mut g = c.benchmark_group("receive_1MiB_into_100MiB");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(MIB as u64));
    let incoming = vec![7u8; MIB];
    let mut cache = vec![0u8; 100 * MIB];
    let off = 50 * MIB;
    g.bench_function("memcpy_baseline", |b| {
        b.iter(|| cache[off..off + MIB].copy_from_slice(black_box(&incoming)))
    });
    g.sample_size(10);
    g.bench_function("rebuild_concat", |b| {
        b.iter(|| {
            let rebuilt = [&cache[..off], &incoming[..], &cache[off + MIB..]].concat();
            black_box(rebuilt)
        })
    });
    g.sample_size(100);
    g.bench_function("read_into_slice_memory_reader", |b| {
        b.iter(|| {
            let mut src = std::io::Cursor::new(&incoming);
            src.read_exact(&mut cache[off..off + MIB]).unwrap();
        })
    });
    // A real socket: a thread keeps sending 1 MiB messages; each iteration reads one in place.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sender = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let msg = vec![9u8; MIB];
        while s.write_all(&msg).is_ok() {}
    });
    let mut rx = TcpStream::connect(addr).unwrap();
    g.bench_function("read_into_slice_tcp_loopback", |b| {
        b.iter(|| rx.read_exact(&mut cache[off..off + MIB]).unwrap())
    });
    drop(rx);
    let _ = sender.join();
    g.finish();
}

fn serve(c: &mut Criterion) {
    use rustix::fs::{memfd_create, sendfile, MemfdFlags};
    let data = title(100 * MIB);
    let fd = memfd_create("title", MemfdFlags::CLOEXEC).unwrap();
    let mut file = std::fs::File::from(fd);
    file.write_all(&data).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let drain = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 4 * MIB];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    let mut tx = TcpStream::connect(addr).unwrap();
    tx.set_nodelay(true).unwrap();
    let head = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 1048576\r\n\r\n";
    let mut g = c.benchmark_group("serve_1MiB_loopback");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(MIB as u64));
    let mut n = 0usize;
    g.bench_function("writev_bytes_slice", |b| {
        b.iter(|| {
            n = (n + 7) % 99;
            let body = data.slice(n * MIB..(n + 1) * MIB);
            let mut parts = [IoSlice::new(head), IoSlice::new(&body)];
            let mut slices = &mut parts[..];
            while !slices.is_empty() {
                let w = tx.write_vectored(slices).unwrap();
                IoSlice::advance_slices(&mut slices, w);
            }
        })
    });
    g.bench_function("sendfile_memfd", |b| {
        b.iter(|| {
            n = (n + 7) % 99;
            tx.write_all(head).unwrap();
            let mut off = (n * MIB) as u64;
            let end = off + MIB as u64;
            while off < end {
                let want = (end - off) as usize;
                sendfile(&tx, &file, Some(&mut off), want).unwrap();
            }
        })
    });
    g.finish();
    drop(tx);
    let _ = drain.join();
}

criterion_group!(benches, chunk, receive, serve);
criterion_main!(benches);
