//! Models: the rule files that say which detectors and absence settings govern which series.
//!
//! A model is a TOML file with one or more `[[rule]]` tables (reference: docs/model.md).
//! Rules are tried in file order and a series is governed by the *first* rule whose matchers
//! match it, so each series carries exactly one rule's state and a catch-all rule goes last.
//! `models/default.toml` is compiled into the binary ([`Model::default_model`]).

pub mod matcher;

use std::path::Path;
use std::sync::Arc;

use serde::{de::Error as _, Deserialize, Deserializer};

use crate::absence::{Absence, RawAbsence};
use crate::check::{self, Invalid};
use crate::detect::learned::{Learned, Learning};
use crate::detect::{score_to_z, DetectorKind, DetectorSet, DetectorState, Verdict};
use crate::series::SeriesRef;
pub use matcher::{parse_selector, parse_series, MatchOp, Matcher};

/// The shipped default model, compiled in.
pub const DEFAULT_MODEL_TOML: &str = include_str!("../../models/default.toml");

/// A validated model.
#[derive(Debug, Clone)]
pub struct Model {
    pub rules: Vec<Rule>,
    /// Correlated-silence grouping (the `[silence]` table); its groups are also the sources
    /// of the per-source series limit.
    pub silence: Silence,
    /// Cardinality limits (the `[limits]` table).
    pub limits: Limits,
}

/// The `[limits]` table: series one engine (one input partition) and one source may hold.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_max_series", deserialize_with = "check::count")]
    pub max_series: usize,
    #[serde(default = "default_max_per_source", deserialize_with = "check::count")]
    pub max_series_per_source: usize,
}

fn default_max_series() -> usize {
    1_000_000
}
fn default_max_per_source() -> usize {
    250_000
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_series: default_max_series(),
            max_series_per_source: default_max_per_source(),
        }
    }
}

/// The `[silence]` table: how per-series absences collapse into one `source_silent` event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    /// A series' group is named by the first of these labels it has (`job="api"`); series
    /// with none of them form one group per input partition.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    /// Fraction of a group's series that must be silent together.
    #[serde(
        default = "default_silence_ratio",
        deserialize_with = "check::open_unit"
    )]
    pub ratio: f64,
    /// ...and at least this many of them.
    #[serde(default = "default_min_series", deserialize_with = "check::min_series")]
    pub min_series: u32,
    /// Longest a timed-out series' own event is held back to see whether its group goes
    /// silent with it, ms (a series is held one of its reporting intervals, at most this;
    /// "0s" turns grouping off).
    #[serde(
        default = "default_silence_window",
        deserialize_with = "check::duration"
    )]
    pub window: i64,
}

fn default_group_by() -> Vec<String> {
    vec!["job".into(), "instance".into(), "host".into()]
}
fn default_silence_ratio() -> f64 {
    0.5
}
fn default_min_series() -> u32 {
    3
}
fn default_silence_window() -> i64 {
    60_000
}

impl Default for Silence {
    fn default() -> Self {
        Self {
            group_by: default_group_by(),
            ratio: default_silence_ratio(),
            min_series: default_min_series(),
            window: default_silence_window(),
        }
    }
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: Arc<str>,
    pub matchers: Vec<Matcher>,
    pub severity: Arc<str>,
    /// Score at or above which the anomaly condition becomes active (classic detectors
    /// without a budget).
    pub threshold: f64,
    /// False alerts per series per day (`false_alerts_per_day`): with it, a sample is
    /// anomalous when its probability under the series' learned behaviour is at most
    /// `budget / tests × interval / 1 day` (see [`Rule::per_sample`]). Always set for the
    /// learned detectors; for classic ones only when the model sets it (their probability is
    /// then `1 - score`).
    pub budget: Option<f64>,
    /// The learned detectors (spike, shift, spread, range, stuck), if the rule uses them.
    pub learned: Option<Learned>,
    /// Score below which an active condition clears (hysteresis; <= threshold).
    pub resolve_threshold: f64,
    /// |z| equivalent of `threshold`, used to draw bands.
    pub z_band: f64,
    /// How long the condition must hold before firing, ms.
    pub for_ms: i64,
    /// How long a firing alert stays firing after the condition clears, ms.
    pub keep_firing_for_ms: i64,
    pub detectors: DetectorSet,
    /// Likelihood post-processing of the statistical detectors' score, if configured.
    pub likelihood: Option<crate::detect::likelihood::Params>,
    /// How the detectors' verdicts combine (`[rule.ensemble]`), if not by the highest.
    pub ensemble: Option<crate::detect::Ensemble>,
    /// Per-sample decay of the onset peak (`0.5^(1 / onset_half_life)`), if the rule reports
    /// onsets (see the engine's `SeriesState::peak`).
    pub onset_decay: Option<f64>,
    pub absence: Absence,
    /// A series silent this long is retired (its state freed; a firing absence gets a final
    /// resolved event), ms: counted from its absence deadline, or from its last sample when it
    /// has no dead-man's switch.
    pub retention_ms: i64,
    /// Extra labels added to this rule's alert events.
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
}

