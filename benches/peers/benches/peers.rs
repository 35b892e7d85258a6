//! deadair's peers on the NAB subset, streamed one row at a time with no look-ahead.
//!
//! Runs two published Rust detectors over every `DATA/<category>/<file>.csv` (`timestamp,value`)
//! and writes, per detector, `OUT/<detector>/<file>.csv` (`timestamp,anomaly_score`, one row per
//! data row, in order) for `nab_score.py`. On stdout, one line per detector:
//! `<detector> <rows> <seconds> <samples/s>`, seconds being the wall time of its scoring loops
//! only (CSV reading and writing excluded), single thread. Progress goes to stderr.
//!
//!   cargo bench --bench peers -- OUT     (or PEERS_OUT=OUT; default: ./peers-scores)
//!   NAB_DATA=DIR   the NAB data dir (default: ../../../shared/nab/data from this crate)
//!   PEERS_ONLY=shesd|shesd-nab|augurs   run one detector only
//!
//! One parameter set for all files; each file from fresh state. The period of every file is
//! one day in rows, `round(86400 s / median interval)` over the file's first 100 intervals
//! (rows that come before any row is scored): 288 for 5-minute data, 144 for 10-minute, 24 for
//! hourly.
//!
//! - `shesd`: `anomaly_detection` 0.4 (Twitter's S-H-ESD, library defaults: alpha 0.05,
//!   max_anoms 0.1, both directions). At every row i from 2 periods on (the library's minimum),
//!   it is fitted on the trailing window of rows ending at i (all rows so far, capped at the last
//!   `SHESD_WINDOW_PERIODS` periods) and row i scores 1 if the fit flags it (the last point of
//!   the window), else 0. The library only returns flagged indices, so the score is binary.
//!   Rows before 2 periods score 0. One full refit per row: no state is carried.
//!   `shesd-nab`: the same with max_anoms 0.002, the value of NAB's own Twitter ADVec entry
//!   (at most one candidate in a 3-day window of 5-minute data: row i is flagged only when it is
//!   the window's most extreme residual and passes the ESD test).
//! - `augurs`: augurs 0.10 MSTL (one seasonal period, default MSTL parameters) with an AutoETS
//!   non-seasonal ("ZZN") trend model. Before row i, whenever i is 2 periods or more and a
//!   multiple of `AUGURS_K` rows past the first fit, it is fitted on the rows before i (capped at
//!   the last `AUGURS_HISTORY_PERIODS` periods) and forecasts the next `AUGURS_K` rows with a
//!   `AUGURS_LEVEL` prediction interval; each of those rows then scores 0 inside its interval
//!   and `e / (e + h)` outside it, e being how far outside and h the interval's half-width
//!   (0.5 at one half-width outside, rising towards 1). Rows before the first fit, or in a block
//!   whose fit failed, score 0.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::{Fit, Predict};

const SHESD_WINDOW_PERIODS: usize = 3;
/// NAB's own Twitter ADVec entry (scripts/twitterADVec in NAB's repository) ran the R package
/// with max_anoms = 0.002 (on whole files at once, i.e. with look-ahead).
const SHESD_NAB_MAX_ANOMS: f32 = 0.002;
const AUGURS_K: usize = 100;
const AUGURS_HISTORY_PERIODS: usize = 4;
const AUGURS_LEVEL: f64 = 0.95;

struct Series {
    name: String,
    timestamps: Vec<String>,
    values: Vec<f64>,
    period: usize,
}

fn main() {
    let out: PathBuf = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .or_else(|| std::env::var("PEERS_OUT").ok())
        .unwrap_or_else(|| "peers-scores".into())
        .into();
    let data: PathBuf = std::env::var("NAB_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/nab/data"));
    let only = std::env::var("PEERS_ONLY").ok();
    let files = nab_files(&data);
    assert!(
        !files.is_empty(),
        "no CSV files under {}/*/",
        data.display()
    );
    let series: Vec<Series> = files.iter().map(|f| read_series(f)).collect();
    eprintln!("peers: {} files from {}", series.len(), data.display());

    type Scorer = Box<dyn Fn(&[f64], usize) -> Vec<f64>>;
    let detectors: [(&str, Scorer); 3] = [
        ("shesd", Box::new(|y, p| score_shesd(y, p, 0.1))),
        (
            "shesd-nab",
            Box::new(|y, p| score_shesd(y, p, SHESD_NAB_MAX_ANOMS)),
        ),
        ("augurs", Box::new(score_augurs)),
    ];
    for (name, scorer) in detectors {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let dir = out.join(name);
        fs::create_dir_all(&dir).expect("create output dir");
        let (mut rows, mut secs) = (0usize, 0f64);
        for s in &series {
            let t0 = Instant::now();
            let scores = scorer(&s.values, s.period);
            let dt = t0.elapsed().as_secs_f64();
            rows += s.values.len();
            secs += dt;
            eprintln!(
                "peers: {name}: {} ({} rows, period {}) {:.1} s",
                s.name,
                s.values.len(),
                s.period,
                dt
            );
            write_scores(&dir.join(&s.name), &s.timestamps, &scores);
        }
        println!("{name} {rows} {secs:.3} {:.0}", rows as f64 / secs);
    }
}

