//! Benchmarks for the domain index, on a generated list of 2,000,000 random domains.
//!
//! Targets (from the issue): load and compile ≤ 2 s, lookup median ≤ 300 ns, memory
//! ≤ 250 MB. Run with `cargo bench --bench policy`; the load figures (one compile's wall
//! time, entry counts, heap bytes, peak RSS) are printed to stderr before the benchmarks.

use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use http::Method;
use signpost::config::{Action, Config};
use signpost::net::Host;
use signpost::policy::{classify, Policy, Request};

const DOMAINS: usize = 2_000_000;
/// Hosts each lookup benchmark cycles through.
const PROBES: usize = 1024;

/// splitmix64: tiny, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.range(0, from.len() - 1)]
    }
}

const TLDS: &[&str] = &[
    "com", "org", "net", "de", "fr", "uk", "io", "ru", "info", "biz",
];
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const WORDS: &[&str] = &[
    "example", "shop", "news", "free", "best", "online", "cdn", "mail", "video", "games",
];

/// A label of `len` letters and digits, sometimes joined to a word with a hyphen.
fn push_label(rng: &mut Rng, out: &mut String, len: usize) {
    for _ in 0..len {
        out.push(ALNUM[rng.range(0, ALNUM.len() - 1)] as char);
    }
    if len >= 3 && rng.range(0, 7) == 0 {
        out.push('-');
        out.push_str(rng.pick(WORDS));
    }
}

/// A random listed name: 1–3 labels (the main one 3–20 characters, extra ones 1–12)
/// before a TLD, e.g. `k3jx9q-shop.com` or `a.b.c7x.org`.
fn listed_domain(rng: &mut Rng, out: &mut String) {
    out.clear();
    let extra = match rng.range(0, 9) {
        0..=5 => 0,
        6..=8 => 1,
        _ => 2,
    };
    for _ in 0..extra {
        let len = rng.range(1, 12);
        push_label(rng, out, len);
        out.push('.');
    }
    let len = rng.range(3, 20);
    push_label(rng, out, len);
    out.push('.');
    out.push_str(rng.pick(TLDS));
}

/// A name under `notlisted.net`, which no generated name is (nor is any of its labels'
/// suffixes: checked when the probes are built).
fn unlisted_host(rng: &mut Rng) -> String {
    let mut out = String::new();
    for _ in 0..rng.range(1, 3) {
        let len = rng.range(1, 8);
        push_label(rng, &mut out, len);
        out.push('.');
    }
    out.push_str("notlisted.net");
    out
}

/// The generated list: a squidGuard/UT1 folder in a temporary directory, the config naming
/// it, and some of the names for the hit benchmark.
struct BigList {
    _dir: tempfile::TempDir,
    config_path: PathBuf,
    config_text: String,
    samples: Vec<String>,
}

fn generate() -> BigList {
    let dir = tempfile::tempdir().expect("temporary directory");
    let folder = dir.path().join("big");
    std::fs::create_dir(&folder).unwrap();
    let file = std::fs::File::create(folder.join("domains")).unwrap();
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut rng = Rng(0x5169_6e70_6f73_7400);
    let mut name = String::new();
    let mut samples = Vec::with_capacity(PROBES);
    let stride = DOMAINS / PROBES;
    writeln!(w, "# {DOMAINS} generated domains").unwrap();
    for i in 0..DOMAINS {
        listed_domain(&mut rng, &mut name);
        w.write_all(name.as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
        if i % stride == stride / 2 && samples.len() < PROBES {
            samples.push(name.clone());
        }
    }
    w.into_inner().unwrap().sync_all().unwrap();
    let config_text = format!(
        "[[category]]\nname = \"big\"\nlists = ['{}']\n\n\
         [[rule]]\nname = \"r\"\ncategory = \"big\"\naction = \"block\"\n",
        folder.display()
    );
    BigList {
        config_path: dir.path().join("bench.toml"),
        _dir: dir,
        config_text,
        samples,
    }
}

fn compile(path: &Path, text: &str) -> Policy {
    let config = Config::parse(path, text).unwrap_or_else(|e| panic!("{e}"));
    Policy::compile(&config).unwrap_or_else(|e| panic!("{e}"))
}

/// `VmHWM` (peak resident set) and `VmRSS` from /proc/self/status, in kB.
fn rss_kb() -> (Option<u64>, Option<u64>) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Resets the peak RSS to the current RSS (Linux ≥ 4.0); false when that is not possible.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or_else(|| "?".into(), |kb| format!("{:.1} MB", kb as f64 / 1024.0))
}

