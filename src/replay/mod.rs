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
use crate::engine::Engine;
use crate::model::{parse_selector, Matcher, Model};
use crate::series::{SeriesKey, SeriesRef};
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
    let plot_format = match &opts.plot {
        None => None,
        Some(p) => match p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("svg") => Some(false),
            Some("png") => Some(true),
            _ => {
                return Err(ReplayError::Usage(format!(
                    "{}: name the plot file *.svg or *.png",
                    p.display()
                )))
            }
        },
    };
    let mut inputs = Vec::with_capacity(opts.inputs.len());
    for p in &opts.inputs {
        inputs.push(Input::open(p)?);
    }
    let mut scores = Vec::new();
    if let Some(dir) = &opts.scores_dir {
        std::fs::create_dir_all(dir).map_err(out_err(dir))?;
        let mut names = std::collections::HashSet::new();
        for i in &inputs {
            if !names.insert(i.path.file_name()) {
                return Err(ReplayError::Usage(format!(
                    "--scores: two inputs are named {:?}; their score files would overwrite each other",
                    i.path.file_name().unwrap_or_default()
                )));
            }
        }
        for i in &inputs {
            scores.push(ScoreFile::create(dir, i)?);
        }
    }
    let mut alerts_out = match &opts.alerts {
        Some(p) => Some((p, BufWriter::new(File::create(p).map_err(out_err(p))?))),
        None => None,
    };
    let mut target = match &opts.series {
        Some(s) => PlotTarget::Selector(
            parse_selector(s).map_err(|e| ReplayError::Usage(format!("--series: {e}")))?,
        ),
        None => PlotTarget::First(None),
    };
    let mut plot = plot::PlotData::default();

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
    let mut heads: Vec<Option<Record>> = Vec::with_capacity(inputs.len());
    let mut heap = BinaryHeap::new();
    for (i, input) in inputs.iter_mut().enumerate() {
        let head = next_good(input, opts.skip_bad, &mut summary, &mut on_bad)?;
        if let Some(r) = &head {
            heap.push(Reverse((r.ts, i)));
        }
        heads.push(head);
    }

    // the inventory's series are expected from the first timestamp of the input on
    if let Some(Reverse((first, _))) = heap.peek() {
        for s in &expected {
            engine.expect(&s.name, s.labels.as_slice(), *first, &mut alerts);
        }
    }

    let started = Instant::now();
    let mut last_report = started;
    let mut series_name = String::new();
    while let Some(Reverse((ts, i))) = heap.pop() {
        let Some(rec) = heads[i].take() else { continue };
        engine.advance(ts.saturating_sub(1), &mut alerts);
        let outcome = engine.ingest(&rec.name, &rec.labels, ts, rec.value, &mut alerts);
        summary.samples += 1;
        summary.first_ts = Some(summary.first_ts.map_or(ts, |f| f.min(ts)));
        summary.last_ts = Some(summary.last_ts.map_or(ts, |l| l.max(ts)));

        let want_series_idx =
            !scores.is_empty() && scores[i].format == Format::Jsonl || opts.plot.is_some();
        let idx = if want_series_idx {
            engine.series_index(&rec.name, &rec.labels)
        } else {
            None
        };
        if let Some(sf) = scores.get_mut(i) {
            series_name.clear();
            if sf.format == Format::Jsonl {
                if let Some(idx) = idx {
                    series_name.push_str(&engine.series_ref(idx).display());
                }
            }
            sf.write(&rec, &series_name, outcome.score())?;
        }
        if let (Some(_), Some(idx)) = (&opts.plot, idx) {
            let follow = match &mut target {
                PlotTarget::Selector(m) => {
                    let s: SeriesRef<'_> = engine.series_ref(idx);
                    m.iter().all(|m| m.matches(&s))
                        && plot.series.as_ref().is_none_or(|(i, _, _)| *i == idx)
                }
                PlotTarget::First(first) => *first.get_or_insert(idx) == idx,
            };
            if follow {
                if plot.series.is_none() {
                    plot.series =
                        Some((idx, engine.series_id(idx), engine.series_ref(idx).display()));
                }
                plot.budget_p = engine.alert_probability(idx);
                plot.push(ts, rec.value, &outcome);
                plot.next_band = engine.band(idx);
            }
        }
        flush_alerts(&mut alerts, &mut alerts_out, &mut on_alert, &mut plot)?;

        let next = next_good(&mut inputs[i], opts.skip_bad, &mut summary, &mut on_bad)?;
        if let Some(r) = &next {
            heap.push(Reverse((r.ts, i)));
        }
        heads[i] = next;

        if opts.progress
            && summary.samples % 65_536 == 0
            && last_report.elapsed() >= Duration::from_secs(2)
        {
            last_report = Instant::now();
            let secs = started.elapsed().as_secs_f64();
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
    if let Some(last) = summary.last_ts {
        engine.advance(last, &mut alerts);
    }
    // absences still held back for their group's decision are decided now
    engine.finish(&mut alerts);
    flush_alerts(&mut alerts, &mut alerts_out, &mut on_alert, &mut plot)?;

    for mut sf in scores {
        sf.w.flush().map_err(out_err(&sf.path))?;
    }
    if let Some((p, mut w)) = alerts_out {
        w.flush().map_err(out_err(p))?;
    }
    if let Some(p) = &opts.plot {
        if opts.series.is_none() && engine.series_count() > 1 {
            return Err(ReplayError::Usage(format!(
                "--plot: the input has {} series; choose one with --series (e.g. --series '{}')",
                engine.series_count(),
                engine.series_ref(1).display()
            )));
        }
        let Some((_, _, name)) = plot.series.clone() else {
            return Err(ReplayError::Usage(
                "--plot: no sample matched --series".into(),
            ));
        };
        let svg = plot::render_svg(&plot, &name, engine.model());
        let bytes = if plot_format == Some(true) {
            plot::svg_to_png(&svg).map_err(ReplayError::Usage)?
        } else {
            svg.into_bytes()
        };
        std::fs::write(p, bytes).map_err(out_err(p))?;
    }
    let st = engine.stats();
    summary.series = engine.series_count();
    summary.alerts_firing = st.alerts_firing;
    summary.alerts_resolved = st.alerts_resolved;
    summary.late = st.late;
    summary.non_finite = st.non_finite;
    Ok(summary)
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
