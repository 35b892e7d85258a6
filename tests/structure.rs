//! The codebase's shape, checked (issue #14): dependencies between the top-level modules of
//! `src/` point one way (no circles), no source file is over 800 lines, no function outside
//! tests is over 120 lines, and no function returns `Result<_, String>`.
//!
//! `cargo test --test structure -- --nocapture` prints the module graph in data-path order.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 120;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The top-level module a file belongs to (`src/engine/silence.rs` -> `engine`), or `None`
/// for the crate roots.
fn top_module(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src_dir()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// The text before the file's `#[cfg(test)]` module (or the whole file): test code may reach
/// anywhere.
fn non_test(text: &str) -> &str {
    match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    }
}

fn is_test_file(file: &Path) -> bool {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs" || name.ends_with("_tests.rs")
}

/// Top-level modules named by `crate::<module>` in `text`.
fn crate_refs(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        if i > 0 {
            let prev = text.as_bytes()[i - 1];
            if prev.is_ascii_alphanumeric() || prev == b'_' {
                continue; // e.g. `deadair_crate::`
            }
        }
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if modules.contains(&name) {
            out.insert(name);
        }
    }
    out
}

/// The import graph between top-level modules (non-test code).
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = rust_files(&src_dir());
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for f in &files {
        let Some(m) = top_module(f) else { continue };
        if is_test_file(f) {
            continue;
        }
        let text = fs::read_to_string(f).unwrap();
        for dep in crate_refs(non_test(&text), &modules) {
            if dep != m {
                graph.get_mut(&m).unwrap().insert(dep);
            }
        }
    }
    graph
}

/// A circle in `graph`, if there is one (depth-first search).
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for d in &graph[n] {
            match state.get(d.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = path.iter().position(|p| p == d).unwrap();
                    let mut c = path[at..].to_vec();
                    c.push(d.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(d, graph, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// Modules in layers: each one after everything it imports (a circle-free graph only).
fn layers(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while done.len() < graph.len() {
        let layer: Vec<String> = graph
            .iter()
            .filter(|(m, deps)| !done.contains(*m) && deps.iter().all(|d| done.contains(d)))
            .map(|(m, _)| m.clone())
            .collect();
        assert!(!layer.is_empty(), "the graph has a circle");
        done.extend(layer.iter().cloned());
        out.push(layer);
    }
    out
}

#[test]
fn top_level_modules_import_one_way() {
    let graph = module_graph();
    if let Some(c) = find_circle(&graph) {
        panic!("a circle between top-level modules: {}", c.join(" -> "));
    }
    println!("top-level modules, each above what it imports:");
    for (i, layer) in layers(&graph).iter().enumerate().rev() {
        for m in layer {
            let deps: Vec<&str> = graph[m].iter().map(String::as_str).collect();
            println!("  {i:>2} {m:<14} -> {}", deps.join(", "));
        }
    }
    // the engine core never reaches the I/O shell
    for core in [
        "series", "model", "detect", "absence", "alert", "engine", "clock",
    ] {
        for shell in ["kafka", "http", "alertmanager", "demo", "metrics"] {
            assert!(
                !reaches(&graph, core, shell),
                "core module `{core}` reaches the I/O module `{shell}`"
            );
        }
    }
    // nothing but the entry points (the demo runs the pipeline) imports the Kafka stage
    for (m, deps) in &graph {
        if m != "demo" {
            assert!(!deps.contains("kafka"), "`{m}` imports from `kafka`");
        }
    }
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(n) = stack.pop() {
        if n == to {
            return true;
        }
        if seen.insert(n.clone()) {
            stack.extend(graph[&n].iter().cloned());
        }
    }
    false
}

#[test]
fn no_source_file_over_800_lines() {
    let mut long = Vec::new();
    for f in rust_files(&src_dir()) {
        let n = fs::read_to_string(&f).unwrap().lines().count();
        if n > MAX_FILE_LINES {
            long.push(format!("{} ({n} lines)", f.display()));
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_FILE_LINES} lines: {long:?}"
    );
}

/// `(name, first line, lines)` of each `fn` in `text` (by brace matching; strings and
/// comments with unbalanced braces are rare enough in this codebase to be caught by review).
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let Some(at) = t.find("fn ") else { continue };
        let head = &t[..at];
        let is_decl = head.split_whitespace().all(|w| {
            matches!(
                w,
                "pub" | "pub(crate)" | "pub(super)" | "async" | "const" | "unsafe"
            )
        });
        if !is_decl || t.starts_with("//") {
            continue;
        }
        let name: String = t[at + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // the body opens at the first `{` at or after the signature; a `;` first means no body
        let mut depth = 0i32;
        let mut opened = false;
        let mut end = None;
        'scan: for (j, l) in lines.iter().enumerate().skip(i) {
            let code = l.split("//").next().unwrap_or("");
            for ch in code.chars() {
                match ch {
                    ';' if !opened => break 'scan,
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => {
                        depth -= 1;
                        if opened && depth == 0 {
                            end = Some(j);
                            break 'scan;
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(e) = end {
            out.push((name, i + 1, e - i + 1));
        }
    }
    out
}

#[test]
fn no_function_over_120_lines_outside_tests() {
    let mut long = Vec::new();
    for f in rust_files(&src_dir()) {
        if is_test_file(&f) {
            continue;
        }
        let text = fs::read_to_string(&f).unwrap();
        for (name, line, n) in functions(non_test(&text)) {
            if n > MAX_FN_LINES {
                long.push(format!("{}:{line} fn {name} ({n} lines)", f.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines: {long:#?}"
    );
}

#[test]
fn no_result_with_a_string_error() {
    let mut found = Vec::new();
    for f in rust_files(&src_dir()) {
        let text = fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let squashed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            if squashed.contains(",String>") && squashed.contains("Result<") {
                found.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "Result<_, String> in src/: {found:#?}");
}

#[test]
fn the_function_scanner_measures_what_it_should() {
    let text = "pub fn a() {\n    if x {\n        y();\n    }\n}\nfn b(x: u8);\nasync fn c() { }\n";
    let f = functions(text);
    assert_eq!(f, vec![("a".to_string(), 1, 5), ("c".to_string(), 7, 1)]);
}
