//! The per-partition engine: series state, detectors, absence clock and alert states.
//!
//! Plain synchronous Rust. The engine is driven from outside with two calls:
//! - [`Engine::ingest`] feeds one sample and returns its score,
//! - [`Engine::ingest_batch`] does the same for a batch (faster: it prefetches),
//! - [`Engine::advance`] moves the engine clock (event time) and fires due absences.
//!
//! `advance(now)` promises "every sample with timestamp <= now has been ingested": a deadline
//! at `d` fires once `now >= d`. A sample that arrives after its series' deadline although the
//! clock had not reached it (a backlog, a batch) still proves the silence: the absence fires at
//! the deadline and resolves at that sample, both in event time. So the alerts of an input do
//! not depend on how often the clock is advanced.
//!
//! Both push the alert events they cause into a caller-supplied `Vec`. The engine never reads
//! the system clock and never touches the network, so any run can be replayed exactly.
//!
//! ## Per-series state budget
//! [`SeriesState`] is fixed-size: its `size_of` is asserted by a test and reported by the
//! benchmark (docs/performance.md). Labels are stored separately, once per series, in the
//! [`SeriesTable`].
//!
//! ## Samples the engine does not learn from
//! - non-finite values (NaN, ±inf): dropped, counted in `EngineStats::non_finite`;
//! - a timestamp not after the series' newest one (late or duplicate): dropped, counted in
//!   `EngineStats::late`; windows and cadences stay in event-time order;
//! - series no rule matches: counted in `EngineStats::unmatched`, no state beyond the identity.

use std::sync::Arc;

use crate::absence::{Cadence, DeadlineQueue, NEVER};
use crate::alert::{
    alert_id, AbsencePhase, AbsenceState, Alert, AlertKind, AlertState, AlertStatus, Phase, Timing,
    Transition,
};
use crate::detect::{DetectorKind, DetectorState, Verdict};
use crate::model::{Model, Rule};
use crate::series::{
    encode_canonical, hash_canonical, LabelSet, SeriesBuf, SeriesRef, SeriesTable,
};
use crate::time::{format_duration, format_rfc3339};

/// Rule index meaning "no rule matches this series".
const NO_RULE: u16 = u16::MAX;

/// Sampling interval assumed for a budget before a series has shown its cadence.
const DEFAULT_INTERVAL_MS: i64 = 60_000;

/// Everything the engine keeps per series besides its labels.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SeriesState {
    /// Event time of the newest accepted sample, ms (`i64::MIN` before the first).
    pub last_ts: i64,
    /// Absence deadline, ms ([`NEVER`] when absence is off or already firing).
    pub deadline: i64,
    /// Time of this series' live entry in the deadline queue ([`NEVER`] if none).
    pub queued_at: i64,
    pub detectors: DetectorState,
    pub cadence: Cadence,
    pub anomaly: AlertState,
    pub absence: AbsenceState,
    /// The `stuck` alert (a run of identical values; only `Live` and `Firing` are used).
    pub stuck: AbsenceState,
    /// Index of the governing rule in the model ([`NO_RULE`] if none).
    pub rule: u16,
    /// Onset peak: the recent maximum of the combined score, decaying by the rule's
    /// `onset_half_life`, in units of 1/65535. See [`onset`].
    pub peak: u16,
}

impl SeriesState {
    fn new(rule: u16) -> Self {
        Self {
            last_ts: i64::MIN,
            deadline: NEVER,
            queued_at: NEVER,
            detectors: DetectorState::default(),
            cadence: Cadence::default(),
            anomaly: AlertState::default(),
            absence: AbsenceState::default(),
            stuck: AbsenceState::default(),
            rule,
            peak: 0,
        }
    }
}

/// A budget-governed anomaly stays open while its probability is within this factor of the
/// opening probability (hysteresis, as `resolve_threshold` for scores).
const RESOLVE_FACTOR: f64 = 100.0;

