//! Engine snapshots: everything a partition's engine knows (series and their labels, detector
//! state, learned cadences, deadlines, alert states and versions, correlated-silence groups,
//! limit alerts, counters) as bytes, so the state can be checkpointed to Kafka and restored by
//! the partition's next owner (see `kafka/checkpoint.rs`).
//!
//! Layout: the magic `DAsn`, a little-endian `u16` format version ([`FORMAT`]), then the state
//! in postcard (serde's compact varint encoding). A snapshot of another format version is
//! refused with both versions named: an upgrade that changes the layout bumps [`FORMAT`] and
//! keeps a reader for the previous one. Format 1 (before the `context` detector) is read with
//! its series, cadences, deadlines, alert states and versions; its detector state is dropped
//! and learned afresh (the detectors' layout and the default model changed), so a firing
//! anomaly resolves at its series' first sample after the upgrade. Format 2 (before the learned
//! detectors and the `stuck` alert) is read whole: its classic detector state is kept for
//! rules that still use the classic detectors; a series whose rule now uses the learned ones
//! learns afresh, as above. Format 3 (before `shift` learned its alerting bursts) is read whole,
//! its learned state kept with no bursts learned yet. Formats 3 to 5 (before `spread` became a
//! CUSUM and the noise was learned by level) are read whole, with `spread`'s statistic and tail
//! forgotten and learned afresh (it judges nothing until it has) and the noise by level learned
//! from nothing.
//!
//! Rules are recorded by name. On restore, a series whose rule still exists keeps its state;
//! one whose rule is gone is matched again against the current model and starts learning
//! afresh (its alert versions are kept, so alert ids and versions stay unique).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::silence::Group;
use super::{Engine, EngineStats, SeriesState, NO_RULE};
use crate::absence::NEVER;
use crate::alert::AbsenceState;
use crate::detect::{learned, DetectorState};
use crate::model::Model;

/// Snapshot format version this build writes (and reads, besides formats 1 to 5).
pub const FORMAT: u16 = 6;
const MAGIC: &[u8; 4] = b"DAsn";

#[derive(Serialize)]
struct SnapRef<'a> {
    rules: Vec<&'a str>,
    now: i64,
    scope: &'a Option<String>,
    keys: crate::series::CanonicalKeys<'a>,
    free: Vec<u32>,
    states: &'a [SeriesState],
    group_of: &'a [u32],
    groups: &'a [Group],
    dirty: &'a [u32],
    limit: AbsenceState,
    stats: &'a EngineStats,
}

#[derive(Deserialize)]
struct Snap<S> {
    rules: Vec<String>,
    now: i64,
    scope: Option<String>,
    keys: Vec<Vec<u8>>,
    free: Vec<u32>,
    states: Vec<S>,
    group_of: Vec<u32>,
    groups: Vec<Group>,
    dirty: Vec<u32>,
    limit: AbsenceState,
    stats: EngineStats,
}

/// Format 1's per-series state, read for upgrades (field order as written then).
mod v1 {
    use serde::Deserialize;

    use crate::absence::Cadence;
    use crate::alert::{AbsenceState, AlertState};
    use crate::detect::{ewma, level_shift, likelihood, novelty, Window};

    /// Decoded only to step over it (postcard is not self-describing): it is learned afresh.
    #[derive(Deserialize)]
    #[allow(dead_code)]
    pub struct DetectorState {
        window: Window,
        ewma: ewma::State,
        level_shift: level_shift::State,
        novelty: novelty::State,
        likelihood: likelihood::State,
        n: u32,
    }

    #[derive(Deserialize)]
    pub struct SeriesState {
        pub last_ts: i64,
        pub deadline: i64,
        pub queued_at: i64,
        #[allow(dead_code)]
        pub detectors: DetectorState,
        pub cadence: Cadence,
        pub anomaly: AlertState,
        pub absence: AbsenceState,
        pub rule: u16,
    }

