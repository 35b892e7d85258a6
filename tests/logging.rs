//! `deadair run`'s log lines: human text by default, JSON lines with `--log-format json`, and
//! levels from DEADAIR_LOG (issue #15, logs).

use std::process::{Command, Output};

fn deadair(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deadair"));
    c.args(args)
        .env_remove("RUST_LOG")
        .env_remove("DEADAIR_LOG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn missing_config() -> String {
    let dir = std::env::temp_dir().join(format!("deadair-logging-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("absent.toml").display().to_string()
}

#[test]
fn a_failed_run_logs_one_error_line_in_the_chosen_format() {
    let config = missing_config();
    let human = deadair(&["run", "--config", &config], &[]);
    assert_eq!(human.status.code(), Some(2));
    let text = String::from_utf8_lossy(&human.stderr);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains(" ERROR "), "{text}");
    assert!(lines[0].contains("absent.toml: cannot read"), "{text}");

    let json = deadair(&["--log-format", "json", "run", "--config", &config], &[]);
    assert_eq!(json.status.code(), Some(2));
    let text = String::from_utf8_lossy(&json.stderr);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
    assert_eq!(v["level"], "ERROR", "{v}");
    let message = v["fields"]["message"].as_str().unwrap_or("");
    assert!(message.contains("absent.toml: cannot read"), "{v}");
    assert!(v["timestamp"].is_string(), "{v}");
}

#[test]
fn levels_come_from_deadair_log() {
    let config = missing_config();
    let quiet = deadair(&["run", "--config", &config], &[("DEADAIR_LOG", "off")]);
    assert_eq!(quiet.status.code(), Some(2), "the exit code still tells");
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    // a filter that does not parse is said once, and info applies
    let bad = deadair(&["run", "--config", &config], &[("DEADAIR_LOG", "=")]);
    let text = String::from_utf8_lossy(&bad.stderr);
    assert!(
        text.contains("DEADAIR_LOG=`=` is not a log filter"),
        "{text}"
    );
    assert!(text.contains(" ERROR "), "{text}");
    // an unknown format is refused by the command line
    let wrong = deadair(&["--log-format", "xml", "run", "--config", &config], &[]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("expected `human` or `json`"));
}