impl Rule {
    pub fn matches(&self, series: &SeriesRef<'_>) -> bool {
        self.matchers.iter().all(|m| m.matches(series))
    }
}

/// A model file that could not be loaded: where and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The key at that position, when one can be named.
    pub key: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(k) = &self.key {
            write!(f, "key `{k}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ModelError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    #[serde(default)]
    rule: Vec<toml::Spanned<RawRule>>,
    #[serde(default)]
    silence: Silence,
    #[serde(default)]
    limits: Limits,
}

fn selector<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Matcher>, D::Error> {
    let s = String::deserialize(d)?;
    parse_selector(&s).map_err(D::Error::custom)
}

fn default_selector() -> Vec<Matcher> {
    Vec::new()
}
fn default_severity() -> String {
    "warning".into()
}
fn default_threshold() -> f64 {
    0.9999
}

/// False alerts per series per day when a rule with learned detectors does not say.
pub const DEFAULT_BUDGET: f64 = 0.01;

/// What a rule's detectors say about one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// The deciding verdict, `None` while every detector is warming up.
    pub verdict: Option<(Verdict, DetectorKind)>,
    /// Its probability under the series' behaviour: learned for the learned detectors, `1 -
    /// score` for classic ones (1 without a verdict).
    pub p: f64,
    /// Probability of the current run of repeated values (`stuck`; 1 when off).
    pub stuck_p: f64,
    /// Whether the value repeats the previous one.
    pub repeats: bool,
}

/// Milliseconds in a day.
const DAY_MS: f64 = 86_400_000.0;

impl Rule {
    /// Scores `x` (event time `ts`) against the series' history, then learns it. `interval()`
    /// is the series' typical sampling interval (ms), asked only when a budget needs it.
    #[inline]
    pub fn evaluate(
        &self,
        st: &mut DetectorState,
        x: f64,
        ts: i64,
        interval: impl Fn() -> i64,
    ) -> Evaluation {
        let d = &self.detectors;
        let Some(learned) = &self.learned else {
            let verdict = d.evaluate(
                self.likelihood.as_ref(),
                self.ensemble.as_ref(),
                st.classic(),
                x,
                ts,
                self.z_band,
            );
            return Evaluation {
                verdict,
                p: verdict.map_or(1.0, |(v, _)| 1.0 - v.score),
                stuck_p: 1.0,
                repeats: false,
            };
        };
        let j = learned.judge_and_learn(st.learned(), x, || {
            let ms = interval();
            crate::detect::learned::Context {
                alert_p: self.per_sample(ms).unwrap_or(0.0),
                interval_ms: ms as f64,
            }
        });
        let mut e = Evaluation {
            verdict: j.verdict,
            p: j.p,
            stuck_p: j.stuck_p,
            repeats: j.repeats,
        };
        if let Some(v) = d.threshold.as_ref().and_then(|t| t.score(x)) {
            if v.score >= 1.0 {
                (e.verdict, e.p) = (Some((v, DetectorKind::Threshold)), 0.0);
            }
        }
        e
    }

    /// How many tests share the budget: the learned detectors enabled (threshold's hard limits
    /// are not drawn from it), or 1 for classic detectors.
    pub fn tests(&self) -> usize {
        self.learned.as_ref().map_or(1, |l| l.tests().max(1))
    }

