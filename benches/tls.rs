//! Benchmarks for leaf minting: a cold mint (one CA signature plus a rustls
//! `ServerConfig`) against a cache hit. Run with `cargo bench --bench tls`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use signpost::net::Host;
use signpost::tls::{self, Ca, Minter};

fn load_ca() -> (tempfile::TempDir, Ca) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let files = tls::ca::init(dir.path(), false).expect("create a CA");
    let ca = Ca::load(&files.cert, &files.key).expect("load the CA");
    (dir, ca)
}

fn mint(c: &mut Criterion) {
    let (_dir, ca) = load_ca();
    // Large enough that no iteration evicts: every host is new and minted.
    let minter = Minter::new(ca, 10_000_000).expect("minter");
    let mut n: u64 = 0;
    c.bench_function("mint_cold", |b| {
        b.iter(|| {
            n += 1;
            let host = Host::Name(format!("h{n}.example"));
            black_box(minter.server_config(&host).expect("mint"))
        })
    });
    eprintln!("mint_cold: {} hosts minted", minter.cached());

    let (_dir, ca) = load_ca();
    let minter = Minter::new(ca, 1024).expect("minter");
    let host = Host::Name("www.ning.com".to_string());
    minter.server_config(&host).expect("mint");
    c.bench_function("mint_cached", |b| {
        b.iter(|| black_box(minter.server_config(black_box(&host)).expect("cached")))
    });
}

criterion_group!(benches, mint);
criterion_main!(benches);