fn nab_files(data: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(categories) = fs::read_dir(data) else {
        return files;
    };
    for cat in categories.flatten() {
        if !cat.path().is_dir() {
            continue;
        }
        for f in fs::read_dir(cat.path())
            .expect("read category dir")
            .flatten()
        {
            if f.path().extension().is_some_and(|e| e == "csv") {
                files.push(f.path());
            }
        }
    }
    files.sort_by_key(|p| p.file_name().map(|n| n.to_owned()));
    files
}

fn read_series(path: &Path) -> Series {
    let text = fs::read_to_string(path).expect("read CSV");
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("header")
        .split(',')
        .map(str::trim)
        .collect();
    let ti = header
        .iter()
        .position(|h| *h == "timestamp")
        .expect("timestamp column");
    let vi = header
        .iter()
        .position(|h| *h == "value")
        .expect("value column");
    let (mut timestamps, mut values, mut secs) = (Vec::new(), Vec::new(), Vec::new());
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split(',').collect();
        timestamps.push(cols[ti].to_string());
        values.push(cols[vi].trim().parse::<f64>().expect("numeric value"));
        secs.push(epoch_seconds(cols[ti]));
    }
    // One day in rows, from the median of the first 100 intervals only (no look-ahead).
    let mut dts: Vec<i64> = secs
        .windows(2)
        .take(100)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 0)
        .collect();
    dts.sort_unstable();
    let median = dts.get(dts.len() / 2).copied().unwrap_or(300).max(1);
    let period = ((86_400.0 / median as f64).round() as usize).max(2);
    Series {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        timestamps,
        values,
        period,
    }
}

/// `YYYY-MM-DD HH:MM:SS` (NAB's format) as seconds since the epoch.
fn epoch_seconds(ts: &str) -> i64 {
    let n = |a: usize, b: usize| {
        ts[a..b]
            .parse::<i64>()
            .expect("timestamp YYYY-MM-DD HH:MM:SS")
    };
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (hh, mm, ss) = (n(11, 13), n(14, 16), n(17, 19));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

fn write_scores(path: &Path, timestamps: &[String], scores: &[f64]) {
    let mut w = std::io::BufWriter::new(fs::File::create(path).expect("create score file"));
    writeln!(w, "timestamp,anomaly_score").unwrap();
    for (t, s) in timestamps.iter().zip(scores) {
        writeln!(w, "{t},{s:.6}").unwrap();
    }
}

fn score_shesd(values: &[f64], period: usize, max_anoms: f32) -> Vec<f64> {
    let y: Vec<f32> = values.iter().map(|v| *v as f32).collect();
    let mut params = anomaly_detection::AnomalyDetector::params();
    params.max_anoms(max_anoms);
    let cap = SHESD_WINDOW_PERIODS * period;
    let mut scores = vec![0.0; y.len()];
    for i in (2 * period - 1)..y.len() {
        let window = &y[(i + 1).saturating_sub(cap)..=i];
        if let Ok(res) = params.fit(window, period) {
            if res.anomalies().contains(&(window.len() - 1)) {
                scores[i] = 1.0;
            }
        }
    }
    scores
}

fn score_augurs(values: &[f64], period: usize) -> Vec<f64> {
    let cap = AUGURS_HISTORY_PERIODS * period;
    let mut scores = vec![0.0; values.len()];
    let (mut start, mut fits, mut failed) = (2 * period, 0, 0);
    while start < values.len() {
        let end = (start + AUGURS_K).min(values.len());
        let history = &values[start.saturating_sub(cap)..start];
        let model = MSTLModel::new(vec![period], AutoETS::non_seasonal().into_trend_model());
        let forecast = model
            .fit(history)
            .ok()
            .and_then(|f| f.predict(end - start, AUGURS_LEVEL).ok());
        fits += 1;
        let Some(iv) = forecast.and_then(|f| f.intervals) else {
            failed += 1;
            start = end;
            continue;
        };
        {
            for i in start..end {
                let (lo, hi) = (iv.lower[i - start], iv.upper[i - start]);
                let half = (hi - lo) / 2.0;
                let e = if values[i] > hi {
                    values[i] - hi
                } else if values[i] < lo {
                    lo - values[i]
                } else {
                    0.0
                };
                scores[i] = if e <= 0.0 || !e.is_finite() {
                    0.0
                } else if half > 0.0 && half.is_finite() {
                    e / (e + half)
                } else {
                    1.0
                };
            }
        }
        start = end;
    }
    if failed > 0 {
        eprintln!("peers: augurs: {failed} of {fits} fits failed (their rows score 0)");
    }
    scores
}