/// Onset reporting: a combined score `level` is reported only when it rises above the series'
/// recent peak (which then takes its value and decays by `decay` per sample); otherwise 0. A
/// sustained anomaly is reported at its onset, and again only if it grows.
#[inline]
pub fn onset(peak: &mut u16, level: f64, decay: f64) -> f64 {
    const UNIT: f64 = u16::MAX as f64;
    let before = f64::from(*peak) / UNIT;
    let decayed = before * decay;
    // a new level rounds up (an equal one later is not a rise); the decayed peak rounds down
    // (so it keeps decaying however long the half-life). Both are on [0, UNIT], where a cast
    // (truncation) is the floor: no call to libm's `floor` or `ceil` per sample.
    *peak = if level >= decayed {
        let x = level.clamp(0.0, 1.0) * UNIT;
        let down = x as u16;
        if f64::from(down) < x {
            down + 1
        } else {
            down
        }
    } else {
        (decayed * UNIT) as u16
    };
    if level > before {
        level
    } else {
        0.0
    }
}

/// The surprise of a probability on [0, 1]: `-log10 p / 16` (1 at p = 1e-16 and below).
#[inline]
fn surprise(p: f64) -> f64 {
    if p >= 1.0 {
        return 0.0; // most samples: nothing improbable (no logarithm)
    }
    (-p.max(1e-16).log10() / 16.0).clamp(0.0, 1.0)
}

/// One sample as the engine reads it: borrowed from whatever decoded it.
#[derive(Clone, Copy, Debug)]
pub struct SampleRef<'a, L: ?Sized> {
    pub name: &'a str,
    /// Labels in key order (see [`LabelSet`]).
    pub labels: &'a L,
    /// Event time, ms since the Unix epoch.
    pub ts: i64,
    pub value: f64,
}

/// What happened to one ingested sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// Learned; scored if any detector is past warm-up.
    Accepted(Option<(Verdict, DetectorKind)>),
    /// Timestamp not after the series' newest sample: dropped.
    Late,
    /// NaN or infinite value: dropped.
    NonFinite,
    /// No rule governs this series.
    Unmatched,
    /// A new series beyond a cardinality limit: refused, no state kept (see `limits.rs`).
    Refused,
}

impl Outcome {
    /// The anomaly score of this sample (0 when not scored).
    pub fn score(&self) -> f64 {
        match self {
            Outcome::Accepted(Some((v, _))) => v.score,
            _ => 0.0,
        }
    }
}

/// Counters of what the engine has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineStats {
    pub samples: u64,
    pub accepted: u64,
    pub late: u64,
    pub non_finite: u64,
    pub unmatched: u64,
    pub alerts_firing: u64,
    pub alerts_resolved: u64,
    /// Series retired (silent beyond `retention`, or a tombstone).
    pub retired: u64,
    /// Samples of new series refused by a cardinality limit.
    pub refused: u64,
}

/// One partition's engine.
pub struct Engine {
    model: Arc<Model>,
    timings: Vec<Timing>,
    series: SeriesTable,
    states: Vec<SeriesState>,
    deadlines: DeadlineQueue,
    now: i64,
    scratch: Vec<u8>,
    /// Reused buffer for due deadline entries.
    due: Vec<(i64, u32)>,
    stats: EngineStats,
    /// Correlated-silence groups (see `silence.rs`), the group of each series, and the groups
    /// with absences held back.
    groups: Vec<silence::Group>,
    group_ids: std::collections::HashMap<u64, u32>,
    group_of: Vec<u32>,
    dirty: Vec<u32>,
    scope: Option<String>,
    /// The partition-wide `cardinality_limit` alert.
    limit: AbsenceState,
}

impl Engine {
    pub fn new(model: Arc<Model>) -> Self {
        let timings = model
            .rules
            .iter()
            .map(|r| Timing {
                for_ms: r.for_ms,
                keep_firing_for_ms: r.keep_firing_for_ms,
            })
            .collect();
        Self {
            model,
            timings,
            series: SeriesTable::new(),
            states: Vec::new(),
            deadlines: DeadlineQueue::default(),
            now: i64::MIN,
            scratch: Vec::with_capacity(128),
            due: Vec::new(),
            stats: EngineStats::default(),
            groups: Vec::new(),
            group_ids: std::collections::HashMap::new(),
            group_of: Vec::new(),
            dirty: Vec::new(),
            scope: None,
            limit: AbsenceState::default(),
        }
    }

