//! Engine state at 1M series with realistic label sets: bytes per series (state + labels +
//! index, and the process RSS it costs), snapshot size, and the time to snapshot and to restore
//! a partition's state (what a new owner pays before it resumes, besides reading the topic).
//!
//! Series: a metric name and 8 labels with repeated values, like a node exporter fleet:
//! `env` (3), `instance` (20 000 hosts), `job` (7), `method` (4), `region` (3), `service`
//! (20), `status` (3), `zone` (6). Each series has seen 12 samples (past cadence learning).
//! Then the same for 100 000 mature series (460 samples each, past every warm-up).
//! Run: `cargo bench --bench state` (`-- mature` for the mature group only).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use deadair::{Engine, Model};

const N: usize = 1_000_000;

fn labels(i: usize) -> (String, [(&'static str, String); 8]) {
    const ENV: [&str; 3] = ["prod", "staging", "dev"];
    const METHOD: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
    const STATUS: [&str; 3] = ["200", "404", "500"];
    (
        format!("http_requests_{}", i % 50),
        [
            ("env", ENV[i % 3].to_string()),
            ("instance", format!("host-{:05}:9100", i / 50)),
            ("job", format!("job-{}", i % 7)),
            ("method", METHOD[(i / 3) % 4].to_string()),
            ("region", format!("region-{}", i % 3)),
            ("service", format!("svc-{}", (i / 7) % 20)),
            ("status", STATUS[(i / 11) % 3].to_string()),
            ("zone", format!("zone-{}", i % 6)),
        ],
    )
}

/// Resident set size of this process, bytes (Linux; 0 elsewhere).
fn rss() -> u64 {
    deadair::metrics::resident_bytes().unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let model = Arc::new(Model::default_model());
    let before = rss();
    let mut e = Engine::new(model.clone());
    let mut out = Vec::new();
    let t0 = 1_767_225_600_000i64;
    for round in 0..12i64 {
        let ts = t0 + round * 10_000;
        e.advance(ts - 1, &mut out);
        for i in 0..N {
            let (name, l) = labels(i);
            let l: [(&str, &str); 8] = l.each_ref().map(|(k, v)| (*k, v.as_str()));
            e.ingest(&name, &l, ts, 100.0 + (i % 13) as f64, &mut out);
        }
        out.clear();
    }
    let after = rss();
    assert_eq!(e.series_count(), N);
    let (state, ids) = e.memory_bytes();
    let snapshot = e.snapshot();
    eprintln!(
        "{N} series, 8 labels each: engine heap {:.0} B/series (state {:.0} + labels and index \
         {:.0}); process RSS grew {:.0} B/series; snapshot {:.0} B/series ({} MB)",
        (state + ids) as f64 / N as f64,
        state as f64 / N as f64,
        ids as f64 / N as f64,
        after.saturating_sub(before) as f64 / N as f64,
        snapshot.len() as f64 / N as f64,
        snapshot.len() / 1_000_000
    );
    snapshot_and_restore(c, "state_1M_series", &model, &e, &snapshot);
}

/// Criterion timings of snapshotting `e` and restoring it from `snapshot`.
fn snapshot_and_restore(
    c: &mut Criterion,
    name: &str,
    model: &Arc<Model>,
    e: &Engine,
    snapshot: &[u8],
) {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.bench_function("snapshot", |b| b.iter(|| black_box(e.snapshot()).len()));
    group.bench_function("restore", |b| {
        b.iter(|| {
            Engine::restore(model.clone(), black_box(snapshot))
                .map(|r| r.series_count())
                .unwrap_or(0)
        })
    });
    group.finish();
}

/// Mature series: 100 000 of them (the same label sets), each fed 460 samples 200 s apart
/// (about 25 hours: past cadence learning, every detector's warm-up and a new series' first
/// day), values varying around a level. Their snapshot size and snapshot/restore times, beside
/// the young series' above.
fn mature(c: &mut Criterion) {
    const M: usize = 100_000;
    const SAMPLES: i64 = 460;
    let model = Arc::new(Model::default_model());
    let sets: Vec<(String, [(&'static str, String); 8])> = (0..M).map(labels).collect();
    let mut e = Engine::new(model.clone());
    let mut out = Vec::new();
    let t0 = 1_767_225_600_000i64;
    let started = std::time::Instant::now();
    for round in 0..SAMPLES {
        let ts = t0 + round * 200_000;
        e.advance(ts - 1, &mut out);
        for (i, (name, l)) in sets.iter().enumerate() {
            let l: [(&str, &str); 8] = l.each_ref().map(|(k, v)| (*k, v.as_str()));
            // a level per series with a little deterministic noise
            let h = (i as u64 ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let noise = (h >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
            e.ingest(name, &l, ts, 100.0 + (i % 13) as f64 + noise, &mut out);
        }
        out.clear();
    }
    let snapshot = e.snapshot();
    eprintln!(
        "{M} mature series ({SAMPLES} samples each, fed in {:.0} s): snapshot {:.0} B/series ({} MB)",
        started.elapsed().as_secs_f64(),
        snapshot.len() as f64 / M as f64,
        snapshot.len() / 1_000_000
    );
    snapshot_and_restore(c, "state_100k_mature_series", &model, &e, &snapshot);
}

criterion_group!(benches, bench, mature);
criterion_main!(benches);
