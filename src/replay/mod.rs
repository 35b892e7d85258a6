//! `deadair replay`: run the engine offline over files.
//!
//! All inputs are merged into one stream ordered by event time (ties keep input order; each
//! file is read front to back, so a file out of order within itself yields late samples, which
//! the engine drops and counts). Before each sample the engine clock advances to one millisecond
//! before its timestamp (so a sample arriving exactly at a deadline counts as on time); at the
//! end it advances to the newest timestamp seen, so silences that completed before the end fire.

pub mod input;
pub mod plot;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::alert::Alert;
use crate::engine::{Engine, Outcome};
use crate::model::{parse_selector, Matcher, Model};
use crate::series::SeriesKey;
use crate::time::format_rfc3339;
pub use input::{Format, Input, InputError, Record};

/// What to replay and where to write results.
pub struct Options {
    pub model: Arc<Model>,
    pub inputs: Vec<PathBuf>,
    /// Write per-input score files here.
    pub scores_dir: Option<PathBuf>,
    /// Write every alert event as one JSON line here.
    pub alerts: Option<PathBuf>,
    /// Write a plot of one series here (`.svg` or `.png`).
    pub plot: Option<PathBuf>,
    /// Selector of the series to plot (required when the input has several series).
    pub series: Option<String>,
    /// Expected-series file (see [`read_inventory`]).
    pub inventory: Option<PathBuf>,
    /// Count and skip bad lines instead of stopping at the first.
    pub skip_bad: bool,
    /// Print progress to stderr on long runs.
    pub progress: bool,
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub inputs: usize,
    pub samples: u64,
    pub series: usize,
    pub alerts_firing: u64,
    pub alerts_resolved: u64,
    pub bad_lines: u64,
    pub late: u64,
    pub non_finite: u64,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
}

/// Why a replay stopped.
#[derive(Debug)]
pub enum ReplayError {
    Input(InputError),
    Output {
        path: PathBuf,
        error: std::io::Error,
    },
    Usage(String),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Input(e) => write!(f, "{e}"),
            Self::Output { path, error } => write!(f, "{}: cannot write: {error}", path.display()),
            Self::Usage(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ReplayError {}

impl From<InputError> for ReplayError {
    fn from(e: InputError) -> Self {
        Self::Input(e)
    }
}

fn out_err(path: &std::path::Path) -> impl Fn(std::io::Error) -> ReplayError + '_ {
    move |error| ReplayError::Output {
        path: path.to_path_buf(),
        error,
    }
}

/// Per-input score file writer.
struct ScoreFile {
    path: PathBuf,
    w: BufWriter<File>,
    format: Format,
}

impl ScoreFile {
    fn create(dir: &std::path::Path, input: &Input) -> Result<ScoreFile, ReplayError> {
        let name = input
            .path
            .file_name()
            .ok_or_else(|| ReplayError::Usage(format!("{}: not a file", input.path.display())))?;
        let path = dir.join(name);
        let file = File::create(&path).map_err(out_err(&path))?;
        let mut w = BufWriter::new(file);
        if input.format == Format::Csv {
            writeln!(w, "timestamp,value,anomaly_score").map_err(out_err(&path))?;
        }
        Ok(ScoreFile {
            path,
            w,
            format: input.format,
        })
    }