    /// The engine clock: the latest `now` passed to [`Engine::advance`], `None` before the
    /// first.
    pub fn now(&self) -> Option<i64> {
        (self.now != i64::MIN).then_some(self.now)
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Bytes of state per series (`size_of::<SeriesState>()`), excluding labels.
    pub const fn state_bytes_per_series() -> usize {
        std::mem::size_of::<SeriesState>()
    }

    /// Heap bytes: (series state + deadline queue, label storage + index).
    pub fn memory_bytes(&self) -> (usize, usize) {
        let state = self.states.capacity() * Self::state_bytes_per_series()
            + self.group_of.capacity() * std::mem::size_of::<u32>()
            + self.deadlines.heap_bytes();
        (state, self.series.label_bytes())
    }

    /// Dense index of a series, if the engine knows it.
    pub fn series_index<L: LabelSet + ?Sized>(&mut self, name: &str, labels: &L) -> Option<u32> {
        encode_canonical(name, labels, &mut self.scratch);
        self.series.get(hash_canonical(&self.scratch))
    }

    /// The state of series `idx` (see [`Engine::series_index`]), read-only: its cadence,
    /// detectors, alert states and rule, for inspection by tests and tools.
    pub fn series_state(&self, idx: u32) -> Option<&SeriesState> {
        self.states.get(idx as usize)
    }

    /// The per-sample probability at which series `idx` opens an anomaly alert now (rules with
    /// a `false_alerts_per_day` budget; its share of the budget at its learned cadence).
    pub fn alert_probability(&self, idx: u32) -> Option<f64> {
        let st = self.states.get(idx as usize)?;
        let rule = self.model.rules.get(st.rule as usize)?;
        rule.per_sample(st.cadence.typical().unwrap_or(DEFAULT_INTERVAL_MS))
    }

    /// The band of values the learned spike detector finds normal for the next sample of
    /// series `idx` (for plots; an inverse t per call).
    pub fn band(&self, idx: u32) -> Option<(f64, f64)> {
        let st = self.states.get(idx as usize)?;
        let rule = self.model.rules.get(st.rule as usize)?;
        match (&rule.learned, &st.detectors) {
            (Some(l), DetectorState::Learned(ls)) => l.band(ls, self.alert_probability(idx)?),
            _ => None,
        }
    }

    pub fn series_id(&self, idx: u32) -> u64 {
        self.series.id(idx)
    }

    /// Series `idx`'s name and labels (rebuilt from the series table: not for the hot path).
    pub fn series_ref(&self, idx: u32) -> SeriesBuf {
        self.series.series(idx)
    }

    /// Feeds one sample. `labels` must list the labels in key order (see [`LabelSet`]).
    #[inline]
    pub fn ingest<L: LabelSet + ?Sized>(
        &mut self,
        name: &str,
        labels: &L,
        ts: i64,
        value: f64,
        out: &mut Vec<Alert>,
    ) -> Outcome {
        encode_canonical(name, labels, &mut self.scratch);
        let id = hash_canonical(&self.scratch);
        let idx = match self.series.get(id) {
            Some(i) => i,
            None => match self.add_series(id, ts, out) {
                Some(i) => i,
                None => return self.refused(),
            },
        };
        self.ingest_at(idx, ts, value, out)
    }

    /// Feeds a batch of samples, in order; pushes one [`Outcome`] per sample to `outcomes`.
    ///
    /// Same result as calling [`Engine::ingest`] for each sample, but faster on large series
    /// counts: identities are hashed a few samples ahead and their index slots and states are
    /// prefetched, so the cache misses of consecutive samples overlap.
    pub fn ingest_batch<L: LabelSet + ?Sized>(
        &mut self,
        batch: &[SampleRef<'_, L>],
        out: &mut Vec<Alert>,
        outcomes: &mut Vec<Outcome>,
    ) {
        const AHEAD: usize = 16; // state prefetch distance; slot prefetch is twice that
        const RING: usize = 2 * AHEAD;
        let n = batch.len();
        let mut ids = [0u64; RING];
        let mut idxs = [None::<u32>; RING];
        let hash = |e: &mut Self, s: &SampleRef<'_, L>| {
            encode_canonical(s.name, s.labels, &mut e.scratch);
            let id = hash_canonical(&e.scratch);
            e.series.prefetch(id);
            id
        };
        for (j, s) in batch.iter().enumerate().take(RING) {
            ids[j] = hash(self, s);
        }
        for (j, slot) in idxs.iter_mut().enumerate().take(AHEAD.min(n)) {
            *slot = self.series.get(ids[j]);
        }
        for i in 0..n {
            let (id, known) = (ids[i % RING], idxs[i % RING]);
            if i + AHEAD < n {
                let k = (i + AHEAD) % RING;
                idxs[k] = self.series.get(ids[k]);
                if let Some(ix) = idxs[k] {
                    crate::series::prefetch_all(&self.states[ix as usize]);
                }
            }
            if i + RING < n {
                ids[i % RING] = hash(self, &batch[i + RING]);
            }
            let s = &batch[i];
            let idx = match known.or_else(|| self.series.get(id)) {
                Some(ix) => ix,
                None => {
                    encode_canonical(s.name, s.labels, &mut self.scratch);
                    match self.add_series(id, s.ts, out) {
                        Some(ix) => ix,
                        None => {
                            outcomes.push(self.refused());
                            continue;
                        }
                    }
                }
            };
            outcomes.push(self.ingest_at(idx, s.ts, s.value, out));
        }
    }

    #[inline]
    fn ingest_at(&mut self, idx: u32, ts: i64, value: f64, out: &mut Vec<Alert>) -> Outcome {
        self.stats.samples += 1;
        if !value.is_finite() {
            self.stats.non_finite += 1;
            return Outcome::NonFinite;
        }
        let st = &mut self.states[idx as usize];
        if st.rule == NO_RULE {
            self.stats.unmatched += 1;
            return Outcome::Unmatched;
        }
        if ts <= st.last_ts {
            self.stats.late += 1;
            return Outcome::Late;
        }
        self.stats.accepted += 1;
        // A gap longer than the timeout is a silence even if the clock never passed its deadline
        // (a backlog or a batch delivers both sides of it): fire it at its deadline, in event
        // time, and let this sample resolve it below.
        if ts > st.deadline && self.has_switch(idx) {
            let st = &mut self.states[idx as usize];
            let deadline = st.deadline;
            st.deadline = NEVER;
            self.fire_absence(idx, deadline, out);
        }
        let st = &mut self.states[idx as usize];
        let rule = &self.model.rules[st.rule as usize];
        let timing = self.timings[st.rule as usize];
        let timeout = if st.last_ts != i64::MIN {
            st.cadence.learn(ts - st.last_ts, &rule.absence)
        } else {
            st.cadence.timeout(&rule.absence)
        };
        // the last sample before this one: where a silence that this sample ends began
        let last_seen = std::mem::replace(&mut st.last_ts, ts);

        // Dead-man's switch: the series is back; push its deadline out. Without a switch (off,
        // or an irregular series) the deadline is the retirement at `retention`.
        let returned = st.absence.is_silent();
        st.deadline = ts.saturating_add(timeout.unwrap_or(rule.retention_ms));
        if st.deadline < st.queued_at {
            st.queued_at = st.deadline;
            self.deadlines.push(st.deadline, idx);
        }

        // Detectors, then the anomaly alert with hysteresis.
        let cadence = &st.cadence;
        let interval = || cadence.typical().unwrap_or(DEFAULT_INTERVAL_MS);
        let eval = rule.evaluate(&mut st.detectors, value, ts, interval);
        let mut verdict = eval.verdict;
        // An episode opens on the reported score (the onset, with onset reporting) and stays
        // open while the combined score holds above `resolve_threshold`; under a budget, it
        // opens at the per-sample probability and stays open within `RESOLVE_FACTOR` of it,
        // and onset reporting only shapes the reported score (of its surprise, -log10 p).
        let alert_verdict = verdict;
        let level = verdict.map_or(0.0, |(v, _)| v.score);
        if let (Some((v, _)), Some(decay)) = (&mut verdict, rule.onset_decay) {
            let strength = if rule.budget.is_some() {
                surprise(eval.p)
            } else {
                level
            };
            if onset(&mut st.peak, strength, decay) == 0.0 {
                v.score = 0.0;
            }
        }
        // the cadence is looked up only for a sample that is improbable at all
        let per_sample = if eval.p.min(eval.stuck_p) < 1.0 {
            rule.per_sample(interval())
        } else {
            None
        };
        let engaged = st.anomaly.is_engaged();
        let active = verdict.is_some_and(|(v, _)| match (rule.budget, per_sample) {
            (Some(_), Some(ps)) if engaged => eval.p <= ps * RESOLVE_FACTOR,
            (Some(_), Some(ps)) => eval.p <= ps,
            (Some(_), None) => false,
            (None, _) if engaged => level >= rule.resolve_threshold,
            (None, _) => v.score >= rule.threshold,
        });
        let transition = if verdict.is_some() || st.anomaly.is_engaged() {
            st.anomaly.step(active, ts, timing)
        } else {
            Transition::None
        };
        // A run of identical values beyond the series' habit is `stuck`, until the value changes.
        let stuck = if st.stuck.is_firing() && !eval.repeats {
            st.stuck.resolve()
        } else if !st.stuck.is_firing() && per_sample.is_some_and(|ps| eval.stuck_p <= ps) {
            st.stuck.fire(ts)
        } else {
            Transition::None
        };

        if returned {
            self.series_returned(idx, ts, last_seen, value, out);
        }
        if transition != Transition::None {
            self.emit_anomaly(idx, transition, ts, value, alert_verdict, out);
        }
        if stuck != Transition::None {
            self.emit_stuck(idx, stuck, ts, value, out);
        }
        Outcome::Accepted(verdict)
    }

    /// Moves the engine clock to `now` (event time; never backwards) and fires every absence
    /// whose deadline is at or before it.
    pub fn advance(&mut self, now: i64, out: &mut Vec<Alert>) {
        if now <= self.now {
            return;
        }
        self.now = now;
        let mut due = std::mem::take(&mut self.due);
        self.deadlines.drain_due(now, &mut due);
        for &(at, idx) in &due {
            let st = &mut self.states[idx as usize];
            if st.queued_at != at {
                continue; // superseded by an earlier entry
            }
            st.queued_at = NEVER;
            if st.deadline == NEVER {
                continue;
            }
            if st.deadline > now {
                st.queued_at = st.deadline;
                self.deadlines.push(st.deadline, idx);
                continue;
            }
            let deadline = st.deadline;
            st.deadline = NEVER;
            if st.absence.is_silent() || !self.has_switch(idx) {
                // silent for `retention` (or no sample for it, without a switch): retired
                self.retire(idx, deadline, out);
                continue;
            }
            self.fire_absence(idx, deadline, out);
            // next: retirement, `retention` after the silence started
            let retention = self.model.rules[self.states[idx as usize].rule as usize].retention_ms;
            let st = &mut self.states[idx as usize];
            if st.absence.is_silent() {
                st.deadline = deadline.saturating_add(retention);
                st.queued_at = st.deadline;
                self.deadlines.push(st.deadline, idx);
            }
        }
        due.clear();
        self.due = due;
        self.settle_groups(false, out);
    }

    /// End of input (replay): decides every absence still held back for its group now,
    /// instead of waiting for the clock to pass the end of its window.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        self.settle_groups(true, out);
    }

