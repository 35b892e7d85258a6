//! The alert events an engine emits: anomaly, stuck and absence events built from a series'
//! state and its rule, with their summaries.

use super::*;

impl Engine {
    pub(super) fn base_alert(
        &self,
        idx: u32,
        rule: &Rule,
        kind: AlertKind,
        state: AlertStatus,
        version: u32,
    ) -> Alert {
        let series = self.series.series(idx);
        let mut labels: Vec<(String, String)> = series
            .view()
            .labels()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in &rule.labels {
            match labels.binary_search_by(|(lk, _)| lk.as_str().cmp(k)) {
                Ok(i) => labels[i].1 = v.clone(),
                Err(i) => labels.insert(i, (k.clone(), v.clone())),
            }
        }
        Alert {
            alert_id: alert_id(&rule.name, kind, series.id()),
            version: u64::from(version),
            kind,
            state,
            rule: rule.name.clone(),
            severity: rule.severity.clone(),
            name: series.view().name().to_string(),
            labels,
            annotations: rule.annotations.clone(),
            event_time: 0,
            started_at: 0,
            emitted_at: self.now,
            value: None,
            expected: None,
            lower: None,
            upper: None,
            score: 0.0,
            summary: String::new(),
            series: series.id(),
        }
    }

    pub(super) fn emit_anomaly(
        &mut self,
        idx: u32,
        transition: Transition,
        ts: i64,
        value: f64,
        verdict: Option<(Verdict, DetectorKind)>,
        out: &mut Vec<Alert>,
    ) {
        let mut a = self.episode_alert(idx, AlertKind::Anomaly, transition, ts, value);
        let status = a.state;
        let st = &self.states[idx as usize];
        let rule = &self.model.rules[st.rule as usize];
        let series = self.series.series(idx).display();
        if verdict.is_none() {
            a.summary = format!(
                "{series} stopped reporting; its anomaly episode is closed after {} (see the absence alert)",
                format_duration(ts - st.anomaly.since)
            );
        }
        if let Some((mut v, kind)) = verdict {
            if v.lower.is_nan() {
                // the learned detectors draw their band only when it is shown
                let band = match (&rule.learned, &st.detectors, st.cadence.typical()) {
                    (Some(l), DetectorState::Learned(ls), interval) => rule
                        .per_sample(interval.unwrap_or(DEFAULT_INTERVAL_MS))
                        .and_then(|ps| l.band(ls, ps)),
                    _ => None,
                };
                (v.lower, v.upper) = band.unwrap_or((v.expected, v.expected));
            }
            a.expected = Some(v.expected);
            a.lower = Some(v.lower);
            a.upper = Some(v.upper);
            a.score = v.score;
            let rarity = || {
                let p = 1.0 - v.score;
                if p > 0.0 {
                    format!(
                        "about 1 in {} samples of this series",
                        num((1.0 / p).round())
                    )
                } else {
                    "rarer than 1 in 1e16 samples of this series".to_string()
                }
            };
            let band = || format!("normal {} to {}", num(v.lower), num(v.upper));
            a.summary = match status {
                AlertStatus::Firing if kind == DetectorKind::Context => format!(
                    "{series} is {}: unusual after its recent levels or at this time of day \
                     (its level is expected near {}, normal {} to {}; score {:.4})",
                    num(value),
                    num(v.expected),
                    num(v.lower),
                    num(v.upper),
                    v.score
                ),
                AlertStatus::Firing if kind == DetectorKind::Spike => format!(
                    "{series} is {}: a {} against its recent level {} ({}; {})",
                    num(value),
                    if value >= v.expected { "spike" } else { "dip" },
                    num(v.expected),
                    band(),
                    rarity()
                ),
                AlertStatus::Firing if kind == DetectorKind::Shift => format!(
                    "{series} is {}: its level moved away from where it has been for hours \
                     (recent level {}; {})",
                    num(value),
                    num(v.expected),
                    rarity()
                ),
                AlertStatus::Firing if kind == DetectorKind::Range => format!(
                    "{series} is {}: beyond the range it has shown in recent days (recent level {}; {})",
                    num(value),
                    num(v.expected),
                    rarity()
                ),
                AlertStatus::Firing if kind == DetectorKind::Spread => format!(
                    "{series} is {}: its values swing far more than usual around {} ({})",
                    num(value),
                    num(v.expected),
                    rarity()
                ),
                AlertStatus::Firing => format!(
                    "{series} is {} where {} expected {} (normal {} to {}, score {:.4})",
                    num(value),
                    kind.as_str(),
                    num(v.expected),
                    num(v.lower),
                    num(v.upper),
                    v.score
                ),
                AlertStatus::Resolved if rule.learned.is_some() => format!(
                    "{series} is back to normal at {} (recent level {}) after {}",
                    num(value),
                    num(v.expected),
                    format_duration(ts - st.anomaly.since)
                ),
                AlertStatus::Resolved => format!(
                    "{series} is no longer anomalous at {} (expected {}, score {:.4}) after {}",
                    num(value),
                    num(v.expected),
                    v.score,
                    format_duration(ts - st.anomaly.since)
                ),
            };
        }
        self.count(status);
        out.push(a);
    }