    fn write(&mut self, r: &Record, series: &str, score: f64) -> Result<(), ReplayError> {
        let res = match (self.format, &r.raw) {
            (Format::Csv, Some((ts, v))) => writeln!(self.w, "{ts},{v},{score:.12}"),
            _ => {
                let row = serde_json::json!({
                    "timestamp": r.ts, "series": series, "value": r.value, "anomaly_score": (score * 1e12).round() / 1e12
                });
                writeln!(self.w, "{row}")
            }
        };
        res.map_err(out_err(&self.path))
    }
}

/// Which series the plot follows.
enum PlotTarget {
    Selector(Vec<Matcher>),
    First(Option<u32>),
}

/// Replays `opts.inputs` through a fresh engine. Every alert event is passed to `on_alert`
/// (and written to `opts.alerts`); bad lines go to `on_bad` when skipped.
pub fn run(
    opts: &Options,
    mut on_alert: impl FnMut(&Alert),
    mut on_bad: impl FnMut(&InputError),
) -> Result<Summary, ReplayError> {
    if opts.inputs.is_empty() {
        return Err(ReplayError::Usage("no input files given".into()));
    }
    let png = plot_is_png(opts)?;
    let mut inputs = Vec::with_capacity(opts.inputs.len());
    for p in &opts.inputs {
        inputs.push(Input::open(p)?);
    }
    let mut out = Outputs::open(opts, &inputs)?;

    let mut engine = Engine::new(opts.model.clone());
    let expected = match &opts.inventory {
        Some(path) => read_inventory(path)?,
        None => Vec::new(),
    };
    let mut summary = Summary {
        inputs: inputs.len(),
        ..Summary::default()
    };
    let mut alerts = Vec::new();
    let mut merge = Merge::start(inputs, opts.skip_bad, &mut summary, &mut on_bad)?;

    // the inventory's series are expected from the first timestamp of the input on
    if let Some(first) = merge.first_ts() {
        for s in &expected {
            engine.expect(&s.name, s.labels.as_slice(), first, &mut alerts);
        }
    }

    let mut progress = Progress::start(opts.progress);
    while let Some((ts, i, rec)) = merge.pop() {
        engine.advance(ts.saturating_sub(1), &mut alerts);
        let outcome = engine.ingest(&rec.name, &rec.labels, ts, rec.value, &mut alerts);
        summary.samples += 1;
        summary.first_ts = Some(summary.first_ts.map_or(ts, |f| f.min(ts)));
        summary.last_ts = Some(summary.last_ts.map_or(ts, |l| l.max(ts)));

        out.sample(&mut engine, i, ts, &rec, &outcome)?;
        out.alerts(&mut alerts, &mut on_alert)?;
        merge.refill(i, opts.skip_bad, &mut summary, &mut on_bad)?;
        progress.report(&summary, &engine, ts);
    }
    if let Some(last) = summary.last_ts {
        engine.advance(last, &mut alerts);
    }
    // absences still held back for their group's decision are decided now
    engine.finish(&mut alerts);
    out.alerts(&mut alerts, &mut on_alert)?;
    out.finish(opts, &engine, png)?;

    let st = engine.stats();
    summary.series = engine.series_count();
    summary.alerts_firing = st.alerts_firing;
    summary.alerts_resolved = st.alerts_resolved;
    summary.late = st.late;
    summary.non_finite = st.non_finite;
    Ok(summary)
}

/// Whether the plot (if any) is a PNG (else an SVG); a usage error for other names.
fn plot_is_png(opts: &Options) -> Result<bool, ReplayError> {
    let Some(p) = &opts.plot else {
        return Ok(false);
    };
    match p
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => Ok(false),
        Some("png") => Ok(true),
        _ => Err(ReplayError::Usage(format!(
            "{}: name the plot file *.svg or *.png",
            p.display()
        ))),
    }
}

/// The inputs merged into one stream by timestamp: each input's next record, and a min-heap
/// of (timestamp, input) over those (ties keep input order).
struct Merge {
    inputs: Vec<Input>,
    heads: Vec<Option<Record>>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
}

impl Merge {
    /// Reads the first record of each input.
    fn start(
        mut inputs: Vec<Input>,
        skip_bad: bool,
        summary: &mut Summary,
        on_bad: &mut impl FnMut(&InputError),
    ) -> Result<Merge, ReplayError> {
        let mut heads: Vec<Option<Record>> = Vec::with_capacity(inputs.len());
        let mut heap = BinaryHeap::new();
        for (i, input) in inputs.iter_mut().enumerate() {
            let head = next_good(input, skip_bad, summary, on_bad)?;
            if let Some(r) = &head {
                heap.push(Reverse((r.ts, i)));
            }
            heads.push(head);
        }
        Ok(Merge {
            inputs,
            heads,
            heap,
        })
    }

    /// The timestamp of the earliest record not yet taken.
    fn first_ts(&self) -> Option<i64> {
        self.heap.peek().map(|Reverse((ts, _))| *ts)
    }

    /// The earliest record not yet taken, with its timestamp and input; follow with
    /// [`Merge::refill`] for that input.
    fn pop(&mut self) -> Option<(i64, usize, Record)> {
        while let Some(Reverse((ts, i))) = self.heap.pop() {
            if let Some(rec) = self.heads[i].take() {
                return Some((ts, i, rec));
            }
        }
        None
    }

