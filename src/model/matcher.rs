//! Prometheus-style label matchers: `{job="api", instance=~"web-.*", env!="dev"}`.

use regex::Regex;

use crate::check::Invalid;
use crate::series::{SeriesKey, SeriesRef};

/// How a matcher compares a label value.
#[derive(Debug, Clone)]
pub enum MatchOp {
    Equal(String),
    NotEqual(String),
    /// Fully anchored, as in Prometheus.
    Regex(Regex),
    NotRegex(Regex),
}

/// One `label op "value"` term. The label `__name__` is the metric name. A label that is
/// absent has the value `""`, as in Prometheus.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
}

impl Matcher {
    pub fn matches(&self, series: &SeriesRef<'_>) -> bool {
        let value = if self.label == "__name__" {
            series.name()
        } else {
            series.label(&self.label).unwrap_or("")
        };
        match &self.op {
            MatchOp::Equal(v) => value == v,
            MatchOp::NotEqual(v) => value != v,
            MatchOp::Regex(r) => r.is_match(value),
            MatchOp::NotRegex(r) => !r.is_match(value),
        }
    }
}

/// Parses a selector: `{}` (everything), `metric_name`, `metric{...}` or `{...}` with terms
/// separated by commas. Values are double-quoted with `\"` and `\\` escapes.
/// Parses one exact series, `name{label="value", ...}` (the selector syntax with `=` only), into
/// its name and labels sorted by key.
pub fn parse_series(text: &str) -> Result<SeriesKey, Invalid> {
    let mut name = None;
    let mut labels = Vec::new();
    for m in parse_selector(text)? {
        match m.op {
            MatchOp::Equal(v) if m.label == "__name__" => name = Some(v),
            MatchOp::Equal(v) => labels.push((m.label, v)),
            _ => {
                return Err(Invalid(format!(
                    "`{}` is not an exact series: only `label=\"value\"` terms are allowed",
                    text.trim()
                )))
            }
        }
    }
    let name = name.ok_or_else(|| format!("`{}` has no metric name", text.trim()))?;
    labels.sort();
    if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Invalid(format!("label `{}` appears twice", w[0].0)));
    }
    Ok(SeriesKey { name, labels })
}

pub fn parse_selector(text: &str) -> Result<Vec<Matcher>, Invalid> {
    let s = text.trim();
    let (name, body) = match s.find('{') {
        Some(open) => {
            let body = s[open + 1..]
                .strip_suffix('}')
                .ok_or_else(|| format!("selector `{s}` opens `{{` but does not end with `}}`"))?;
            (s[..open].trim(), body)
        }
        None => (s, ""),
    };
    let mut out = Vec::new();
    if !name.is_empty() {
        if !is_valid_name(name) {
            return Err(Invalid(format!("`{name}` is not a valid metric name")));
        }
        out.push(Matcher {
            label: "__name__".into(),
            op: MatchOp::Equal(name.into()),
        });
    }
    let mut rest = body.trim();
    while !rest.is_empty() {
        let label_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let label = &rest[..label_end];
        if label.is_empty() || !is_valid_name(label) {
            return Err(Invalid(format!("expected a label name at `{rest}`")));
        }
        rest = rest[label_end..].trim_start();
        let (op, after) = if let Some(r) = rest.strip_prefix("=~") {
            ("=~", r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            ("!~", r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            ("!=", r)
        } else if let Some(r) = rest.strip_prefix('=') {
            ("=", r)
        } else {
            return Err(Invalid(format!(
                "expected one of `=`, `!=`, `=~`, `!~` after `{label}`"
            )));
        };
        let (value, after) = parse_quoted(after.trim_start())
            .ok_or_else(|| format!("expected a double-quoted value after `{label}{op}`"))?;
        let anchored = || {
            Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| format!("bad regex for `{label}`: {}", one_line(&e.to_string())))
        };
        let op = match op {
            "=" => MatchOp::Equal(value),
            "!=" => MatchOp::NotEqual(value),
            "=~" => MatchOp::Regex(anchored()?),
            _ => MatchOp::NotRegex(anchored()?),
        };
        out.push(Matcher {
            label: label.into(),
            op,
        });
        rest = after.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(Invalid(format!("expected `,` or `}}` at `{rest}`")));
        }
    }
    Ok(out)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in chars {
        if escaped {
            out.push(match c {
                'n' => '\n',
                c => c,
            });
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Some((out, &s[i + 1..]));
        } else {
            out.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_series_parse_and_refuse_matchers() {
        let SeriesKey { name, labels } = parse_series(r#"up{job="api", instance="a:1"}"#).unwrap();
        assert_eq!(name, "up");
        assert_eq!(
            labels,
            [
                ("instance".into(), "a:1".into()),
                ("job".into(), "api".into())
            ]
        );
        assert_eq!(parse_series("up").unwrap().labels, []);
        assert!(parse_series(r#"up{job=~"a.*"}"#)
            .unwrap_err()
            .0
            .contains("not an exact series"));
        assert!(parse_series(r#"{job="a"}"#)
            .unwrap_err()
            .0
            .contains("no metric name"));
        assert!(parse_series(r#"up{a="1",a="2"}"#)
            .unwrap_err()
            .0
            .contains("twice"));
    }
    use crate::series::{encode_canonical, SeriesRef};

    fn matches(sel: &str, name: &str, labels: &[(&str, &str)]) -> bool {
        let mut buf = Vec::new();
        encode_canonical(name, labels, &mut buf);
        let s = SeriesRef::new(&buf);
        parse_selector(sel).unwrap().iter().all(|m| m.matches(&s))
    }

    #[test]
    fn all_four_operators() {
        let l = [("env", "prod"), ("instance", "web-12")];
        assert!(matches("{}", "cpu", &l));
        assert!(matches("cpu", "cpu", &l));
        assert!(!matches("mem", "cpu", &l));
        assert!(matches(r#"{env="prod"}"#, "cpu", &l));
        assert!(matches(
            r#"cpu{env!="dev", instance=~"web-\\d+"}"#,
            "cpu",
            &l
        ));
        assert!(
            !matches(r#"{instance=~"web"}"#, "cpu", &l),
            "regex is anchored"
        );
        assert!(matches(r#"{instance!~"db-.*"}"#, "cpu", &l));
        assert!(
            matches(r#"{team=""}"#, "cpu", &l),
            "absent label equals empty"
        );
        assert!(matches(r#"{__name__=~"c.u"}"#, "cpu", &l));
    }

    #[test]
    fn refuses_bad_selectors() {
        for bad in [
            r#"{job="a""#,
            r#"{job~"a"}"#,
            r#"{job=a}"#,
            r#"{job=~"("}"#,
            "9cpu",
            r#"{job="a" x="b"}"#,
        ] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
        let e = parse_selector(r#"{job=~"(unclosed"}"#).unwrap_err();
        assert!(e.0.contains("bad regex for `job`"), "{e}");
    }
}