    /// The event of an anomaly or stuck transition at `ts` (`value` NaN when the series went
    /// silent or was retired), before its score and summary.
    pub(super) fn episode_alert(
        &self,
        idx: u32,
        kind: AlertKind,
        transition: Transition,
        ts: i64,
        value: f64,
    ) -> Alert {
        let st = &self.states[idx as usize];
        let rule = &self.model.rules[st.rule as usize];
        let status = if transition == Transition::Fired {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        let episode = if kind == AlertKind::Stuck {
            (st.stuck.since, st.stuck.version)
        } else {
            (st.anomaly.since, st.anomaly.version)
        };
        let mut a = self.base_alert(idx, rule, kind, status, episode.1);
        a.event_time = ts;
        a.started_at = episode.0;
        a.emitted_at = self.now.max(ts);
        a.value = value.is_finite().then_some(value);
        a
    }

    /// A `stuck` transition at `ts` (`value`: the repeated value, or NaN when the series went
    /// silent or was retired).
    pub(super) fn emit_stuck(
        &mut self,
        idx: u32,
        transition: Transition,
        ts: i64,
        value: f64,
        out: &mut Vec<Alert>,
    ) {
        let mut a = self.episode_alert(idx, AlertKind::Stuck, transition, ts, value);
        let status = a.state;
        let st = &self.states[idx as usize];
        a.score = if status == AlertStatus::Firing {
            1.0
        } else {
            0.0
        };
        let series = self.series.series(idx).display();
        a.summary = match status {
            AlertStatus::Firing => format!(
                "{series} keeps repeating {}: far longer than this series has ever repeated a \
                 value (a frozen exporter or a cached reading?)",
                num(value)
            ),
            AlertStatus::Resolved if value.is_finite() => format!(
                "{series} varies again ({}) after {} stuck",
                num(value),
                format_duration(ts - st.stuck.since)
            ),
            AlertStatus::Resolved => format!(
                "{series} stopped reporting; its stuck episode is closed after {}",
                format_duration(ts - st.stuck.since)
            ),
        };
        self.count(status);
        out.push(a);
    }

    /// `last_seen`: the series' last sample before the silence (for the summary).
    pub(super) fn emit_absence(
        &mut self,
        idx: u32,
        status: AlertStatus,
        event_time: i64,
        last_seen: i64,
        value: Option<f64>,
        out: &mut Vec<Alert>,
    ) {
        let st = &self.states[idx as usize];
        let rule = &self.model.rules[st.rule as usize];
        let mut a = self.base_alert(idx, rule, AlertKind::Absence, status, st.absence.version);
        a.event_time = event_time;
        a.started_at = st.absence.since;
        a.emitted_at = self.now.max(event_time);
        a.value = value;
        a.score = if status == AlertStatus::Firing {
            1.0
        } else {
            0.0
        };
        let series = self.series.series(idx).display();
        let how = match rule.absence {
            crate::absence::Absence::Auto(_) => "learned from its cadence",
            _ => "fixed",
        };
        a.summary = match status {
            AlertStatus::Firing => {
                if last_seen == i64::MIN {
                    // an inventory series that never reported
                    format!("{series} has not reported since it was expected (inventory)")
                } else {
                    let timeout = st.absence.since.saturating_sub(last_seen);
                    format!(
                        "{series} has not reported since {} (timeout {}, {how})",
                        format_rfc3339(last_seen),
                        format_duration(timeout)
                    )
                }
            }
            // a replayed backlog can bring samples from before the deadline: late, not silent
            AlertStatus::Resolved if event_time < st.absence.since => format!(
                "{series} was late, not silent: data for {} arrived after its deadline {}",
                format_rfc3339(event_time),
                format_rfc3339(st.absence.since)
            ),
            AlertStatus::Resolved => {
                // silent since its last sample (an inventory series that never reported: since
                // it was expected)
                let from = if last_seen == i64::MIN {
                    st.absence.since
                } else {
                    last_seen
                };
                format!(
                    "{series} reported again at {} after {} of silence",
                    format_rfc3339(event_time),
                    format_duration(event_time.saturating_sub(from))
                )
            }
        };
        self.count(status);
        out.push(a);
    }

    pub(super) fn count(&mut self, status: AlertStatus) {
        match status {
            AlertStatus::Firing => self.stats.alerts_firing += 1,
            AlertStatus::Resolved => self.stats.alerts_resolved += 1,
        }
    }
}

/// Compact number formatting for summaries.
fn num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 1000.0 || v.abs() < 0.01 {
        format!("{v:.4e}")
    } else {
        format!("{v:.2}")
    }
}