    /// The per-sample probability at which this rule opens an alert, for a series sampled
    /// every `interval_ms`: `budget / tests × interval / 1 day` (`None` without a budget).
    #[inline]
    pub fn per_sample(&self, interval_ms: i64) -> Option<f64> {
        let budget = self.budget?;
        Some((budget / self.tests() as f64 * interval_ms.max(1) as f64 / DAY_MS).min(0.5))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    /// Selector, e.g. `{job="api", instance=~"web-.*"}`; default: every series.
    #[serde(
        default = "default_selector",
        rename = "match",
        deserialize_with = "selector"
    )]
    matchers: Vec<Matcher>,
    #[serde(default = "default_severity")]
    severity: String,
    #[serde(default, deserialize_with = "check::opt_score")]
    threshold: Option<f64>,
    #[serde(default, deserialize_with = "check::budget")]
    false_alerts_per_day: Option<f64>,
    #[serde(default)]
    learning: Option<Learning>,
    #[serde(default, deserialize_with = "check::opt_score")]
    resolve_threshold: Option<f64>,
    #[serde(default, rename = "for", deserialize_with = "check::duration")]
    for_ms: i64,
    #[serde(default, deserialize_with = "check::duration")]
    keep_firing_for: i64,
    #[serde(default)]
    detectors: DetectorSet,
    #[serde(default)]
    likelihood: Option<crate::detect::likelihood::Params>,
    #[serde(default)]
    ensemble: Option<crate::detect::Ensemble>,
    /// Samples over which the onset peak halves (`onset` reporting); absent: every sample's
    /// score is reported as it is.
    #[serde(default, deserialize_with = "check::positive_opt")]
    onset_half_life: Option<f64>,
    #[serde(default)]
    absence: RawAbsence,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

impl RawRule {
    /// The learned detectors do not mix with the classic ones, their likelihood or ensemble,
    /// or a score threshold; `[rule.learning]` needs them.
    fn check_learned_mix(&self) -> Result<(), Invalid> {
        let d = &self.detectors;
        let learned = d.has_learned();
        if learned {
            let classic = d.classic_names();
            if !classic.is_empty() || self.likelihood.is_some() || self.ensemble.is_some() {
                let mut names: Vec<String> = classic.iter().map(|n| format!("`{n}`")).collect();
                for (on, key) in [
                    (self.likelihood.is_some(), "`[rule.likelihood]`"),
                    (self.ensemble.is_some(), "`[rule.ensemble]`"),
                ] {
                    if on {
                        names.push(key.into());
                    }
                }
                return Err(Invalid(format!(
                    "the learned detectors (spike, shift, spread, range, stuck) cannot be combined with \
                     the classic {} in one rule (only `threshold` goes with both)",
                    names.join(", ")
                )));
            }
            if self.threshold.is_some() || self.resolve_threshold.is_some() {
                return Err(
                    "the learned detectors alert by `false_alerts_per_day`, not by a score \
                     `threshold`"
                        .into(),
                );
            }
        } else if self.learning.is_some() {
            return Err(
                "`[rule.learning]` configures the learned detectors (spike, shift, spread, \
                 range, stuck), which this rule does not enable"
                    .into(),
            );
        }
        Ok(())
    }

    /// Each classic detector's own checks, and the pairs that cannot share a rule.
    fn check_detectors(&self) -> Result<(), Invalid> {
        let d = &self.detectors;
        let checks = [
            d.threshold.as_ref().map(|p| p.validate()),
            d.zscore.as_ref().map(|p| p.validate()),
            d.mad.as_ref().map(|p| p.validate()),
            d.level_shift.as_ref().map(|p| p.validate()),
        ];
        for r in checks.into_iter().flatten() {
            r?;
        }
        if let Some(c) = &d.context {
            c.validate()?;
        }
        let robust = d
            .level_shift
            .as_ref()
            .is_some_and(|p| p.method == crate::detect::level_shift::Method::Robust);
        if d.novelty.as_ref().is_some_and(|n| n.noise.is_some()) && !robust {
            return Err(
                "novelty's `noise` margin reads the spread of `level_shift` with \
                        `method = \"robust\"`, which this rule does not have"
                    .into(),
            );
        }
        if d.context.is_some() && (d.zscore.is_some() || d.mad.is_some()) {
            return Err(
                "`context` shares its per-series memory with the rolling window of \
                        `zscore` and `mad`: a rule can use `context` or those, not both"
                    .into(),
            );
        }
        Ok(())
    }

