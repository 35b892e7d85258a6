//! The `deadair` command line: `run` (Kafka stage), `replay` (offline) and `check` (validate
//! model files and run configs).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use deadair::config::{ConfigError, RunConfig};
use deadair::model::{Model, ModelError};
use deadair::replay;

#[derive(Parser)]
#[command(
    name = "deadair",
    version,
    about = "Per-series anomaly and missing-data detection for metric streams"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as `human` text or `json` lines (stderr; levels from DEADAIR_LOG or RUST_LOG,
    /// default info).
    #[arg(long, global = true, default_value = "human", value_name = "FORMAT")]
    log_format: deadair::logging::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine offline over CSV (`timestamp,value`) or JSONL sample files.
    Replay {
        /// Model file (default: the built-in models/default.toml).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Write one score file per input into DIR (`timestamp,value,anomaly_score` for CSV).
        #[arg(long, value_name = "DIR")]
        scores: Option<PathBuf>,
        /// Write every alert event as a JSON line to FILE.
        #[arg(long, value_name = "FILE")]
        alerts: Option<PathBuf>,
        /// Write a plot of one series to FILE (.svg or .png).
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
        /// The series to plot, as a selector: `cpu{host="a"}`.
        #[arg(long, value_name = "SELECTOR")]
        series: Option<String>,
        /// Expected series, one per line (`up{job="api",instance="a:9100"}`; `#` comments): a
        /// series listed here that never reports gets an absence alert.
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
        /// Skip (and count) bad input lines instead of stopping at the first.
        #[arg(long)]
        skip_bad: bool,
        /// Do not print alert events on stdout.
        #[arg(long, short)]
        quiet: bool,
        /// Input files, merged into one stream by timestamp.
        #[arg(required = true, value_name = "INPUT")]
        inputs: Vec<PathBuf>,
    },
    /// Everything in-process: a Kafka mock cluster, a synthetic producer and the real pipeline;
    /// prints alert events as they happen.
    Demo {
        /// Stop after this long (e.g. `40s`); runs until Ctrl-C otherwise.
        #[arg(long)]
        duration: Option<String>,
        /// Address for /metrics, /healthz and /readyz ("" disables).
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics_addr: String,
    },
    /// Produce synthetic samples to a real broker.
    Gen(GenArgs),
    /// Consume metric samples from Kafka and emit alert events (until SIGTERM / Ctrl-C).
    Run {
        /// Run configuration (TOML; see README, "deadair run").
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Measure a model on generated series: false alerts per series-day on thirteen kinds of
    /// healthy series (and a batch job's bursts, beyond the goals), alerts during a new series'
    /// first day, and the share of injected events caught (docs/detection-quality.md).
    Quality {
        /// Model file (default: the built-in models/default.toml).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Series per kind of healthy series.
        #[arg(long, default_value_t = 40)]
        series: usize,
        /// Series per event.
        #[arg(long, default_value_t = 100)]
        event_series: usize,
        /// Days per series (at least 3).
        #[arg(long, default_value_t = 3)]
        days: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Validate model files and run configs: unknown keys, bad regexes, bad durations,
    /// impossible values.
    Check {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// `deadair gen`'s arguments.
#[derive(clap::Args)]
struct GenArgs {
    #[arg(long)]
    brokers: String,
    #[arg(long)]
    topic: String,
    /// Number of series.
    #[arg(long, default_value_t = 1000)]
    series: usize,
    /// Samples per second, all series together.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long a stretch of samples to produce (e.g. `30s`): in real time while the broker
    /// keeps up, and all of it even when it does not (the run then takes longer).
    #[arg(long, default_value = "10s")]
    duration: String,
    /// Samples per message.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Message format: proto, json, remote_write, otlp or influx (each message marked with its content-type header).
    #[arg(long, default_value = "proto")]
    format: String,
    /// Send no content-type header (as prometheus-kafka-adapter and Vector do).
    #[arg(long)]
    no_headers: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    deadair::logging::init(cli.log_format);
    match cli.command {
        Command::Run { config } => report("deadair run", run(&config)),
        Command::Demo {
            duration,
            metrics_addr,
        } => report("deadair demo", demo(duration.as_deref(), &metrics_addr)),
        Command::Gen(args) => report("deadair gen", gen(&args)),
        Command::Quality {
            model,
            series,
            event_series,
            days,
            seed,
        } => {
            let opts = deadair::quality::Options {
                series,
                event_series,
                days,
                seed,
            };
            report("", quality(model.as_deref(), opts))
        }
        Command::Check { files } => check(&files),
        Command::Replay {
            model,
            scores,
            alerts,
            plot,
            series,
            inventory,
            skip_bad,
            quiet,
            inputs,
        } => match load_model(model.as_deref()) {
            Ok(model) => replay_files(
                replay::Options {
                    model: Arc::new(model),
                    inputs,
                    scores_dir: scores,
                    alerts,
                    plot,
                    series,
                    inventory,
                    skip_bad,
                    progress: true,
                },
                quiet,
            ),
            Err(e) => report("", Err(e)),
        },
    }
}

/// Why a command failed: printed as `deadair <command>: <error>` (files and configuration
/// errors name the file themselves), with exit code 2 for bad input and 1 otherwise.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// A bad command-line argument.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot register the metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Http(#[from] deadair::http::BindError),
    #[error(transparent)]
    Stage(#[from] deadair::kafka::StageError),
    #[error(transparent)]
    Demo(#[from] deadair::demo::DemoError),
}

impl CliError {
    /// 2 for input the user can fix (files, configuration), 1 for a failure at run time.
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Config(_) | CliError::Model(_) | CliError::Read { .. } => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }

    /// Whether the message already names its file (and so needs no command prefix).
    fn names_its_file(&self) -> bool {
        matches!(
            self,
            CliError::Config(_) | CliError::Model(_) | CliError::Read { .. }
        )
    }
}

/// The exit code of a command's result; an error is printed first (prefixed by `command`
/// unless it names its file).
fn report(command: &str, result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if command == "deadair run" {
                // the run's output is its log: an error ends it as a log line (JSON if asked)
                tracing::error!("{e}");
            } else if e.names_its_file() || command.is_empty() {
                eprintln!("{e}");
            } else {
                eprintln!("{command}: {e}");
            }
            e.exit_code()
        }
    }
}

/// The model at `path`, or the built-in one.
fn load_model(path: Option<&std::path::Path>) -> Result<Model, CliError> {
    match path {
        Some(p) => Ok(Model::load(p)?),
        None => Ok(Model::default_model()),
    }
}

/// `deadair quality`: the table on stdout, progress on stderr.
fn quality(
    model: Option<&std::path::Path>,
    opts: deadair::quality::Options,
) -> Result<(), CliError> {
    let model = load_model(model)?;
    let started = std::time::Instant::now();
    let report = deadair::quality::run(&Arc::new(model), opts, |step| {
        eprintln!("quality: {step} ({:.0}s)", started.elapsed().as_secs_f64());
    });
    print!("{}", report.table());
    Ok(())
}

/// `deadair check`: each file's verdict; exit code 2 if any is refused.
fn check(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for f in files {
        match check_file(f) {
            Ok(what) => println!("{}: ok ({what})", f.display()),
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// Validates a model file, or a run config (a file with `[[input]]` tables) and its model.
fn check_file(f: &std::path::Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(f).map_err(|source| CliError::Read {
        file: f.display().to_string(),
        source,
    })?;
    let is_run_config = text
        .lines()
        .any(|l| l.trim_start().starts_with("[[input]]"));
    if !is_run_config {
        let m = Model::load(f)?;
        return Ok(format!(
            "{} rule{}",
            m.rules.len(),
            if m.rules.len() == 1 { "" } else { "s" }
        ));
    }
    let cfg = RunConfig::load(f)?;
    if let Some(m) = &cfg.model {
        Model::load(m)?;
    }
    Ok(format!(
        "run config, {} input topic{}",
        cfg.input.len(),
        if cfg.input.len() == 1 { "" } else { "s" }
    ))
}

/// `deadair replay`: alert lines on stdout (unless `quiet`), the summary and skipped lines on
/// stderr.
fn replay_files(opts: replay::Options, quiet: bool) -> ExitCode {
    let mut shown_bad = 0u32;
    let started = std::time::Instant::now();
    let result = replay::run(
        &opts,
        |a| {
            if !quiet {
                println!("{}", replay::alert_line(a));
            }
        },
        |e| {
            shown_bad += 1;
            if shown_bad <= 10 {
                eprintln!("skipped: {e}");
            } else if shown_bad == 11 {
                eprintln!("skipped: (further bad lines are counted, not shown)");
            }
        },
    );
    match result {
        Ok(s) => {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "replayed {} samples from {} input{} ({} series) in {secs:.2}s: {} firing, {} resolved; {} late, {} non-finite dropped{}",
                s.samples,
                s.inputs,
                if s.inputs == 1 { "" } else { "s" },
                s.series,
                s.alerts_firing,
                s.alerts_resolved,
                s.late,
                s.non_finite,
                if opts.skip_bad { format!("; {} bad lines skipped", s.bad_lines) } else { String::new() }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("deadair replay: {e}");
            ExitCode::from(if matches!(e, replay::ReplayError::Usage(_)) {
                2
            } else {
                1
            })
        }
    }
}

/// `deadair run`: the Kafka stage until SIGTERM or SIGINT.
fn run(config: &std::path::Path) -> Result<(), CliError> {
    let cfg = RunConfig::load(config)?;
    let model = match &cfg.model {
        Some(p) => Model::load(p)?,
        None => Model::default_model(),
    };
    let s = runtime()?.block_on(async {
        tracing::info!(
            "deadair run: group {} on {}, inputs {:?}, alerts to {}",
            cfg.group_id,
            cfg.brokers,
            cfg.input
                .iter()
                .map(|i| i.topic.as_str())
                .collect::<Vec<_>>(),
            cfg.alert_topic
        );
        let registry = prometheus::Registry::new();
        let metrics = Arc::new(deadair::metrics::Metrics::new(&registry)?);
        let health = Arc::new(deadair::http::Health::default());
        if !cfg.metrics_addr.is_empty() {
            let listener = deadair::http::bind(&cfg.metrics_addr).await?;
            tracing::info!(
                "deadair run: metrics on http://{}/metrics",
                cfg.metrics_addr
            );
            tokio::spawn(deadair::http::serve(listener, registry, health.clone()));
        }
        let summary =
            deadair::kafka::run(&cfg, Arc::new(model), metrics, health, shutdown_signal()).await?;
        Ok::<_, CliError>(summary)
    })?;
    tracing::info!(
        "deadair run: stopped: {} messages, {} samples, {} decode errors, {} alert events, {} offsets stored",
        s.messages, s.samples, s.decode_errors, s.alerts, s.offsets_stored
    );
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("deadair run: shutting down");
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

fn parse_duration_arg(flag: &str, text: &str) -> Result<std::time::Duration, CliError> {
    deadair::time::parse_duration(text)
        .map(|ms| std::time::Duration::from_millis(ms.max(0) as u64))
        .map_err(|e| CliError::Usage(format!("{flag}: {e}")))
}

fn demo(duration: Option<&str>, metrics_addr: &str) -> Result<(), CliError> {
    let duration = duration
        .map(|d| parse_duration_arg("--duration", d))
        .transpose()?;
    runtime()?.block_on(deadair::demo::demo(
        duration,
        metrics_addr,
        shutdown_signal(),
        |line| println!("{line}"),
    ))?;
    Ok(())
}

fn gen(args: &GenArgs) -> Result<(), CliError> {
    let (topic, format) = (&args.topic, &args.format);
    let duration = parse_duration_arg("--duration", &args.duration)?;
    let format: deadair::config::InputFormat = serde::Deserialize::deserialize(
        serde::de::value::StrDeserializer::<serde::de::value::Error>::new(format),
    )
    .map_err(|_| {
        CliError::Usage(format!(
            "--format: expected proto, json, remote_write, otlp or influx, found `{format}`"
        ))
    })?;
    let opts = deadair::demo::GenOptions {
        series: args.series,
        rate: args.rate,
        duration,
        batch: args.batch,
        format,
        headers: !args.no_headers,
    };
    let (samples, messages) =
        runtime()?.block_on(deadair::demo::gen(&args.brokers, topic, opts))?;
    eprintln!("gen: produced {samples} samples in {messages} messages to {topic}");
    Ok(())
}
