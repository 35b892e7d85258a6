//! Replay-path throughput of the engine with the shipped default model, at 10k, 100k and 1M
//! series, and the engine's bytes per series.
//!
//! Samples arrive round-robin over all series (as a scrape interval delivers them), 200 s apart
//! per series (so the warm-up below covers a new series' first day), in messages of 100 samples fed to `Engine::ingest_batch`, each with a metric name and three labels, so every sample pays for identity
//! hashing, the series lookup, the detectors, the absence clock and the alert state machine.
//! The `floor` group runs the same workload through only what any per-series design must do:
//! the series' canonical key hashed (as the engine does), one hash-table lookup, and a 64-byte
//! state update; the README quotes the engine's throughput as a ratio of it.
//! Run: `cargo bench --bench engine` (criterion prints samples/s as "elem/s").

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deadair::{Engine, Model, SampleRef};

/// Series identities laid out like decoded messages: all strings of consecutive samples sit
/// next to each other in one buffer (as in a decoded `SampleBatch`), not scattered over the
/// heap as a million separately allocated `String`s would be.
struct Workload {
    arena: String,
    /// Per series: (name, [(key, value); 3]) as byte ranges into `arena`.
    spans: Vec<[(usize, usize); 7]>,
}

impl Workload {
    fn str(&self, (a, b): (usize, usize)) -> &str {
        &self.arena[a..b]
    }
}

fn workload(n: usize) -> Workload {
    let mut arena = String::new();
    let mut push = |s: &str| {
        let a = arena.len();
        arena.push_str(s);
        (a, arena.len())
    };
    let mut spans = Vec::with_capacity(n);
    for i in 0..n {
        spans.push([
            push(&format!("metric_{}", i % 50)),
            push("instance"),
            push(&format!("host-{:05}:9100", i / 50)),
            push("job"),
            push(&format!("job-{}", i % 7)),
            push("region"),
            push(&format!("region-{}", i % 3)),
        ]);
    }
    Workload { arena, spans }
}

/// A series' name and labels as the engine takes them.
type Ident<'w> = (&'w str, [(&'w str, &'w str); 3]);

/// Every series' identity as string slices of the workload, made once (not per round: the
/// bench measures the engine, and a decoder hands it such slices).
fn idents(w: &Workload) -> Vec<Ident<'_>> {
    w.spans
        .iter()
        .map(|s| {
            (
                w.str(s[0]),
                [
                    (w.str(s[1]), w.str(s[2])),
                    (w.str(s[3]), w.str(s[4])),
                    (w.str(s[5]), w.str(s[6])),
                ],
            )
        })
        .collect()
}

/// Deterministic noise in [-1, 1).
fn noise(i: u64) -> f64 {
    ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 1000) as f64 / 500.0 - 1.0
}

/// Messages of this many samples are fed with `ingest_batch`.
const BATCH: usize = 100;

/// One batch of samples, kept between rounds.
type Batch<'w> = Vec<SampleRef<'w, [(&'w str, &'w str); 3]>>;

/// Feeds one round (one sample per series) at time `ts`, in batches of [`BATCH`].
fn round<'w>(
    e: &mut Engine,
    ids: &'w [Ident<'w>],
    ts: i64,
    batch: &mut Batch<'w>,
    out: &mut Vec<deadair::Alert>,
    outcomes: &mut Vec<deadair::Outcome>,
) {
    e.advance(ts - 1, out);
    for (c, chunk) in ids.chunks(BATCH).enumerate() {
        batch.clear();
        batch.extend(chunk.iter().enumerate().map(|(j, (name, labels))| {
            let value = 100.0 + 10.0 * noise((c * BATCH + j) as u64 ^ (ts as u64) << 20);
            SampleRef {
                name,
                labels,
                ts,
                value,
            }
        }));
        e.ingest_batch(batch, out, outcomes);
        black_box(&outcomes);
        outcomes.clear();
    }
    outcomes.clear();
    out.clear();
}