    fn build(self) -> Result<Rule, Invalid> {
        if self.name.trim().is_empty() {
            return Err("rule `name` must not be empty".into());
        }
        self.check_learned_mix()?;
        let d = &self.detectors;
        let learned = d.has_learned();
        if self.threshold.is_some() && self.false_alerts_per_day.is_some() {
            return Err(
                "give either a score `threshold` or `false_alerts_per_day`, not both".into(),
            );
        }
        let threshold = self.threshold.unwrap_or_else(default_threshold);
        let resolve_threshold = self.resolve_threshold.unwrap_or(threshold);
        if resolve_threshold > threshold {
            return Err(Invalid(format!(
                "`resolve_threshold` ({resolve_threshold}) must not exceed `threshold` ({threshold})"
            )));
        }
        let budget = if learned {
            Some(self.false_alerts_per_day.unwrap_or(DEFAULT_BUDGET))
        } else {
            self.false_alerts_per_day
        };
        self.check_detectors()?;
        let retention_ms = self.absence.retention;
        let absence = self.absence.build()?;
        if d.is_empty() && absence == Absence::Off {
            return Err(
                "the rule has no detectors and absence is off: it could never alert".into(),
            );
        }
        Ok(Rule {
            name: self.name.into(),
            matchers: self.matchers,
            severity: self.severity.into(),
            threshold,
            budget,
            learned: learned.then(|| {
                Learned::new(
                    self.learning.unwrap_or_default(),
                    d.spike.is_some(),
                    d.shift.clone(),
                    d.spread.clone(),
                    d.range.is_some(),
                    d.stuck.is_some(),
                )
            }),
            resolve_threshold,
            // With likelihood the threshold applies to the likelihood, not to a deviation: bands
            // are then drawn at the 0.9999 deviation (|z| = 3.89).
            z_band: score_to_z(if self.likelihood.is_some() {
                0.9999
            } else {
                threshold
            }),
            for_ms: self.for_ms,
            keep_firing_for_ms: self.keep_firing_for,
            detectors: self.detectors,
            likelihood: self.likelihood,
            ensemble: self.ensemble,
            onset_decay: self.onset_half_life.map(|h| 0.5f64.powf(1.0 / h)),
            absence,
            retention_ms,
            labels: self.labels.into_iter().collect(),
            annotations: self.annotations.into_iter().collect(),
        })
    }
}

impl Model {
    /// Parses and validates a model. `file` names the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<Model, ModelError> {
        let raw: RawModel = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            error_at(text, file, span.start, e.message().trim().to_string())
        })?;
        if raw.rule.is_empty() {
            return Err(error_at(
                text,
                file,
                0,
                "the model has no `[[rule]]` tables".into(),
            ));
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(raw.rule.len());
        for spanned in raw.rule {
            let start = spanned.span().start;
            let rule = spanned
                .into_inner()
                .build()
                .map_err(|m| error_at(text, file, start, m.0))?;
            if rules.iter().any(|r| r.name == rule.name) {
                return Err(error_at(
                    text,
                    file,
                    start,
                    format!("duplicate rule name `{}`", rule.name),
                ));
            }
            rules.push(rule);
        }
        if rules.len() > usize::from(u16::MAX - 1) {
            return Err(error_at(
                text,
                file,
                0,
                "too many rules (at most 65534)".into(),
            ));
        }
        if raw.silence.group_by.iter().any(|l| l.is_empty()) {
            return Err(error_at(
                text,
                file,
                0,
                "[silence] `group_by` must not contain an empty label name".into(),
            ));
        }
        Ok(Model {
            rules,
            silence: raw.silence,
            limits: raw.limits,
        })
    }

    /// Reads and validates a model file.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError {
            file: file.clone(),
            line: 0,
            column: 0,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        Model::parse(&text, &file)
    }

    /// The shipped default model (`models/default.toml`, compiled in).
    pub fn default_model() -> Model {
        // The shipped file is checked by a unit test; failing here is a build defect.
        Model::parse(DEFAULT_MODEL_TOML, "models/default.toml")
            .unwrap_or_else(|e| panic!("the compiled-in default model is invalid: {e}"))
    }

    /// Index of the first rule matching `series`, if any.
    pub fn rule_for(&self, series: &SeriesRef<'_>) -> Option<usize> {
        self.rules.iter().position(|r| r.matches(series))
    }
}

