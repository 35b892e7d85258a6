//! `deadair replay` and `deadair check` through the real binary, on fixtures generated here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;

use common::kit::noise;

fn deadair(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deadair"))
        .args(args)
        .output()
        .expect("run deadair")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("deadair-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// Two series at a 10 s cadence for 220 samples: `web-b` stops after sample 99, `web-a` has a
/// spike at sample 150 (and 70 samples after it: the default model holds an episode 10
/// minutes past its last improbable sample). Returns JSONL lines per host.
fn scenario() -> (String, String) {
    let (mut a, mut b) = (String::new(), String::new());
    for i in 0..220u64 {
        let ts = T0 + i as i64 * 10_000;
        let va = if i == 150 { 160.0 } else { 100.0 + noise(i) };
        writeln!(a, r#"{{"name":"cpu","labels":{{"host":"web-a","job":"api"}},"timestamp":{ts},"value":{va}}}"#).unwrap();
        if i < 100 {
            let vb = 50.0 + noise(i + 1000);
            // RFC 3339 timestamps on this one
            let t = format!(
                "2026-01-01T{:02}:{:02}:{:02}Z",
                i * 10 / 3600,
                i * 10 / 60 % 60,
                i * 10 % 60
            );
            writeln!(b, r#"{{"name":"cpu","labels":{{"job":"api","host":"web-b"}},"timestamp":"{t}","value":{vb}}}"#).unwrap();
        }
    }
    (a, b)
}

fn alerts(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn brief(a: &[Value]) -> Vec<(String, String, String, String)> {
    a.iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_string(),
                v["state"].as_str().unwrap().to_string(),
                v["labels"]["host"].as_str().unwrap().to_string(),
                v["event_time"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn jsonl_replay_reports_silence_spike_and_recovery() {
    let d = tmpdir("jsonl");
    let (a, b) = scenario();
    // interleave by line so one file holds both series
    let mut merged: Vec<(i64, String)> = Vec::new();
    for l in a.lines().chain(b.lines()) {
        let ts = deadair::codec::parse_json_sample(l).unwrap().timestamp;
        merged.push((ts, l.to_string()));
    }
    merged.sort_by_key(|x| x.0);
    let input = d.join("samples.jsonl");
    std::fs::write(
        &input,
        merged
            .iter()
            .map(|x| x.1.clone() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let out = d.join("alerts.jsonl");
    let o = deadair(&["replay", "--alerts", s(&out), s(&input)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = alerts(&out);
    let want = vec![
        // web-b's last sample at 990 s, learned timeout 3 × 10 s -> deadline 1020 s = 00:17:00
        ("absence", "firing", "web-b", "2026-01-01T00:17:00.000Z"),
        ("anomaly", "firing", "web-a", "2026-01-01T00:25:00.000Z"),
        // held 10 minutes (`keep_firing_for`) past its one improbable sample
        ("anomaly", "resolved", "web-a", "2026-01-01T00:35:00.000Z"),
    ];
    let want: Vec<_> = want
        .into_iter()
        .map(|(k, s, h, t)| (k.to_string(), s.to_string(), h.to_string(), t.to_string()))
        .collect();
    assert_eq!(brief(&got), want);
    // firing and resolved share the alert id; versions count transitions
    assert_eq!(got[1]["alert_id"], got[2]["alert_id"]);
    assert_eq!(
        (got[1]["version"].as_u64(), got[2]["version"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(got[1]["value"].as_f64(), Some(160.0));
    assert!(got[1]["upper"].as_f64().unwrap() < 160.0);
    assert!(got[0]["summary"]
        .as_str()
        .unwrap()
        .contains("has not reported since 2026-01-01T00:16:30.000Z"));
    // human-readable lines on stdout
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("firing   absence") && stdout.contains("resolved anomaly"),
        "{stdout}"
    );

    // ids and events are stable across runs, and across splitting the input by series
    let (fa, fb) = (d.join("a.jsonl"), d.join("b.jsonl"));
    std::fs::write(&fa, &a).unwrap();
    std::fs::write(&fb, &b).unwrap();
    let out2 = d.join("alerts2.jsonl");
    let o = deadair(&["replay", "-q", "--alerts", s(&out2), s(&fb), s(&fa)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        alerts(&out2),
        got,
        "two inputs merged by timestamp give the same events"
    );
}

#[test]
fn csv_scores_have_one_row_per_input_row() {
    let d = tmpdir("csv");
    let mut csv = String::from("timestamp,value\n");
    for i in 0..500u64 {
        let ts = 1_404_172_800 + i * 300; // epoch seconds, 5-minute cadence
        let v = if i == 400 {
            500.0
        } else {
            20.0 + 5.0 * noise(i)
        };
        writeln!(csv, "{ts},{v}").unwrap();
    }
    let input = d.join("my_metric.csv");
    std::fs::write(&input, &csv).unwrap();
    let scores = d.join("scores");
    let alerts_path = d.join("alerts.jsonl");
    let o = deadair(&[
        "replay",
        "-q",
        "--scores",
        s(&scores),
        "--alerts",
        s(&alerts_path),
        s(&input),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = std::fs::read_to_string(scores.join("my_metric.csv")).unwrap();
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows[0], "timestamp,value,anomaly_score");
    assert_eq!(rows.len(), 501);
    for (row, input_row) in rows[1..].iter().zip(csv.lines().skip(1)) {
        let (prefix, score) = row.rsplit_once(',').unwrap();
        assert_eq!(prefix, input_row, "timestamp and value echoed as written");
        let score: f64 = score.parse().unwrap();
        assert!((0.0..=1.0).contains(&score));
    }
    let spike: f64 = rows[401].rsplit_once(',').unwrap().1.parse().unwrap();
    assert!(spike > 0.9999, "the spike scores high: {spike}");
    let a = alerts(&alerts_path);
    assert_eq!(a[0]["name"], "my_metric", "series name from the file name");
    assert_eq!(a[0]["kind"], "anomaly");
}

#[test]
fn a_nab_file_replays_with_the_expected_output_shape() {
    let nab = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/nab/data/artificialWithAnomaly/art_daily_jumpsup.csv");
    assert!(
        nab.exists(),
        "../shared/nab must sit beside the project (see README): {}",
        nab.display()
    );
    let d = tmpdir("nab");
    let scores = d.join("scores");
    let o = deadair(&["replay", "-q", "--scores", s(&scores), s(&nab)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let input = std::fs::read_to_string(&nab).unwrap();
    let out = std::fs::read_to_string(scores.join("art_daily_jumpsup.csv")).unwrap();
    assert_eq!(out.lines().count(), input.lines().count());
    assert_eq!(out.lines().next(), Some("timestamp,value,anomaly_score"));
    let first = out.lines().nth(1).unwrap();
    assert!(first.starts_with("2014-04-01 00:00:00,"), "{first}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("replayed 4032 samples from 1 input (1 series)"),
        "{stderr}"
    );
}

#[test]
fn bad_lines_are_named_and_can_be_skipped() {
    let d = tmpdir("bad");
    let input = d.join("bad.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"name":"cpu","timestamp":1767225600000,"value":1}"#,
            "\n",
            r#"{"name":"cpu","timestamp":1767225610000,"value":2}"#,
            "\n",
            r#"{"name":"cpu","timestamp":1767225620000}"#,
            "\n",
            "not json\n",
            r#"{"name":"cpu","timestamp":"tomorrow","value":2}"#,
            "\n",
            r#"{"name":"cpu","timestamp":1767225630000,"value":3}"#,
            "\n",
        ),
    )
    .unwrap();
    let o = deadair(&["replay", "-q", s(&input)]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.jsonl:3: expected a sample like"), "{err}");
    assert!(err.contains("missing field `value`"), "{err}");

    let o = deadair(&["replay", "-q", "--skip-bad", s(&input)]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("skipped: ") && err.contains("bad.jsonl:4:") && err.contains("bad.jsonl:5:"),
        "{err}"
    );
    assert!(
        err.contains("replayed 3 samples") && err.contains("3 bad lines skipped"),
        "{err}"
    );

    let csv = d.join("nohdr.csv");
    std::fs::write(&csv, "time,val\n1,2\n").unwrap();
    let o = deadair(&["replay", s(&csv)]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nohdr.csv:1: expected a header with `timestamp` and `value`"),
        "{err}"
    );
    let o = deadair(&["replay", s(&d.join("missing.csv"))]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.csv: cannot open"));
}

#[test]
fn plot_draws_one_series() {
    let d = tmpdir("plot");
    let (a, b) = scenario();
    let input = d.join("in.jsonl");
    std::fs::write(&input, a + &b).unwrap();
    let svg = d.join("p.svg");
    let o = deadair(&["replay", "-q", "--plot", s(&svg), s(&input)]);
    assert_eq!(o.status.code(), Some(2), "two series and no --series");
    assert!(String::from_utf8_lossy(&o.stderr).contains("choose one with --series"));
    let o = deadair(&[
        "replay",
        "-q",
        "--plot",
        s(&svg),
        "--series",
        r#"cpu{host="web-a"}"#,
        s(&input),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    assert!(text.contains(r#"cpu{host=&quot;web-a&quot;,job=&quot;api&quot;}"#));
    assert!(
        text.contains("<polygon") && text.contains("#ffc9c9"),
        "band and the anomaly episode are drawn"
    );
}

#[test]
fn check_accepts_the_shipped_model_and_names_what_is_wrong() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default.toml");
    let o = deadair(&["check", s(&shipped)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("default.toml: ok (1 rule)"));
    let classic = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/classic-nab.toml");
    let o = deadair(&["check", s(&classic)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let d = tmpdir("check");
    let cases = [
        (
            "unknown.toml",
            "[[rule]]\nname = \"x\"\n[rule.detectors.mad]\nwindw = 10\n",
            "unknown.toml:4:1: key `windw`: unknown field",
        ),
        (
            "regex.toml",
            "[[rule]]\nname = \"x\"\nmatch = '{job=~\"[\"}'\n",
            "regex.toml:3:9: key `match`: bad regex for `job`",
        ),
        (
            "dur.toml",
            "[[rule]]\nname = \"x\"\nkeep_firing_for = \"3 days\"\n",
            "dur.toml:3:19: key `keep_firing_for`: expected a duration",
        ),
        (
            "value.toml",
            "[[rule]]\nname = \"x\"\nthreshold = 1.5\n",
            "value.toml:3:13: key `threshold`: expected a score in (0, 1]",
        ),
    ];
    for (file, text, want) in cases {
        let p = d.join(file);
        std::fs::write(&p, text).unwrap();
        let o = deadair(&["check", s(&p)]);
        assert_eq!(o.status.code(), Some(2), "{file}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{file}: {err}");
    }
    // replay refuses a bad model the same way
    let o = deadair(&["replay", "--model", s(&d.join("value.toml")), s(&shipped)]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn inventory_series_that_never_report_are_absent_and_bad_lines_are_named() {
    let dir = tmpdir("inventory");
    let (a, _) = scenario();
    std::fs::write(dir.join("a.jsonl"), a).unwrap();
    let model =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/models/default.toml"))
            .unwrap()
            .replace("initial = \"1h\"", "initial = \"5m\"");
    assert!(model.contains("initial = \"5m\""));
    std::fs::write(dir.join("model.toml"), model).unwrap();
    std::fs::write(
        dir.join("inv.txt"),
        "# what should be reporting\ncpu{host=\"web-a\",job=\"api\"}\n\ncpu{job=\"api\", host=\"web-c\"}\n",
    )
    .unwrap();
    let out = dir.join("alerts.jsonl");
    let o = deadair(&[
        "replay",
        "-q",
        "--model",
        s(&dir.join("model.toml")),
        "--inventory",
        s(&dir.join("inv.txt")),
        "--alerts",
        s(&out),
        s(&dir.join("a.jsonl")),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = alerts(&out);
    let absent: Vec<_> = brief(&got)
        .into_iter()
        .filter(|b| b.0 == "absence")
        .collect();
    // web-c never reports: absent from the first timestamp + its initial timeout (5 min);
    // web-a reports all along
    assert_eq!(
        absent,
        [(
            "absence".to_string(),
            "firing".to_string(),
            "web-c".to_string(),
            "2026-01-01T00:05:00.000Z".to_string()
        )]
    );
    let c = got.iter().find(|v| v["labels"]["host"] == "web-c").unwrap();
    assert!(c["summary"].as_str().unwrap().contains("inventory"), "{c}");

    std::fs::write(
        dir.join("bad.txt"),
        "cpu{host=\"a\"}\ncpu{host=~\"web-.*\"}\n",
    )
    .unwrap();
    let o = deadair(&[
        "replay",
        "-q",
        "--inventory",
        s(&dir.join("bad.txt")),
        s(&dir.join("a.jsonl")),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.txt:2:") && err.contains("not an exact series"),
        "{err}"
    );
}

#[test]
fn a_job_going_silent_gives_one_source_silent_event_in_replay() {
    // 300 series of job `api` and 300 of job `db`, every 10 s (phases spread over the interval)
    // for 20 minutes; `api` stops after 10 minutes.
    let dir = tmpdir("silence");
    let mut text = String::new();
    for i in 0..120i64 {
        for (job, until) in [("api", 60), ("db", 120)] {
            if i >= until {
                continue;
            }
            for k in 0..300i64 {
                let ts = T0 + i * 10_000 + k * 33;
                writeln!(
                    text,
                    r#"{{"name":"up","labels":{{"job":"{job}","instance":"{job}-{k}"}},"timestamp":{ts},"value":1}}"#
                )
                .unwrap();
            }
        }
    }
    std::fs::write(dir.join("fleet.jsonl"), text).unwrap();
    let out = dir.join("alerts.jsonl");
    let o = deadair(&[
        "replay",
        "-q",
        "--alerts",
        s(&out),
        s(&dir.join("fleet.jsonl")),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = alerts(&out);
    let kinds: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap(),
                v["state"].as_str().unwrap(),
                v["labels"]["job"].as_str().unwrap_or(""),
            )
        })
        .collect();
    // one firing event for the 300 api series, nothing for db
    assert_eq!(kinds, [("source_silent", "firing", "api")], "{got:#?}");
    assert_eq!(got[0]["annotations"]["group_series"], "300");
    // api-0 last reported at 590 s; learned timeout 30 s
    assert_eq!(got[0]["event_time"], "2026-01-01T00:10:20.000Z");
}