    /// Reads input `i`'s next record.
    fn refill(
        &mut self,
        i: usize,
        skip_bad: bool,
        summary: &mut Summary,
        on_bad: &mut impl FnMut(&InputError),
    ) -> Result<(), ReplayError> {
        let next = next_good(&mut self.inputs[i], skip_bad, summary, on_bad)?;
        if let Some(r) = &next {
            self.heap.push(Reverse((r.ts, i)));
        }
        self.heads[i] = next;
        Ok(())
    }
}

/// Where a replay's results go: score files, the alert file, the plot.
struct Outputs<'o> {
    /// One per input (or none).
    scores: Vec<ScoreFile>,
    alerts: Option<(&'o PathBuf, BufWriter<File>)>,
    /// The plot file, if one is wanted.
    plot_path: Option<&'o PathBuf>,
    target: PlotTarget,
    plot: plot::PlotData,
    series_name: String,
}

impl<'o> Outputs<'o> {
    /// Creates the score files and the alert file, and reads the plot's selector.
    fn open(opts: &'o Options, inputs: &[Input]) -> Result<Outputs<'o>, ReplayError> {
        let mut scores = Vec::new();
        if let Some(dir) = &opts.scores_dir {
            std::fs::create_dir_all(dir).map_err(out_err(dir))?;
            let mut names = std::collections::HashSet::new();
            for i in inputs {
                if !names.insert(i.path.file_name()) {
                    return Err(ReplayError::Usage(format!(
                        "--scores: two inputs are named {:?}; their score files would overwrite each other",
                        i.path.file_name().unwrap_or_default()
                    )));
                }
            }
            for i in inputs {
                scores.push(ScoreFile::create(dir, i)?);
            }
        }
        let alerts = match &opts.alerts {
            Some(p) => Some((p, BufWriter::new(File::create(p).map_err(out_err(p))?))),
            None => None,
        };
        let target = match &opts.series {
            Some(s) => PlotTarget::Selector(
                parse_selector(s).map_err(|e| ReplayError::Usage(format!("--series: {e}")))?,
            ),
            None => PlotTarget::First(None),
        };
        Ok(Outputs {
            scores,
            alerts,
            plot_path: opts.plot.as_ref(),
            target,
            plot: plot::PlotData::default(),
            series_name: String::new(),
        })
    }

    /// One replayed sample of input `i`: its score row, and its point on the plot.
    fn sample(
        &mut self,
        engine: &mut Engine,
        i: usize,
        ts: i64,
        rec: &Record,
        outcome: &Outcome,
    ) -> Result<(), ReplayError> {
        let want_series_idx = !self.scores.is_empty() && self.scores[i].format == Format::Jsonl
            || self.plot_path.is_some();
        let idx = if want_series_idx {
            engine.series_index(&rec.name, &rec.labels)
        } else {
            None
        };
        if let Some(sf) = self.scores.get_mut(i) {
            self.series_name.clear();
            if sf.format == Format::Jsonl {
                if let Some(idx) = idx {
                    self.series_name.push_str(&engine.series_ref(idx).display());
                }
            }
            sf.write(rec, &self.series_name, outcome.score())?;
        }
        if let (Some(_), Some(idx)) = (self.plot_path, idx) {
            self.plot_point(engine, idx, ts, rec.value, outcome);
        }
        Ok(())
    }

    /// Adds a sample of series `idx` to the plot if the plot follows that series.
    fn plot_point(&mut self, engine: &Engine, idx: u32, ts: i64, value: f64, outcome: &Outcome) {
        let plot = &mut self.plot;
        let follow = match &mut self.target {
            PlotTarget::Selector(m) => {
                // the followed series is known by its index once found (no rebuilt key per sample)
                match &plot.series {
                    Some((i, _, _)) => *i == idx,
                    None => m.iter().all(|m| m.matches(&engine.series_ref(idx).view())),
                }
            }
            PlotTarget::First(first) => *first.get_or_insert(idx) == idx,
        };
        if follow {
            if plot.series.is_none() {
                plot.series = Some((idx, engine.series_id(idx), engine.series_ref(idx).display()));
            }
            plot.budget_p = engine.alert_probability(idx);
            plot.push(ts, value, outcome);
            plot.next_band = engine.band(idx);
        }
    }

    /// Passes the alert events in `alerts` on (alert file, plot, `on_alert`) and empties it.
    fn alerts(
        &mut self,
        alerts: &mut Vec<Alert>,
        on_alert: &mut impl FnMut(&Alert),
    ) -> Result<(), ReplayError> {
        flush_alerts(alerts, &mut self.alerts, on_alert, &mut self.plot)
    }

    /// Flushes the score and alert files, then writes the plot.
    fn finish(self, opts: &Options, engine: &Engine, png: bool) -> Result<(), ReplayError> {
        for mut sf in self.scores {
            sf.w.flush().map_err(out_err(&sf.path))?;
        }
        if let Some((p, mut w)) = self.alerts {
            w.flush().map_err(out_err(p))?;
        }
        let Some(p) = self.plot_path else {
            return Ok(());
        };
        if opts.series.is_none() && engine.series_count() > 1 {
            return Err(ReplayError::Usage(format!(
                "--plot: the input has {} series; choose one with --series (e.g. --series '{}')",
                engine.series_count(),
                engine.series_ref(1).display()
            )));
        }
        let Some((_, _, name)) = self.plot.series.clone() else {
            return Err(ReplayError::Usage(
                "--plot: no sample matched --series".into(),
            ));
        };
        let svg = plot::render_svg(&self.plot, &name, engine.model());
        let bytes = if png {
            plot::svg_to_png(&svg).map_err(|e| ReplayError::Usage(e.to_string()))?
        } else {
            svg.into_bytes()
        };
        std::fs::write(p, bytes).map_err(out_err(p))
    }
}

/// Progress lines on stderr for long replays: at most one every 2 seconds.
struct Progress {
    on: bool,
    started: Instant,
    last_report: Instant,
}

impl Progress {
    fn start(on: bool) -> Progress {
        let started = Instant::now();
        Progress {
            on,
            started,
            last_report: started,
        }
    }

