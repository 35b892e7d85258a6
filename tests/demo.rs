//! `deadair demo` needs nothing installed: a 25-second run must show the scripted trouble as
//! firing and resolved alert events, and exit 0 by itself.

use std::process::Command;

#[test]
fn demo_prints_firing_and_resolved_alerts_and_stops_by_itself() {
    let out = Command::new(env!("CARGO_BIN_EXE_deadair"))
        .args(["demo", "--duration", "25s", "--metrics-addr", ""])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let has = |state: &str, kind: &str, what: &str| {
        stdout
            .lines()
            .any(|l| l.contains(&format!(" {state:<8} {kind:<8} ")) && l.contains(what))
    };
    assert!(
        has(
            "firing",
            "anomaly",
            r#"cpu_usage_percent{instance="web-1",job="api"}"#
        ),
        "spike:\n{stdout}"
    );
    assert!(
        has(
            "firing",
            "anomaly",
            r#"query_latency_ms{instance="db-1",job="db"}"#
        ),
        "level shift:\n{stdout}"
    );
    assert!(
        has(
            "firing",
            "absence",
            r#"http_requests_per_second{instance="web-2",job="api"}"#
        ),
        "silence:\n{stdout}"
    );
    assert!(
        has(
            "resolved",
            "absence",
            r#"http_requests_per_second{instance="web-2",job="api"}"#
        ),
        "return:\n{stdout}"
    );
    assert!(
        has(
            "firing",
            "stuck",
            r#"cpu_usage_percent{instance="web-3",job="api"}"#
        ),
        "stuck:\n{stdout}"
    );
    assert!(
        has(
            "resolved",
            "stuck",
            r#"cpu_usage_percent{instance="web-3",job="api"}"#
        ),
        "stuck resolved:\n{stdout}"
    );
    assert!(has("firing", "source_silent", "batch"), "source:\n{stdout}");
    // the scripted trouble and nothing else: one firing per script line (spike, shift, stuck,
    // silent series, silent source), none for the healthy series
    let firing: Vec<&str> = stdout.lines().filter(|l| l.contains(" firing ")).collect();
    assert_eq!(firing.len(), 5, "{stdout}");
    assert!(stdout.contains("deadair demo: done after"), "{stdout}");
}
