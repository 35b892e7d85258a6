//! Regression guard for detection quality on the NAB subset in ../shared/nab: the shipped
//! default model's NAB scores (`tools/nab_score.py`) and its alert stream
//! (`tools/nab_alerts.py`: windows caught, false alerts per series-day) must not fall behind
//! the committed figures (docs/detection-quality.md, "NAB subset"). The subset is a check, not a target:
//! the model's parameters were chosen on generated series and leave-one-category-out folds.

use std::path::Path;
use std::process::Command;

/// Figures of `models/default.toml` on the shared subset, as committed.
const COMMITTED_STANDARD: f64 = 53.08;
const COMMITTED_WINDOWS: u32 = 35;
const COMMITTED_FALSE_PER_DAY: f64 = 0.042;

fn field(out: &str, name: &str) -> String {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in `{out}`"))
        .to_string()
}

#[test]
fn default_model_keeps_its_nab_figures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let nab = root.join("../shared/nab");
    assert!(
        nab.join("tools/nab_score.py").exists(),
        "../shared/nab must sit beside the project: {}",
        nab.display()
    );
    let mut inputs: Vec<_> = std::fs::read_dir(nab.join("data"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    inputs.sort();
    assert_eq!(inputs.len(), 36);
    let dir = std::env::temp_dir().join(format!("deadair-nab-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let scores = dir.join("scores");
    std::fs::create_dir_all(&scores).unwrap();
    let mut alerts = String::new();
    // Each file from fresh state, as NAB's rules require: one replay per file.
    for (i, input) in inputs.iter().enumerate() {
        let file = dir.join(format!("alerts-{i}.jsonl"));
        let o = Command::new(env!("CARGO_BIN_EXE_deadair"))
            .args(["replay", "-q", "--scores"])
            .arg(&scores)
            .arg("--alerts")
            .arg(&file)
            .arg(input)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: {}",
            input.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        alerts.push_str(&std::fs::read_to_string(&file).unwrap());
    }
    let all = dir.join("alerts.jsonl");
    std::fs::write(&all, alerts).unwrap();
    let python = |args: &[&std::ffi::OsStr]| {
        let o = Command::new("python3")
            .args(args)
            .output()
            .expect("python3");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let score = python(&[
        nab.join("tools/nab_score.py").as_os_str(),
        scores.as_os_str(),
    ]);
    let stream = python(&[
        nab.join("tools/nab_alerts.py").as_os_str(),
        "--alerts".as_ref(),
        all.as_os_str(),
    ]);
    eprintln!(
        "NAB subset: {}\nalert stream: {}",
        score.trim(),
        stream.trim()
    );
    let standard: f64 = field(&score, "standard").parse().unwrap();
    let caught: u32 = field(&stream, "caught")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let per_day: f64 = field(&stream, "false_per_series_day").parse().unwrap();
    assert!(
        standard >= COMMITTED_STANDARD - 1.0,
        "NAB standard score fell to {standard:.2} (committed {COMMITTED_STANDARD})"
    );
    assert!(
        caught + 1 >= COMMITTED_WINDOWS,
        "windows caught fell to {caught} (committed {COMMITTED_WINDOWS})"
    );
    assert!(
        per_day <= COMMITTED_FALSE_PER_DAY + 0.01,
        "false alerts per series-day rose to {per_day} (committed {COMMITTED_FALSE_PER_DAY})"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