/// Samples per series fed before measuring: past every warm-up, and at [`STEP_MS`] apart
/// more than a day of event time, past a new series' quiet first day.
const WARM_ROUNDS: usize = 460;
/// Event time between two samples of a series.
const STEP_MS: i64 = 200_000;

fn bench(c: &mut Criterion) {
    let model = Arc::new(Model::default_model());
    let mut group = c.benchmark_group("replay_path");
    group.sample_size(10);
    for &n in &[10_000usize, 100_000, 1_000_000] {
        let w = workload(n);
        let ids = idents(&w);
        let mut batch = Vec::with_capacity(BATCH);
        let mut e = Engine::new(model.clone());
        let mut out = Vec::new();
        let mut outcomes = Vec::new();
        let mut ts = 1_767_225_600_000i64;
        // Past the default model's warm-ups and its first day, so every detector judges every
        // sample as it does for a mature series.
        for _ in 0..WARM_ROUNDS {
            round(&mut e, &ids, ts, &mut batch, &mut out, &mut outcomes);
            ts += STEP_MS;
        }
        let (state, labels) = e.memory_bytes();
        eprintln!(
            "series={n}: SeriesState (detector + absence + alert state) = {} B/series; engine heap incl. \
             Vec growth slack and deadline queue = {:.0} B/series; labels + index = {:.0} B/series",
            Engine::state_bytes_per_series(),
            state as f64 / n as f64,
            labels as f64 / n as f64
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("{n}_series"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    round(&mut e, &ids, ts, &mut batch, &mut out, &mut outcomes);
                    ts += STEP_MS;
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// The floor's per-series state: one cache line of running statistics.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Floor {
    n: f64,
    mean: f64,
    var: f64,
    last: f64,
    last_ts: f64,
    min: f64,
    max: f64,
    ewma: f64,
}

/// A hasher that passes the series id (already a 64-bit hash) through, as the engine's index.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("ids are hashed as u64")
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type IdMap = std::collections::HashMap<u64, u32, std::hash::BuildHasherDefault<IdHasher>>;

/// One round of the floor: per sample, the key hashed, looked up (inserted on first sight),
/// and its 64-byte state updated.
fn floor_round(
    ids: &[Ident<'_>],
    ts: i64,
    index: &mut IdMap,
    states: &mut Vec<Floor>,
    buf: &mut Vec<u8>,
) {
    for (i, (name, labels)) in ids.iter().enumerate() {
        deadair::series::encode_canonical(name, labels, buf);
        let id = deadair::series::hash_canonical(buf);
        let next = states.len() as u32;
        let idx = *index.entry(id).or_insert(next) as usize;
        if idx == states.len() {
            states.push(Floor::default());
        }
        let x = 100.0 + 10.0 * noise(i as u64 ^ (ts as u64) << 20);
        let st = &mut states[idx];
        st.n += 1.0;
        let d = x - st.mean;
        st.mean += d / st.n;
        st.var += d * (x - st.mean);
        st.last = x;
        st.last_ts = ts as f64;
        st.min = st.min.min(x);
        st.max = st.max.max(x);
        st.ewma += 0.1 * (x - st.ewma);
    }
    black_box(&states);
}

fn bench_floor(c: &mut Criterion) {
    let mut group = c.benchmark_group("floor");
    group.sample_size(10);
    for &n in &[10_000usize, 100_000, 1_000_000] {
        let w = workload(n);
        let ids = idents(&w);
        let mut index = IdMap::default();
        let mut states: Vec<Floor> = Vec::new();
        let mut buf = Vec::with_capacity(128);
        let mut ts = 1_767_225_600_000i64;
        floor_round(&ids, ts, &mut index, &mut states, &mut buf);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("{n}_series"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    ts += STEP_MS;
                    floor_round(&ids, ts, &mut index, &mut states, &mut buf);
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_floor);
criterion_main!(benches);