    /// Every alert firing now, as a firing event with its current version (so the same
    /// `alert_id` and `version` as the event that fired it): per-series anomaly, absence and
    /// stuck alerts, then `source_silent` and `cardinality_limit` events. For sinks that forget,
    /// such as Alertmanager, to be told again after this engine was restored from a checkpoint.
    pub fn firing(&self, out: &mut Vec<Alert>) {
        for (idx, st) in self.states.iter().enumerate() {
            if st.rule == NO_RULE {
                continue; // unmatched, or a freed slot
            }
            let (idx, rule) = (idx as u32, &self.model.rules[st.rule as usize]);
            let anomaly = (st.anomaly.phase == Phase::Firing).then_some((
                AlertKind::Anomaly,
                st.anomaly.since,
                st.anomaly.version,
                "is still anomalous",
            ));
            let absence = (st.absence.phase == AbsencePhase::Firing).then_some((
                AlertKind::Absence,
                st.absence.since,
                st.absence.version,
                "has still not reported",
            ));
            let stuck = st.stuck.is_firing().then_some((
                AlertKind::Stuck,
                st.stuck.since,
                st.stuck.version,
                "is still stuck",
            ));
            if anomaly.is_none() && absence.is_none() && stuck.is_none() {
                continue;
            }
            let series = self.series.series(idx).display();
            for (kind, since, version, what) in anomaly.into_iter().chain(absence).chain(stuck) {
                let mut a = self.base_alert(idx, rule, kind, AlertStatus::Firing, version);
                (a.event_time, a.started_at, a.score) = (since, since, 1.0);
                a.summary = format!("{series} {what} (since {})", format_rfc3339(since));
                out.push(a);
            }
        }
        self.groups_firing(out);
        self.limits_firing(out);
    }