/// Builds an error at byte `offset` of `text`, naming the key written on that line if any.
fn error_at(text: &str, file: &str, offset: usize, message: String) -> ModelError {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line_text = text[line_start..].lines().next().unwrap_or("");
    let key = line_text
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('[') && !k.starts_with('#'))
        .or_else(|| {
            let t = line_text.trim();
            t.starts_with('[')
                .then(|| t.trim_matches(|c| c == '[' || c == ']').to_string())
        });
    ModelError {
        file: file.to_string(),
        line,
        column,
        key,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_default_model_is_valid() {
        let m = Model::default_model();
        assert!(!m.rules.is_empty());
        let last = m.rules.last().unwrap();
        assert!(
            last.matchers.is_empty(),
            "the default model ends with a catch-all rule"
        );
    }

    fn err(text: &str) -> ModelError {
        Model::parse(text, "m.toml").unwrap_err()
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = err("[[rule]]\nname = \"a\"\nthreshhold = 0.9\n");
        assert_eq!((e.line, e.key.as_deref()), (3, Some("threshhold")), "{e}");
        assert!(
            e.to_string()
                .starts_with("m.toml:3:1: key `threshhold`: unknown field"),
            "{e}"
        );

        let e = err("[[rule]]\nname = \"a\"\nmatch = '{job=~\"(\"}'\n[rule.detectors.mad]\n");
        assert_eq!((e.line, e.key.as_deref()), (3, Some("match")), "{e}");
        assert!(e.message.contains("bad regex"), "{e}");

        let e = err("[[rule]]\nname = \"a\"\nfor = \"5 minutes\"\n[rule.detectors.mad]\n");
        assert_eq!((e.line, e.key.as_deref()), (3, Some("for")), "{e}");

        let e = err("[[rule]]\nname = \"a\"\n[rule.detectors.ewma]\nalpha = 2\n");
        assert_eq!((e.line, e.key.as_deref()), (4, Some("alpha")), "{e}");

        let e = err("[[rule]]\nname = \"a\"\n[rule.detectors.mad]\nwindow = 500\n");
        assert_eq!((e.line, e.key.as_deref()), (4, Some("window")), "{e}");
    }

    #[test]
    fn silence_table_defaults_and_errors() {
        let m = Model::default_model();
        assert_eq!(m.silence, Silence::default());
        let e = err("[[rule]]\nname = \"a\"\n[silence]\nratio = 1.5\n");
        assert_eq!((e.line, e.key.as_deref()), (4, Some("ratio")), "{e}");
        let e = err("[[rule]]\nname = \"a\"\n[silence]\nmin_series = 1\n");
        assert_eq!((e.line, e.key.as_deref()), (4, Some("min_series")), "{e}");
        let e = err("[[rule]]\nname = \"a\"\n[silence]\nwindw = \"5s\"\n");
        assert!(e.message.contains("windw"), "{e}");
        let e = err("[[rule]]\nname = \"a\"\n[rule.absence]\nirregular = 0.5\n");
        assert_eq!((e.line, e.key.as_deref()), (4, Some("irregular")), "{e}");
    }

    #[test]
    fn refuses_impossible_combinations() {
        let e = err("[[rule]]\nname = \"a\"\nthreshold = 0.9\nresolve_threshold = 0.95\n[rule.detectors.mad]\n");
        assert_eq!(e.line, 1, "{e}");
        assert!(e.message.contains("resolve_threshold"), "{e}");
        let e = err("[[rule]]\nname = \"a\"\n[rule.absence]\ntimeout = \"off\"\n");
        assert!(e.message.contains("never alert"), "{e}");
        let e = err("[[rule]]\nname = \"a\"\n[rule.absence]\nfloor = \"2h\"\nceiling = \"1h\"\n");
        assert!(e.message.contains("floor"), "{e}");
        let e = err("[[rule]]\nname = \"a\"\n[rule.absence]\ntimeout = \"soon\"\n");
        assert!(e.message.contains("soon"), "{e}");
        let e = err("[[rule]]\nname = \"a\"\n[rule.detectors.threshold]\n");
        assert!(e.message.contains("above"), "{e}");
        let e = err("[[rule]]\nname = \"a\"\n[rule.detectors.mad]\n[[rule]]\nname = \"a\"\n[rule.detectors.mad]\n");
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("duplicate"), "{e}");
        assert!(err("").message.contains("no `[[rule]]`"));
    }

    #[test]
    fn first_matching_rule_wins() {
        let m = Model::parse(
            "[[rule]]\nname = \"api\"\nmatch = '{job=\"api\"}'\n[rule.detectors.mad]\n\
             [[rule]]\nname = \"rest\"\n[rule.detectors.ewma]\n",
            "m.toml",
        )
        .unwrap();
        let mut buf = Vec::new();
        crate::series::encode_canonical("cpu", &[("job", "api")], &mut buf);
        assert_eq!(m.rule_for(&SeriesRef::new(&buf)), Some(0));
        crate::series::encode_canonical("cpu", &[("job", "db")], &mut buf);
        assert_eq!(m.rule_for(&SeriesRef::new(&buf)), Some(1));
        assert_eq!(
            m.rules[0].absence,
            Model::default_model().rules.last().unwrap().absence
        );
    }

    #[test]
    fn refuses_detector_combinations_that_cannot_share_state() {
        let e = err("[[rule]]\nname = \"a\"\n[rule.detectors.mad]\n[rule.detectors.context]\n");
        assert!(
            e.to_string().contains("`context` or those, not both"),
            "{e}"
        );
        let e = err("[[rule]]\nname = \"a\"\n[rule.detectors.novelty]\nnoise = 0.25\n");
        assert!(e.to_string().contains("method = \"robust\""), "{e}");
        let e = err(
            "[[rule]]\nname = \"a\"\n[rule.detectors.context]\nlevels = 30\n\
             [rule.detectors.context.season]\nbuckets = 6\n",
        );
        assert!(e.to_string().contains("must not exceed 96"), "{e}");
        // the learned detectors go with `threshold` only, and alert by a budget
        let e = err("[[rule]]\nname = \"a\"\n[rule.detectors.spike]\n[rule.detectors.mad]\n");
        assert!(
            e.to_string()
                .contains("cannot be combined with the classic `mad`"),
            "{e}"
        );
        let e = err("[[rule]]\nname = \"a\"\nthreshold = 0.9\n[rule.detectors.spike]\n");
        assert!(e.to_string().contains("false_alerts_per_day"), "{e}");
        // `spread`'s variance ratio: above 1 (at 1 its test tells nothing apart)
        let e = err("[[rule]]\nname = \"a\"\n[rule.detectors.spread]\nratio = 1\n");
        assert_eq!((e.line, e.key.as_deref()), (4, Some("ratio")), "{e}");
        assert!(e.message.contains("above 1 and at most 100"), "{e}");
        let e = err("[[rule]]\nname = \"a\"\n[rule.learning]\n[rule.detectors.mad]\n");
        assert!(e.to_string().contains("[rule.learning]"), "{e}");
        // the default model: the learned detectors under the default budget, onset scores
        let m = Model::default_model();
        let r = m.rules.last().unwrap();
        assert!(r.learned.as_ref().is_some_and(|l| l.tests() == 5));
        assert_eq!(r.budget, Some(DEFAULT_BUDGET));
        assert!(r
            .onset_decay
            .is_some_and(|d| (d.powf(50.0) - 0.5).abs() < 1e-12));
    }

    #[test]
    fn the_budget_is_checked_and_shared_per_sample() {
        let e = err("[[rule]]\nname = \"a\"\nfalse_alerts_per_day = 0\n[rule.detectors.spike]\n");
        assert_eq!(
            (e.line, e.key.as_deref()),
            (3, Some("false_alerts_per_day")),
            "{e}"
        );
        assert!(e.message.contains("(0, 100]"), "{e}");
        assert!(err(
            "[[rule]]\nname = \"a\"\nfalse_alerts_per_day = 101\n[rule.detectors.spike]\n"
        )
        .message
        .contains("(0, 100]"));
        let e = err("[[rule]]\nname = \"a\"\nthreshold = 0.9\nfalse_alerts_per_day = 1\n[rule.detectors.mad]\n");
        assert!(e.message.contains("not both"), "{e}");
        let m = Model::parse(
            "[[rule]]\nname = \"a\"\nfalse_alerts_per_day = 0.5\n[rule.detectors.spike]\n[rule.detectors.stuck]\n",
            "m.toml",
        )
        .unwrap();
        let r = &m.rules[0];
        // 0.5 a day over two tests, one sample a minute: 0.25 / 1440 per test and sample
        let p = r.per_sample(60_000).unwrap();
        assert!((p - 0.25 / 1440.0).abs() < 1e-15, "{p}");
        // a classic rule without a budget has none
        let m = Model::parse("[[rule]]\nname = \"a\"\n[rule.detectors.mad]\n", "m.toml").unwrap();
        assert_eq!(m.rules[0].per_sample(60_000), None);
    }
}
