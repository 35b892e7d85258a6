//! Cardinality limits: how many series one engine (one input partition) and one source may
//! hold. A new series beyond a limit is refused: no state is created for it, the sample is
//! counted (`EngineStats::refused`, and `deadair_samples_dropped_total{reason="cardinality"}` in
//! `deadair run`), and one `cardinality_limit` alert fires per source (or for the partition),
//! never per sample. Existing series are unaffected. The alert resolves once retirements bring
//! the count under 90 % of the limit.
//!
//! A source is a series' group as defined by `[silence] group_by` (default: its `job`, else
//! `instance`, else `host` label; series with none form one source per partition).

use super::{Engine, NO_RULE};
use crate::alert::{alert_id, Alert, AlertKind, AlertStatus, Transition};
use crate::series::SeriesRef;

/// Where a refused series hit its limit.
enum Scope {
    Partition,
    Source(u32),
}

impl Engine {
    /// Whether a new series may be added; when not, steps the limit alert (at `at`, the
    /// sample's event time) and pushes its firing event once.
    pub(super) fn admit(
        &mut self,
        series: &SeriesRef<'_>,
        rule: u16,
        at: i64,
        out: &mut Vec<Alert>,
    ) -> bool {
        let limits = &self.model.limits;
        if self.series.len() >= limits.max_series {
            if self.limit.fire(at) == Transition::Fired {
                self.emit_limit(Scope::Partition, AlertStatus::Firing, at, out);
            }
            return false;
        }
        if rule == NO_RULE {
            return true;
        }
        let (id, _) = self.source_of(series);
        if let Some(&g) = self.group_ids.get(&id) {
            let group = &mut self.groups[g as usize];
            if group.series as usize >= limits.max_series_per_source {
                if group.limit.fire(at) == Transition::Fired {
                    self.emit_limit(Scope::Source(g), AlertStatus::Firing, at, out);
                }
                return false;
            }
        }
        true
    }

    /// After a series of group `g` (`u32::MAX`: none) was retired: resolves limit alerts once
    /// the counts are under 90 % of their limits.
    pub(super) fn limits_after_retire(&mut self, g: u32, at: i64, out: &mut Vec<Alert>) {
        let limits = &self.model.limits;
        let (max, per_source) = (limits.max_series, limits.max_series_per_source);
        if self.limit.is_firing()
            && self.series.len() * 10 < max * 9
            && self.limit.resolve() == Transition::Resolved
        {
            self.emit_limit(Scope::Partition, AlertStatus::Resolved, at, out);
        }
        if g == u32::MAX {
            return;
        }
        let group = &mut self.groups[g as usize];
        if group.limit.is_firing()
            && (group.series as usize) * 10 < per_source * 9
            && group.limit.resolve() == Transition::Resolved
        {
            self.emit_limit(Scope::Source(g), AlertStatus::Resolved, at, out);
        }
    }

    fn emit_limit(&mut self, scope: Scope, status: AlertStatus, at: i64, out: &mut Vec<Alert>) {
        out.push(self.limit_alert(scope, status, at));
        self.count(status);
    }

    /// The `cardinality_limit` events still firing (for [`Engine::firing`]), with the id and
    /// version they fired with.
    pub(super) fn limits_firing(&self, out: &mut Vec<Alert>) {
        if self.limit.is_firing() {
            out.push(self.limit_alert(Scope::Partition, AlertStatus::Firing, self.limit.since));
        }
        for (g, group) in self.groups.iter().enumerate() {
            if group.limit.is_firing() {
                let a = self.limit_alert(
                    Scope::Source(g as u32),
                    AlertStatus::Firing,
                    group.limit.since,
                );
                out.push(a);
            }
        }
    }

    /// A `cardinality_limit` event of `scope`.
    fn limit_alert(&self, scope: Scope, status: AlertStatus, at: i64) -> Alert {
        let mut labels: Vec<(String, String)> = Vec::new();
        let (what, state, limit, count, id) = match scope {
            Scope::Partition => (
                "this partition".to_string(),
                self.limit,
                self.model.limits.max_series,
                self.series.len(),
                crate::series::series_id("limit", &[] as &[(&str, &str)]),
            ),
            Scope::Source(g) => {
                let group = &self.groups[g as usize];
                let what = match &group.label {
                    Some((k, v)) => {
                        labels.push((k.clone(), v.clone()));
                        format!("source {k}=\"{v}\"")
                    }
                    None => "the series without a source label".to_string(),
                };
                (
                    what,
                    group.limit,
                    self.model.limits.max_series_per_source,
                    group.series as usize,
                    group.id,
                )
            }
        };
        let mut id = id;
        if let Some(scope) = &self.scope {
            labels.push(("partition".into(), scope.clone()));
            id = crate::series::series_id(
                "limit",
                &[("id", id.to_string().as_str()), ("partition", scope)],
            );
        }
        labels.sort();
        let summary = match status {
            AlertStatus::Firing => format!(
                "{what} reached its limit of {limit} series: new series are refused (counted as \
                 dropped samples, reason \"cardinality\"); existing series are unaffected"
            ),
            AlertStatus::Resolved => {
                format!("{what} is back under 90 % of its limit of {limit} series ({count})")
            }
        };
        Alert {
            alert_id: alert_id("deadair", AlertKind::CardinalityLimit, id),
            version: u64::from(state.version),
            kind: AlertKind::CardinalityLimit,
            state: status,
            rule: std::sync::Arc::from("deadair"),
            severity: std::sync::Arc::from("warning"),
            name: "deadair_cardinality_limit".into(),
            labels,
            annotations: vec![
                ("limit".into(), limit.to_string()),
                ("series".into(), count.to_string()),
            ],
            event_time: at,
            started_at: state.since,
            emitted_at: self.now.max(at),
            value: Some(count as f64),
            expected: None,
            lower: None,
            upper: Some(limit as f64),
            score: 0.0,
            summary,
            series: id,
        }
    }
}