    /// Names this engine's scope (e.g. `metrics/3` for an input partition): it becomes the
    /// `partition` label and part of the identity of the engine's `source_silent` events, so
    /// two partitions' groups never share an alert id.
    pub fn set_scope(&mut self, scope: &str) {
        self.scope = Some(scope.to_string());
    }

    /// Whether the series currently has a dead-man's switch (a rule timeout, and for `auto` a
    /// regular cadence).
    fn has_switch(&self, idx: u32) -> bool {
        let st = &self.states[idx as usize];
        st.rule != NO_RULE
            && st
                .cadence
                .timeout(&self.model.rules[st.rule as usize].absence)
                .is_some()
    }

    /// Registers a series the inventory expects (a no-op if the engine knows it): unless it
    /// reports, its absence fires at `at` + its rule's initial (or fixed) timeout.
    pub fn expect<L: LabelSet + ?Sized>(
        &mut self,
        name: &str,
        labels: &L,
        at: i64,
        out: &mut Vec<Alert>,
    ) -> bool {
        encode_canonical(name, labels, &mut self.scratch);
        let id = hash_canonical(&self.scratch);
        if self.series.get(id).is_some() {
            return false;
        }
        let Some(idx) = self.add_series(id, at, out) else {
            self.refused();
            return false;
        };
        let st = &self.states[idx as usize];
        if st.rule == NO_RULE {
            return true;
        }
        if let Some(timeout) = st
            .cadence
            .timeout(&self.model.rules[st.rule as usize].absence)
        {
            let st = &mut self.states[idx as usize];
            st.deadline = at.saturating_add(timeout);
            st.queued_at = st.deadline;
            self.deadlines.push(st.deadline, idx);
        }
        true
    }

