//! Regression guard for detection quality: the shipped default model over the NAB subset in
//! ../shared/nab, scored with NAB's own rules (`tools/nab_score.py`), must not fall more than
//! one point below the committed figure.

use std::path::Path;
use std::process::Command;

/// NAB standard-profile score of `models/default.toml` on the shared subset, as committed
/// (README, "Detection quality"). Raise it when the model improves.
const COMMITTED_STANDARD: f64 = 78.01;

#[test]
fn default_model_keeps_its_nab_score() {
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
    let scores = std::env::temp_dir().join(format!("deadair-nab-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scores);
    // Each file from fresh state, as NAB's rules require: one replay per file.
    for input in &inputs {
        let o = Command::new(env!("CARGO_BIN_EXE_deadair"))
            .args(["replay", "-q", "--scores"])
            .arg(&scores)
            .arg(input)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: {}",
            input.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = Command::new("python3")
        .arg(nab.join("tools/nab_score.py"))
        .arg(&scores)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let field = |name: &str| -> f64 {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in `{out}`"))
    };
    let standard = field("standard");
    eprintln!("NAB subset: {}", out.trim());
    assert!(
        standard >= COMMITTED_STANDARD - 1.0,
        "NAB standard score fell to {standard:.2} (committed {COMMITTED_STANDARD})"
    );
}
