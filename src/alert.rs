//! Alert events and the per-(rule, series) alert state machine.
//!
//! ```text
//!            active                  held for `for`
//! Inactive ─────────▶ Pending ─────────────────────▶ Firing ──▶ (event: firing)
//!    ▲                  │ inactive                    │ inactive for `keep_firing_for`
//!    └──────────────────┘                             ▼
//!    └──────────────────────────────────────────── (event: resolved)
//! ```
//!
//! The machine is a pure function of (state, active?, now); the caller decides `active` with
//! hysteresis (enter at `threshold`, stay while above `resolve_threshold`). It emits at most one
//! firing event per episode and every firing event is eventually followed by exactly one resolved
//! event for the same alert id. `version` counts transitions, so (alert_id, version) names one
//! event: firing events have odd versions, resolved events even ones.

use std::sync::Arc;

/// What kind of condition an alert reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertKind {
    Anomaly,
    Absence,
    SourceSilent,
    PipelineLag,
    CardinalityLimit,
    Heartbeat,
    Stuck,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anomaly => "anomaly",
            Self::Absence => "absence",
            Self::SourceSilent => "source_silent",
            Self::PipelineLag => "pipeline_lag",
            Self::CardinalityLimit => "cardinality_limit",
            Self::Heartbeat => "heartbeat",
            Self::Stuck => "stuck",
        }
    }
}

/// Firing or resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert event, self-contained (it does not borrow engine state).
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// 16 lowercase hex digits; see [`alert_id`].
    pub alert_id: String,
    pub version: u64,
    pub kind: AlertKind,
    pub state: AlertStatus,
    pub rule: Arc<str>,
    pub severity: Arc<str>,
    pub name: String,
    /// Series labels plus the rule's labels (the rule's win on conflict), sorted by key.
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// Event time (ms) of the sample or deadline that caused the event.
    pub event_time: i64,
    /// Start of the episode (ms).
    pub started_at: i64,
    /// When the engine emitted it (the engine clock, ms; the Kafka stage stamps wall time).
    pub emitted_at: i64,
    pub value: Option<f64>,
    pub expected: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub score: f64,
    pub summary: String,
    /// Series id of the series the event is about (0 for events about no one series). Not part
    /// of the wire format: the alert id already identifies the series.
    pub series: u64,
}

/// Stable alert identity: XXH3-64 over rule name, kind and series id, as 16 hex digits.
pub fn alert_id(rule: &str, kind: AlertKind, series: u64) -> String {
    let mut buf = Vec::with_capacity(rule.len() + 32);
    buf.extend_from_slice(rule.as_bytes());
    buf.push(0xFF);
    buf.extend_from_slice(kind.as_str().as_bytes());
    buf.push(0xFF);
    buf.extend_from_slice(&series.to_le_bytes());
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&buf))
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Phase {
    #[default]
    Inactive,
    Pending,
    Firing,
}

/// State of one alert (24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlertState {
    /// Start of the current episode (pending or firing), ms.
    pub since: i64,
    /// Last time the condition was active while firing, ms.
    pub last_active: i64,
    /// Transitions emitted so far.
    pub version: u32,
    pub phase: Phase,
}

/// What a step produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    None,
    /// Emit a firing event (version already incremented).
    Fired,
    /// Emit a resolved event (version already incremented).
    Resolved,
}

/// Timing of one rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
}

impl AlertState {
    pub fn is_firing(&self) -> bool {
        self.phase == Phase::Firing
    }

    /// Whether the condition is currently considered on (pending or firing), for hysteresis.
    pub fn is_engaged(&self) -> bool {
        self.phase != Phase::Inactive
    }

    /// Advances the machine with one observation at `now`.
    #[inline]
    pub fn step(&mut self, active: bool, now: i64, t: Timing) -> Transition {
        match (self.phase, active) {
            (Phase::Inactive, false) => Transition::None,
            (Phase::Inactive, true) => {
                self.since = now;
                self.phase = Phase::Pending;
                self.maybe_fire(now, t)
            }
            (Phase::Pending, true) => self.maybe_fire(now, t),
            (Phase::Pending, false) => {
                self.phase = Phase::Inactive;
                Transition::None
            }
            (Phase::Firing, true) => {
                self.last_active = now;
                Transition::None
            }
            (Phase::Firing, false) => {
                if now - self.last_active >= t.keep_firing_for_ms {
                    self.resolve()
                } else {
                    Transition::None
                }
            }
        }
    }

    fn maybe_fire(&mut self, now: i64, t: Timing) -> Transition {
        if now - self.since >= t.for_ms {
            self.phase = Phase::Firing;
            self.last_active = now;
            self.version += 1;
            Transition::Fired
        } else {
            Transition::None
        }
    }

    /// Resolves a firing alert now; a pending one just returns to inactive.
    pub fn resolve(&mut self) -> Transition {
        let was_firing = self.phase == Phase::Firing;
        self.phase = Phase::Inactive;
        if was_firing {
            self.version += 1;
            Transition::Resolved
        } else {
            Transition::None
        }
    }
}