    /// The inventory no longer expects a series (a tombstone): it is retired now, at `at`.
    pub fn unexpect<L: LabelSet + ?Sized>(
        &mut self,
        name: &str,
        labels: &L,
        at: i64,
        out: &mut Vec<Alert>,
    ) -> bool {
        encode_canonical(name, labels, &mut self.scratch);
        match self.series.get(hash_canonical(&self.scratch)) {
            Some(idx) => {
                self.retire(idx, at, out);
                true
            }
            None => false,
        }
    }

    /// Retires a series at `at`: a firing absence or anomaly gets its final resolved event,
    /// its group forgets it, and its state and labels are freed for reuse.
    fn retire(&mut self, idx: u32, at: i64, out: &mut Vec<Alert>) {
        let st = &mut self.states[idx as usize];
        if st.rule == NO_RULE && st.last_ts == i64::MIN && st.deadline == NEVER {
            // an unmatched series: nothing but its identity to free
            self.series.remove(idx);
            return;
        }
        let last_seen = st.last_ts;
        self.close_episodes(idx, at, out);
        let st = &mut self.states[idx as usize];
        let phase = st.absence.phase;
        // only a series with its own firing absence gets a final event; held, covered and
        // straggling ones leave with their group's bookkeeping
        if st.absence.resolve() == Transition::Resolved {
            self.emit_absence(idx, AlertStatus::Resolved, at, last_seen, None, out);
            if let Some(a) = out.last_mut() {
                a.summary = format!(
                    "{} retired after {} of silence (retention); its state is freed",
                    self.series.series(idx).display(),
                    format_duration(at - a.started_at)
                );
            }
        }
        self.forget_in_group(idx, phase, out);
        self.stats.retired += 1;
        self.series.remove(idx);
        let g = self.group_of[idx as usize];
        self.states[idx as usize] = SeriesState::new(NO_RULE);
        self.group_of[idx as usize] = u32::MAX;
        self.limits_after_retire(g, at, out);
    }

