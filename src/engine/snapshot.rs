//! Engine snapshots: everything a partition's engine knows (series and their labels, detector
//! state, learned cadences, deadlines, alert states and versions, correlated-silence groups,
//! limit alerts, counters) as bytes, so the state can be checkpointed to Kafka and restored by
//! the partition's next owner (see `kafka/checkpoint.rs`).
//!
//! Layout: the magic `DAsn`, a little-endian `u16` format version ([`FORMAT`]), then the state
//! in postcard (serde's compact varint encoding). A snapshot of another format version is
//! refused with both versions named: an upgrade that changes the layout bumps [`FORMAT`] and
//! keeps a reader for the previous one.
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
use crate::detect::DetectorState;
use crate::model::Model;

/// Snapshot format version this build writes and reads.
pub const FORMAT: u16 = 2;
const MAGIC: &[u8; 4] = b"DAsn";

#[derive(Serialize)]
struct SnapRef<'a> {
    rules: Vec<&'a str>,
    now: i64,
    scope: &'a Option<String>,
    keys: Vec<&'a [u8]>,
    free: Vec<u32>,
    states: &'a [SeriesState],
    group_of: &'a [u32],
    groups: &'a [Group],
    dirty: &'a [u32],
    limit: AbsenceState,
    stats: &'a EngineStats,
}

#[derive(Deserialize)]
struct Snap {
    rules: Vec<String>,
    now: i64,
    scope: Option<String>,
    keys: Vec<Vec<u8>>,
    free: Vec<u32>,
    states: Vec<SeriesState>,
    group_of: Vec<u32>,
    groups: Vec<Group>,
    dirty: Vec<u32>,
    limit: AbsenceState,
    stats: EngineStats,
}

/// A snapshot that cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotError(pub String);

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SnapshotError {}

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
            return Err(SnapshotError(
                "not a deadair engine snapshot (bad magic)".into(),
            ));
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != FORMAT {
            return Err(SnapshotError(format!(
                "engine snapshot format {version}; this deadair reads format {FORMAT}"
            )));
        }
        let snap: Snap = postcard::from_bytes(&bytes[6..])
            .map_err(|e| SnapshotError(format!("engine snapshot is corrupt: {e}")))?;
        let n = snap.keys.len();
        if snap.states.len() != n || snap.group_of.len() != n {
            return Err(SnapshotError(format!(
                "engine snapshot is inconsistent: {n} series, {} states, {} group entries",
                snap.states.len(),
                snap.group_of.len()
            )));
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
        e.series = crate::series::SeriesTable::from_raw(snap.keys, &snap.free)
            .map_err(|m| SnapshotError(format!("engine snapshot is inconsistent: {m}")))?;
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
                    st.rule = e.model.rule_for(&series).map_or(NO_RULE, |r| r as u16);
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