/// Where a series stands with its dead-man's switch (see `engine.rs`, "Correlated silence").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum AbsencePhase {
    /// Reporting (or never timed out).
    #[default]
    Live,
    /// Timed out; its own event waits a short window to see whether its group goes silent.
    Held,
    /// Silent, covered by its group's `source_silent` event: no event of its own.
    Covered,
    /// Its group came back without it: gets a grace period before alerting on its own.
    Straggler,
    /// Silent, with its own firing absence event.
    Firing,
}

/// State of one absence alert (16 bytes). Absence needs no `for`: the timeout is the delay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AbsenceState {
    /// The deadline that started the current (or last) episode, ms.
    pub since: i64,
    /// Transitions emitted so far.
    pub version: u32,
    pub phase: AbsencePhase,
}

impl AbsenceState {
    pub fn is_firing(&self) -> bool {
        self.phase == AbsencePhase::Firing
    }

    /// Timed out and not yet back (any phase but `Live`).
    pub fn is_silent(&self) -> bool {
        self.phase != AbsencePhase::Live
    }

    /// Fires at `deadline`. No-op if already firing.
    pub fn fire(&mut self, deadline: i64) -> Transition {
        if self.phase == AbsencePhase::Firing {
            return Transition::None;
        }
        if self.phase == AbsencePhase::Live {
            self.since = deadline;
        }
        self.phase = AbsencePhase::Firing;
        self.version += 1;
        Transition::Fired
    }

    /// Resolves a firing absence (any other phase just returns to `Live`, with no event).
    pub fn resolve(&mut self) -> Transition {
        let was_firing = self.phase == AbsencePhase::Firing;
        self.phase = AbsencePhase::Live;
        if was_firing {
            self.version += 1;
            Transition::Resolved
        } else {
            Transition::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transition::{Fired, None as Quiet, Resolved};

    /// Time-stepped table: (now, active, expected transition, expected phase after).
    fn run(t: Timing, table: &[(i64, bool, Transition, Phase)]) {
        let mut s = AlertState::default();
        for (i, &(now, active, want, phase)) in table.iter().enumerate() {
            let got = s.step(active, now, t);
            assert_eq!(
                (got, s.phase),
                (want, phase),
                "row {i}: t={now} active={active}"
            );
        }
    }

    #[test]
    fn fires_immediately_without_for() {
        run(
            Timing::default(),
            &[
                (0, false, Quiet, Phase::Inactive),
                (10, true, Fired, Phase::Firing),
                (20, true, Quiet, Phase::Firing),
                (30, false, Resolved, Phase::Inactive),
                (40, true, Fired, Phase::Firing),
            ],
        );
    }

    #[test]
    fn for_delays_firing_and_a_short_blip_never_fires() {
        let t = Timing {
            for_ms: 30,
            keep_firing_for_ms: 0,
        };
        run(
            t,
            &[
                (0, true, Quiet, Phase::Pending),
                (10, true, Quiet, Phase::Pending),
                (20, false, Quiet, Phase::Inactive),
                (30, true, Quiet, Phase::Pending),
                (50, true, Quiet, Phase::Pending),
                (60, true, Fired, Phase::Firing),
                (70, false, Resolved, Phase::Inactive),
            ],
        );
    }

    #[test]
    fn keep_firing_for_bridges_gaps() {
        let t = Timing {
            for_ms: 0,
            keep_firing_for_ms: 25,
        };
        run(
            t,
            &[
                (0, true, Fired, Phase::Firing),
                (10, false, Quiet, Phase::Firing),
                (20, true, Quiet, Phase::Firing),
                (30, false, Quiet, Phase::Firing),
                (44, false, Quiet, Phase::Firing),
                (45, false, Resolved, Phase::Inactive),
            ],
        );
    }

    #[test]
    fn versions_count_transitions_and_started_at_is_episode_start() {
        let t = Timing {
            for_ms: 10,
            keep_firing_for_ms: 0,
        };
        let mut s = AlertState::default();
        s.step(true, 100, t);
        assert_eq!(s.step(true, 115, t), Fired);
        assert_eq!((s.version, s.since), (1, 100));
        assert_eq!(s.step(false, 120, t), Resolved);
        assert_eq!(s.version, 2);
        assert_eq!(s.resolve(), Quiet, "never a resolved without a firing");
        let mut a = AbsenceState::default();
        assert_eq!(a.fire(200), Fired);
        assert_eq!(
            a.fire(210),
            Quiet,
            "never two firing events for one episode"
        );
        assert_eq!((a.since, a.version), (200, 1));
        assert_eq!(a.resolve(), Resolved);
        assert_eq!(a.resolve(), Quiet, "never a resolved without a firing");
        assert_eq!(a.version, 2);
    }

    #[test]
    fn alert_ids_are_stable_and_distinct() {
        let a = alert_id("default", AlertKind::Anomaly, 42);
        assert_eq!(a, alert_id("default", AlertKind::Anomaly, 42));
        assert_eq!(a.len(), 16);
        assert_ne!(a, alert_id("default", AlertKind::Absence, 42));
        assert_ne!(a, alert_id("other", AlertKind::Anomaly, 42));
        assert_ne!(a, alert_id("default", AlertKind::Anomaly, 43));
    }
}