    /// Resolves the series' anomaly and stuck episodes at `at` (it went silent or is retired).
    fn close_episodes(&mut self, idx: u32, at: i64, out: &mut Vec<Alert>) {
        let st = &mut self.states[idx as usize];
        if st.anomaly.resolve() == Transition::Resolved {
            self.emit_anomaly(idx, Transition::Resolved, at, f64::NAN, None, out);
        }
        let st = &mut self.states[idx as usize];
        if st.stuck.resolve() == Transition::Resolved {
            self.emit_stuck(idx, Transition::Resolved, at, f64::NAN, out);
        }
    }

    /// A series passed its deadline (event time `deadline`) without a new sample.
    fn fire_absence(&mut self, idx: u32, deadline: i64, out: &mut Vec<Alert>) {
        let st = &mut self.states[idx as usize];
        if st.absence.is_silent() {
            return;
        }
        // A silent series has no anomaly or stuck episode any more: a pending one is dropped, a
        // firing one is resolved (at the deadline) so that every firing gets its resolved.
        self.close_episodes(idx, deadline, out);
        if !self.hold_for_group(idx, deadline, out) {
            let st = &mut self.states[idx as usize];
            st.absence.fire(deadline);
            let last = st.last_ts;
            self.emit_absence(idx, AlertStatus::Firing, deadline, last, None, out);
        }
    }

    /// A silent series reported again at `ts` (its last sample before was at `last_seen`).
    fn series_returned(
        &mut self,
        idx: u32,
        ts: i64,
        last_seen: i64,
        value: f64,
        out: &mut Vec<Alert>,
    ) {
        let st = &mut self.states[idx as usize];
        match st.absence.phase {
            AbsencePhase::Live => {}
            AbsencePhase::Firing => {
                st.absence.resolve();
                self.group_member_back(idx);
                self.emit_absence(idx, AlertStatus::Resolved, ts, last_seen, Some(value), out);
            }
            AbsencePhase::Held | AbsencePhase::Straggler => {
                st.absence.phase = AbsencePhase::Live;
                self.held_returned(idx, ts, value);
            }
            AbsencePhase::Covered => {
                st.absence.phase = AbsencePhase::Live;
                self.group_member_back(idx);
                self.group_returned(idx, ts, last_seen, out);
            }
        }
    }

    /// A sample of a series refused by a cardinality limit.
    fn refused(&mut self) -> Outcome {
        self.stats.samples += 1;
        self.stats.refused += 1;
        Outcome::Refused
    }

    /// Adds the series whose canonical form is in `scratch`, unless a cardinality limit
    /// refuses it (`at`: event time of the sample that brought it).
    fn add_series(&mut self, id: u64, at: i64, out: &mut Vec<Alert>) -> Option<u32> {
        let scratch = std::mem::take(&mut self.scratch);
        let series = SeriesRef::new(&scratch);
        let rule = self.model.rule_for(&series).map_or(NO_RULE, |r| r as u16);
        if !self.admit(&series, rule, at, out) {
            self.scratch = scratch;
            return None;
        }
        let Some(idx) = self.series.insert(id, &scratch) else {
            self.scratch = scratch;
            return None; // the table is full (see `SeriesTable::insert`): refused, counted
        };
        let group = self.group_for(&series, rule);
        self.scratch = scratch;
        if (idx as usize) < self.states.len() {
            // a retired series' slot
            self.states[idx as usize] = SeriesState::new(rule);
            self.group_of[idx as usize] = group;
        } else {
            self.states.push(SeriesState::new(rule));
            self.group_of.push(group);
        }
        Some(idx)
    }
}

mod emit;
mod limits;
mod silence;
pub mod snapshot;
#[cfg(test)]
mod tests;