fn at() -> jiff::Timestamp {
    // A Wednesday, 10:00 UTC.
    "2024-05-15T10:00:00Z".parse().unwrap()
}

fn request(host: &Host) -> Request<'_> {
    Request {
        host,
        path: None,
        method: &Method::GET,
        client: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        user: None,
        groups: &[],
    }
}

fn bench_big_list(c: &mut Criterion) {
    let started = Instant::now();
    let list = generate();
    eprintln!(
        "generated {DOMAINS} domains in {:.2?} ({} bytes)",
        started.elapsed(),
        std::fs::metadata(list._dir.path().join("big/domains"))
            .map(|m| m.len())
            .unwrap_or(0)
    );

    // One compile, measured outside criterion, with the memory it takes.
    let (hwm_before, rss_before) = rss_kb();
    let reset = reset_peak_rss();
    let started = Instant::now();
    let policy = compile(&list.config_path, &list.config_text);
    let took = started.elapsed();
    let (hwm_after, rss_after) = rss_kb();
    let (names, urls) = policy.entry_counts();
    let report = &policy.list_reports[0];
    eprintln!("compile of {DOMAINS} domains: {took:.3?} wall");
    eprintln!(
        "  entries: {names} names/patterns, {urls} urls; list file: {} entries, {} skipped",
        report.entries, report.skipped
    );
    eprintln!(
        "  policy.heap_bytes(): {} ({:.1} MB)",
        policy.heap_bytes(),
        policy.heap_bytes() as f64 / (1024.0 * 1024.0)
    );
    eprintln!(
        "  peak RSS (VmHWM): before compile {}, after compile {}{}",
        mb(hwm_before),
        mb(hwm_after),
        if reset {
            " (peak reset just before compiling)"
        } else {
            " (peak could not be reset: includes generation)"
        }
    );
    eprintln!(
        "  RSS (VmRSS): before compile {}, after compile {}",
        mb(rss_before),
        mb(rss_after)
    );

    {
        let mut group = c.benchmark_group("load");
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(8));
        group.bench_function("compile_2m", |b| {
            b.iter(|| compile(black_box(&list.config_path), black_box(&list.config_text)))
        });
        group.finish();
    }

    // Probes: listed names, some under a subdomain; and names nowhere in the list.
    let mut rng = Rng(0x6c6f_6f6b_7570_0001);
    let hits: Vec<Host> = list
        .samples
        .iter()
        .map(|name| {
            let host = match rng.range(0, 3) {
                0 => format!("www.{name}"),
                1 => {
                    let mut sub = String::new();
                    let len = rng.range(1, 8);
                    push_label(&mut rng, &mut sub, len);
                    format!("{sub}.{name}")
                }
                _ => name.clone(),
            };
            Host::parse(&host).unwrap()
        })
        .collect();
    let misses: Vec<Host> = (0..PROBES)
        .map(|_| Host::parse(&unlisted_host(&mut rng)).unwrap())
        .collect();
    for h in &hits {
        let c = classify(&policy, &request(h), at());
        assert_eq!(c.action, Action::Block, "{h} should be listed");
    }
    for h in &misses {
        let c = classify(&policy, &request(h), at());
        assert!(c.matches.is_empty(), "{h} should not be listed: {c:?}");
    }

    let at = at();
    for (name, hosts) in [("lookup_hit", &hits), ("lookup_miss", &misses)] {
        c.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                let host = &hosts[i % PROBES];
                i += 1;
                classify(black_box(&policy), &request(black_box(host)), at)
            })
        });
    }
}

fn bench_small_policy(c: &mut Criterion) {
    // The shipped config names `lists/malware` relative to the crate root.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).unwrap();
    let path = root.join("config/signpost.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let policy = compile(&path, &text);

    let at = at();
    let mut group = c.benchmark_group("classify_small_policy");
    for host in ["forum.ning.com", "www.example.org"] {
        let parsed = Host::parse(host).unwrap();
        let expected = if host == "forum.ning.com" {
            Action::Coach
        } else {
            Action::Allow
        };
        assert_eq!(classify(&policy, &request(&parsed), at).action, expected);
        group.bench_function(host, |b| {
            b.iter(|| classify(black_box(&policy), &request(black_box(&parsed)), at))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_big_list, bench_small_policy);
criterion_main!(benches);