    /// Reports (every 65,536 samples, if 2 seconds have passed since the last report).
    fn report(&mut self, summary: &Summary, engine: &Engine, ts: i64) {
        if self.on
            && summary.samples % 65_536 == 0
            && self.last_report.elapsed() >= Duration::from_secs(2)
        {
            self.last_report = Instant::now();
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!(
                "replay: {} samples ({:.2}M/s), {} series, {} alert events, event time {}",
                summary.samples,
                summary.samples as f64 / secs / 1e6,
                engine.series_count(),
                engine.stats().alerts_firing + engine.stats().alerts_resolved,
                format_rfc3339(ts)
            );
        }
    }
}

/// Reads an expected-series file: one exact series per line (`name{label="value",...}`),
/// blank lines and `#` comments ignored. Errors name the file and line.
pub fn read_inventory(path: &std::path::Path) -> Result<Vec<SeriesKey>, ReplayError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ReplayError::Usage(format!("--inventory {}: cannot read: {e}", path.display()))
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let series = crate::model::parse_series(line)
            .map_err(|e| ReplayError::Usage(format!("{}:{}: {e}", path.display(), n + 1)))?;
        out.push(series);
    }
    Ok(out)
}

fn next_good(
    input: &mut Input,
    skip_bad: bool,
    summary: &mut Summary,
    on_bad: &mut impl FnMut(&InputError),
) -> Result<Option<Record>, ReplayError> {
    loop {
        match input.next_record() {
            Ok(r) => return Ok(r),
            Err(e) if skip_bad && e.line > 0 => {
                summary.bad_lines += 1;
                on_bad(&e);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn flush_alerts(
    alerts: &mut Vec<Alert>,
    out: &mut Option<(&PathBuf, BufWriter<File>)>,
    on_alert: &mut impl FnMut(&Alert),
    plot: &mut plot::PlotData,
) -> Result<(), ReplayError> {
    for a in alerts.drain(..) {
        if let Some((p, w)) = out {
            writeln!(w, "{}", crate::codec::alert_to_json(&a)).map_err(out_err(p))?;
        }
        plot.alert(&a);
        on_alert(&a);
    }
    Ok(())
}

/// One readable line per alert event: time, state, kind, series, summary.
pub fn alert_line(a: &Alert) -> String {
    format!(
        "{} {:<8} {:<8} {} {}",
        format_rfc3339(a.event_time),
        a.state.as_str(),
        a.kind.as_str(),
        &a.alert_id,
        a.summary
    )
}