    impl From<SeriesState> for super::SeriesState {
        fn from(o: SeriesState) -> Self {
            Self {
                last_ts: o.last_ts,
                deadline: o.deadline,
                queued_at: o.queued_at,
                detectors: super::DetectorState::default(),
                cadence: o.cadence,
                anomaly: o.anomaly,
                absence: o.absence,
                stuck: Default::default(),
                rule: o.rule,
                peak: 0,
            }
        }
    }
}

/// Format 2's per-series state (before the learned detectors and the `stuck` alert).
mod v2 {
    use serde::Deserialize;

    use crate::absence::Cadence;
    use crate::alert::{AbsenceState, AlertState};
    use crate::detect::ClassicState;

    #[derive(Deserialize)]
    pub struct SeriesState {
        pub last_ts: i64,
        pub deadline: i64,
        pub queued_at: i64,
        pub detectors: ClassicState,
        pub cadence: Cadence,
        pub anomaly: AlertState,
        pub absence: AbsenceState,
        pub rule: u16,
        pub peak: u16,
    }

    impl From<SeriesState> for super::SeriesState {
        fn from(o: SeriesState) -> Self {
            Self {
                last_ts: o.last_ts,
                deadline: o.deadline,
                queued_at: o.queued_at,
                detectors: super::DetectorState::Classic(o.detectors),
                cadence: o.cadence,
                anomaly: o.anomaly,
                absence: o.absence,
                stuck: Default::default(),
                rule: o.rule,
                peak: o.peak,
            }
        }
    }
}

/// Formats 3 to 5's per-series state (the layout of this build's, with an older learned state):
/// read whole, the learned detectors' state upgraded.
mod v3 {
    use serde::Deserialize;

    use crate::absence::Cadence;
    use crate::alert::{AbsenceState, AlertState};
    use crate::detect::{learned, ClassicState};

    #[derive(Deserialize)]
    pub enum DetectorState<L> {
        Classic(ClassicState),
        Learned(L),
    }

    /// Formats 3 to 5's per-series state, `L` their learned detectors' state.
    #[derive(Deserialize)]
    pub struct SeriesState<L> {
        pub last_ts: i64,
        pub deadline: i64,
        pub queued_at: i64,
        pub detectors: DetectorState<L>,
        pub cadence: Cadence,
        pub anomaly: AlertState,
        pub absence: AbsenceState,
        pub stuck: AbsenceState,
        pub rule: u16,
        pub peak: u16,
    }

    impl<L: Into<learned::State>> From<SeriesState<L>> for super::SeriesState {
        fn from(o: SeriesState<L>) -> Self {
            Self {
                last_ts: o.last_ts,
                deadline: o.deadline,
                queued_at: o.queued_at,
                detectors: match o.detectors {
                    DetectorState::Classic(c) => super::DetectorState::Classic(c),
                    DetectorState::Learned(l) => super::DetectorState::Learned(l.into()),
                },
                cadence: o.cadence,
                anomaly: o.anomaly,
                absence: o.absence,
                stuck: o.stuck,
                rule: o.rule,
                peak: o.peak,
            }
        }
    }
}

impl<S> Snap<S> {
    /// The same snapshot with every series state upgraded.
    fn upgrade(self) -> Snap<SeriesState>
    where
        SeriesState: From<S>,
    {
        Snap {
            rules: self.rules,
            now: self.now,
            scope: self.scope,
            keys: self.keys,
            free: self.free,
            states: self.states.into_iter().map(SeriesState::from).collect(),
            group_of: self.group_of,
            groups: self.groups,
            dirty: self.dirty,
            limit: self.limit,
            stats: self.stats,
        }
    }
}

fn decode<S: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<Snap<S>, SnapshotError> {
    postcard::from_bytes(bytes).map_err(SnapshotError::Corrupt)
}

/// A snapshot that cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a deadair engine snapshot (bad magic)")]
    NotASnapshot,
    #[error("engine snapshot format {0}; this deadair reads formats 1 to {FORMAT}")]
    Format(u16),
    #[error("engine snapshot is corrupt: {0}")]
    Corrupt(postcard::Error),
    #[error(
        "engine snapshot is inconsistent: {series} series, {states} states, {groups} group entries"
    )]
    Lengths {
        series: usize,
        states: usize,
        groups: usize,
    },
    #[error("engine snapshot is inconsistent: {0}")]
    Table(#[from] crate::series::TableError),
}

impl Engine {
    /// The engine's whole state as bytes (see the module docs).
    pub fn snapshot(&self) -> Vec<u8> {
        let (keys, free) = self.series.raw();
        let snap = SnapRef {
            rules: self.model.rules.iter().map(|r| &*r.name).collect(),
            now: self.now,
            scope: &self.scope,
            keys,
            free,
            states: &self.states,
            group_of: &self.group_of,
            groups: &self.groups,
            dirty: &self.dirty,
            limit: self.limit,
            stats: &self.stats,
        };
        let mut out = Vec::with_capacity(64 + self.states.len() * 300);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        // serializing plain data into a Vec cannot fail; an empty result would be refused by
        // `restore` (bad magic), never misread
        if postcard::to_io(&snap, &mut out).is_err() {
            out.clear();
        }
        out
    }

    /// Rebuilds an engine from [`Engine::snapshot`] bytes, under `model`.
    pub fn restore(model: Arc<Model>, bytes: &[u8]) -> Result<Engine, SnapshotError> {
        if bytes.len() < 6 || &bytes[..4] != MAGIC {
            return Err(SnapshotError::NotASnapshot);
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        let snap: Snap<SeriesState> = match version {
            FORMAT => decode(&bytes[6..])?,
            1 => decode::<v1::SeriesState>(&bytes[6..])?.upgrade(),
            2 => decode::<v2::SeriesState>(&bytes[6..])?.upgrade(),
            3 => decode::<v3::SeriesState<learned::StateV3>>(&bytes[6..])?.upgrade(),
            4 | 5 => decode::<v3::SeriesState<learned::StateV5>>(&bytes[6..])?.upgrade(),
            _ => return Err(SnapshotError::Format(version)),
        };
        let n = snap.keys.len();
        if snap.states.len() != n || snap.group_of.len() != n {
            return Err(SnapshotError::Lengths {
                series: n,
                states: snap.states.len(),
                groups: snap.group_of.len(),
            });
        }
        let mut e = Engine::new(model);
        let rule_map: Vec<Option<u16>> = snap
            .rules
            .iter()
            .map(|name| {
                e.model
                    .rules
                    .iter()
                    .position(|r| &*r.name == name)
                    .map(|i| i as u16)
            })
            .collect();
        e.series = crate::series::SeriesTable::from_raw(snap.keys, &snap.free)?;
        e.states = snap.states;
        e.group_of = snap.group_of;
        let free: std::collections::HashSet<u32> = snap.free.iter().copied().collect();
        for (i, st) in e.states.iter_mut().enumerate() {
            st.queued_at = NEVER;
            if free.contains(&(i as u32)) || st.rule == NO_RULE {
                continue;
            }
            match rule_map.get(st.rule as usize).copied().flatten() {
                Some(r) => st.rule = r,
                None => {
                    // the rule is gone: match again, learn afresh
                    let series = e.series.series(i as u32);
                    st.rule = e
                        .model
                        .rule_for(&series.view())
                        .map_or(NO_RULE, |r| r as u16);
                    st.detectors = DetectorState::default();
                    st.cadence = Default::default();
                }
            }
        }
        for (i, st) in e.states.iter_mut().enumerate() {
            if st.deadline != NEVER && !free.contains(&(i as u32)) {
                st.queued_at = st.deadline;
                e.deadlines.push(st.deadline, i as u32);
            }
        }
        e.group_ids = snap
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id, i as u32))
            .collect();
        e.groups = snap.groups;
        e.dirty = snap.dirty;
        e.limit = snap.limit;
        e.stats = snap.stats;
        e.scope = snap.scope;
        e.now = snap.now;
        Ok(e)
    }
}
