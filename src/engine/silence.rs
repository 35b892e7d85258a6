//! Correlated silence: when most series of a group go silent together, one `source_silent`
//! event instead of one absence event per series.
//!
//! A series' group is named by the first of the model's `[silence] group_by` labels it has
//! (default `job`, then `instance`, then `host`), within its engine (one input partition);
//! series with none of those labels form one group per partition. A group with at least
//! `min_series` members that can go absent is **collapsible**.
//!
//! ```text
//! deadline passes ─▶ Held ──(group: silent >= max(min_series, ratio × members))──▶ Covered
//!                     │                                                    (one source_silent
//!                     │ window elapsed, group not silent                    firing event)
//!                     ▼
//!                   Firing (its own absence event, event time = its deadline)
//!
//! a Covered member reports ─▶ source_silent resolved; the other Covered members become
//!   Stragglers: each has its own timeout (from the engine clock) to report too, then alerts
//!   on its own (Firing).
//! ```
//!
//! A series is held for one of its own reporting intervals (its cadence's robust high
//! quantile, see `absence/mod.rs`), at most `window` (default 60 s): long enough for every member of
//! a source that stopped at one moment to pass its own deadline, since their last samples lie
//! within one interval of each other.
//!
//! A Held series that reports again before its window ends is not forgotten: when the window
//! ends its absence is emitted as a firing and a resolved event (both in event time) unless its
//! group collapsed meanwhile. So the events of an input do not depend on how the clock was
//! advanced, and the only cost of grouping is that a lone absence is emitted `window` later
//! (its event time is still its deadline), by at most one reporting interval.

use super::{Engine, NO_RULE};
use crate::absence::Absence;
use crate::alert::{
    alert_id, AbsencePhase, AbsenceState, Alert, AlertKind, AlertStatus, Transition,
};
use crate::series::SeriesRef;
use crate::time::{format_duration, format_rfc3339};

/// Series named as examples in a `source_silent` event.
const EXAMPLES: usize = 3;

/// One group of series (see the module docs).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Group {
    /// `(label, value)` naming the group; `None` for the partition-wide group.
    pub(super) label: Option<(String, String)>,
    pub(super) id: u64,
    /// Rule of the first member (gives the event its severity).
    rule: u16,
    /// Members that can go absent.
    members: u32,
    /// All series of the group (for the per-source series limit).
    pub(super) series: u32,
    /// The group's `cardinality_limit` alert.
    pub(super) limit: AbsenceState,
    /// Members timed out and not back (Held, Covered or Firing; not Stragglers).
    silent: u32,
    state: AbsenceState,
    held: Vec<Held>,
    covered: Vec<u32>,
}

/// An absence held back for its group's decision.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Held {
    release: i64,
    idx: u32,
    deadline: i64,
    /// The last sample before the silence.
    last_seen: i64,
    /// Event time of the sample that ended the silence ([`NEVER`](crate::absence::NEVER) if none).
    returned: i64,
    value: f64,
    straggler: bool,
}

impl Engine {
    /// The group of a new series (`u32::MAX`: none, for a series no rule governs).
    pub(super) fn group_for(&mut self, series: &SeriesRef<'_>, rule: u16) -> u32 {
        if rule == NO_RULE {
            return u32::MAX;
        }
        let (id, found) = self.source_of(series);
        let next = self.groups.len() as u32;
        let g = *self.group_ids.entry(id).or_insert(next);
        if g == next {
            self.groups.push(Group {
                label: found.map(|(i, v)| (self.model.silence.group_by[i].clone(), v.to_string())),
                id,
                rule,
                ..Group::default()
            });
        }
        let group = &mut self.groups[g as usize];
        group.series += 1;
        if self.model.rules[rule as usize].absence != Absence::Off {
            group.members += 1;
        }
        g
    }

    /// The source of a series: the id of its group and the label naming it (as an index into
    /// `group_by`, and the value); see the module docs.
    pub(super) fn source_of<'s>(&self, series: &SeriesRef<'s>) -> (u64, Option<(usize, &'s str)>) {
        let group_by = &self.model.silence.group_by;
        let found = group_by
            .iter()
            .enumerate()
            .find_map(|(i, k)| series.label(k).map(|v| (i, v)));
        let id = match found {
            Some((i, v)) => crate::series::series_id("source", &[(group_by[i].as_str(), v)]),
            None => crate::series::series_id("source", &[] as &[(&str, &str)]),
        };
        (id, found)
    }

    fn collapsible(&self, g: u32) -> bool {
        let s = &self.model.silence;
        s.window > 0 && self.groups[g as usize].members >= s.min_series
    }

    /// Silent members needed for the group to count as silent.
    fn needed(&self, g: u32) -> u32 {
        let s = &self.model.silence;
        let members = self.groups[g as usize].members;
        s.min_series
            .max((f64::from(members) * s.ratio).ceil() as u32)
    }

    /// Puts a timed-out series on hold (or under its group's firing event). Returns false when
    /// the series should fire on its own right away.
    pub(super) fn hold_for_group(&mut self, idx: u32, deadline: i64, out: &mut Vec<Alert>) -> bool {
        let g = self.group_of[idx as usize];
        // An earlier episode of this series that already ended but is still held is decided
        // now, so its firing/resolved pair comes before this new episode's events.
        let group = &mut self.groups[g as usize];
        if let Some(k) = group
            .held
            .iter()
            .position(|h| h.idx == idx && !h.straggler && h.returned != crate::absence::NEVER)
        {
            let h = group.held.swap_remove(k);
            self.release(g, h, out);
        }
        let collapsible = self.collapsible(g);
        let window = self.model.silence.window;
        let group = &mut self.groups[g as usize];
        group.silent += 1;
        if !collapsible {
            return false;
        }
        let st = &mut self.states[idx as usize];
        st.absence.since = deadline;
        // one reporting interval: every member of a source that stopped at one moment has
        // passed its own deadline by then
        let hold = st
            .cadence
            .high_quantile()
            .map_or(window, |q| q.clamp(1, window));
        if group.state.is_firing() {
            st.absence.phase = AbsencePhase::Covered;
            group.covered.push(idx);
        } else {
            st.absence.phase = AbsencePhase::Held;
            group.held.push(Held {
                release: deadline.saturating_add(hold),
                idx,
                deadline,
                last_seen: st.last_ts,
                returned: crate::absence::NEVER,
                value: f64::NAN,
                straggler: false,
            });
            if group.held.len() == 1 {
                self.dirty.push(g);
            }
        }
        true
    }

    /// A retired series leaves its group: entries dropped (an ended episode still held is
    /// decided first), counts adjusted. `phase` is its absence phase before retirement.
    pub(super) fn forget_in_group(&mut self, idx: u32, phase: AbsencePhase, out: &mut Vec<Alert>) {
        let g = self.group_of[idx as usize];
        if g == u32::MAX {
            return;
        }
        let held = std::mem::take(&mut self.groups[g as usize].held);
        let mut keep = Vec::with_capacity(held.len());
        for h in held {
            if h.idx != idx {
                keep.push(h);
            } else if !h.straggler && h.returned != crate::absence::NEVER {
                self.release(g, h, out);
            }
        }
        let rule = self.states[idx as usize].rule;
        let counts = rule != NO_RULE && self.model.rules[rule as usize].absence != Absence::Off;
        let group = &mut self.groups[g as usize];
        group.held = keep;
        group.covered.retain(|&c| c != idx);
        if matches!(
            phase,
            AbsencePhase::Held | AbsencePhase::Covered | AbsencePhase::Firing
        ) {
            group.silent = group.silent.saturating_sub(1);
        }
        if counts {
            group.members = group.members.saturating_sub(1);
        }
        group.series = group.series.saturating_sub(1);
    }

    /// A silent member (Held, Covered or Firing) is back: one fewer silent.
    pub(super) fn group_member_back(&mut self, idx: u32) {
        let g = self.group_of[idx as usize];
        let group = &mut self.groups[g as usize];
        group.silent = group.silent.saturating_sub(1);
    }

    /// A Held or Straggler series reported again at `ts`: its entry remembers it.
    pub(super) fn held_returned(&mut self, idx: u32, ts: i64, value: f64) {
        let g = self.group_of[idx as usize];
        let group = &mut self.groups[g as usize];
        if let Some(h) = group
            .held
            .iter_mut()
            .find(|h| h.idx == idx && h.returned == crate::absence::NEVER)
        {
            if !h.straggler {
                group.silent = group.silent.saturating_sub(1);
            }
            h.returned = ts;
            h.value = value;
        }
    }

    /// A Covered member reported at `ts` (its last sample before was at `last_seen`): its
    /// source is back. The group resolves; members still silent get their own timeout to
    /// report before they alert on their own.
    pub(super) fn group_returned(
        &mut self,
        idx: u32,
        ts: i64,
        last_seen: i64,
        out: &mut Vec<Alert>,
    ) {
        let g = self.group_of[idx as usize];
        if self.groups[g as usize].state.resolve() != Transition::Resolved {
            return;
        }
        let covered = std::mem::take(&mut self.groups[g as usize].covered);
        let mut stragglers = 0u32;
        for c in covered {
            let st = &mut self.states[c as usize];
            if st.absence.phase != AbsencePhase::Covered {
                continue;
            }
            st.absence.phase = AbsencePhase::Straggler;
            let rule = &self.model.rules[st.rule as usize];
            let grace = st
                .cadence
                .timeout(&rule.absence)
                .unwrap_or(self.model.silence.window);
            // from the engine clock, not from `ts`: a source returning with a replayed backlog
            // brings old timestamps while the clock (other sources) is already far ahead
            let entry = Held {
                release: ts.max(self.now).saturating_add(grace),
                idx: c,
                deadline: st.absence.since,
                last_seen: st.last_ts,
                returned: crate::absence::NEVER,
                value: f64::NAN,
                straggler: true,
            };
            stragglers += 1;
            let group = &mut self.groups[g as usize];
            group.silent = group.silent.saturating_sub(1);
            group.held.push(entry);
        }
        let group = &self.groups[g as usize];
        if !group.held.is_empty() && !self.dirty.contains(&g) {
            self.dirty.push(g);
        }
        let silent_from = if last_seen == i64::MIN {
            self.groups[g as usize].state.since // an expected series that never reported
        } else {
            last_seen
        };
        out.push(self.group_alert(g, AlertStatus::Resolved, ts, stragglers, &[], silent_from));
        self.count(AlertStatus::Resolved);
    }

    /// Decides the held absences of every group that has some: collapse into one
    /// `source_silent` event, or release the ones whose window has passed (all of them when
    /// `all`, at the end of an input).
    pub(super) fn settle_groups(&mut self, all: bool, out: &mut Vec<Alert>) {
        if self.dirty.is_empty() {
            return;
        }
        let now = self.now;
        let dirty = std::mem::take(&mut self.dirty);
        for g in dirty {
            self.maybe_collapse(g, out);
            let held = std::mem::take(&mut self.groups[g as usize].held);
            let mut keep = Vec::new();
            for h in held {
                if all || h.release <= now {
                    self.release(g, h, out);
                } else {
                    keep.push(h);
                }
            }
            if !keep.is_empty() {
                self.dirty.push(g);
            }
            self.groups[g as usize].held = keep;
        }
    }

    fn maybe_collapse(&mut self, g: u32, out: &mut Vec<Alert>) {
        let group = &self.groups[g as usize];
        if group.state.is_firing() || group.silent < self.needed(g) {
            return;
        }
        let Some(start) = group
            .held
            .iter()
            .filter(|h| !h.straggler)
            .map(|h| h.deadline)
            .min()
        else {
            return; // silent only through members already alerting on their own
        };
        let group = &mut self.groups[g as usize];
        group.state.fire(start);
        let held = std::mem::take(&mut group.held);
        let mut keep = Vec::new();
        let mut examples = Vec::new();
        for h in held {
            if h.straggler {
                keep.push(h);
                continue;
            }
            // a member that already came back is covered too: no event of its own
            let st = &mut self.states[h.idx as usize];
            if st.absence.phase == AbsencePhase::Held {
                st.absence.phase = AbsencePhase::Covered;
                self.groups[g as usize].covered.push(h.idx);
            }
            if examples.len() < EXAMPLES {
                examples.push(h.idx);
            }
        }
        self.groups[g as usize].held = keep;
        let silent = self.groups[g as usize].silent;
        out.push(self.group_alert(g, AlertStatus::Firing, start, silent, &examples, start));
        self.count(AlertStatus::Firing);
    }

    /// A held absence whose window ended without its group collapsing: its own events.
    fn release(&mut self, g: u32, h: Held, out: &mut Vec<Alert>) {
        let phase = self.states[h.idx as usize].absence.phase;
        let expected = if h.straggler {
            AbsencePhase::Straggler
        } else {
            AbsencePhase::Held
        };
        if h.returned == crate::absence::NEVER && phase != expected {
            return; // superseded (covered by its group meanwhile)
        }
        if h.straggler && h.returned != crate::absence::NEVER {
            return; // back within its grace: its group's event covered it
        }
        let st = &mut self.states[h.idx as usize];
        let before = st.absence;
        st.absence.phase = AbsencePhase::Live;
        st.absence.fire(h.deadline);
        self.emit_absence(
            h.idx,
            AlertStatus::Firing,
            h.deadline,
            h.last_seen,
            None,
            out,
        );
        if h.returned != crate::absence::NEVER {
            let st = &mut self.states[h.idx as usize];
            st.absence.resolve();
            self.emit_absence(
                h.idx,
                AlertStatus::Resolved,
                h.returned,
                h.last_seen,
                Some(h.value),
                out,
            );
            // back to where the series is now (live, or silent again since), keeping the
            // versions just used
            let st = &mut self.states[h.idx as usize];
            st.absence.phase = before.phase;
            st.absence.since = before.since;
        } else if h.straggler {
            self.groups[g as usize].silent += 1;
        }
    }

    /// The `source_silent` events still firing (for [`Engine::firing`]): the same id and
    /// version as when they fired, so a receiver that lost them (an Alertmanager after a
    /// restore) takes them as the same alerts.
    pub(super) fn groups_firing(&self, out: &mut Vec<Alert>) {
        for (g, group) in self.groups.iter().enumerate() {
            if group.state.is_firing() {
                let examples: Vec<u32> = group.covered.iter().copied().take(EXAMPLES).collect();
                let a = self.group_alert(
                    g as u32,
                    AlertStatus::Firing,
                    group.state.since,
                    group.silent,
                    &examples,
                    group.state.since,
                );
                out.push(a);
            }
        }
    }

    /// A `source_silent` event of group `g`; a resolve counts the silence from `silent_from`
    /// (the returning member's last sample, as its own absence would).
    fn group_alert(
        &self,
        g: u32,
        status: AlertStatus,
        event_time: i64,
        count: u32,
        examples: &[u32],
        silent_from: i64,
    ) -> Alert {
        let group = &self.groups[g as usize];
        let rule = &self.model.rules[group.rule as usize];
        let mut labels: Vec<(String, String)> = group.label.iter().cloned().collect();
        let mut id = group.id;
        if let Some(scope) = &self.scope {
            labels.push(("partition".into(), scope.clone()));
            id = crate::series::series_id("source", &labels);
        }
        labels.sort();
        let what = match &group.label {
            Some((k, v)) => format!("{k}=\"{v}\""),
            None => match &self.scope {
                Some(s) => format!("partition {s}"),
                None => "the input".to_string(),
            },
        };
        let examples: Vec<String> = examples
            .iter()
            .map(|&i| self.series.series(i).display())
            .collect();
        let summary = match status {
            AlertStatus::Firing => format!(
                "{count} of {} series of {what} went silent together: the first missed its \
                 deadline at {} (e.g. {}); their own absence alerts are suppressed",
                group.members,
                format_rfc3339(event_time),
                examples.join(", ")
            ),
            AlertStatus::Resolved if event_time < group.state.since => format!(
                "{what} was late, not silent: data for {} arrived after the group's deadline {}; \
                 {count} series not yet back alert on their own if they stay silent",
                format_rfc3339(event_time),
                format_rfc3339(group.state.since)
            ),
            AlertStatus::Resolved => format!(
                "{what} is reporting again at {} after {} of silence; {count} series not yet \
                 back alert on their own if they stay silent",
                format_rfc3339(event_time),
                format_duration(event_time.saturating_sub(silent_from))
            ),
        };
        let mut annotations = vec![
            ("silent_series".to_string(), count.to_string()),
            ("group_series".to_string(), group.members.to_string()),
        ];
        if !examples.is_empty() {
            annotations.push(("examples".into(), examples.join(", ")));
        }
        Alert {
            alert_id: alert_id("deadair", AlertKind::SourceSilent, id),
            version: u64::from(group.state.version),
            kind: AlertKind::SourceSilent,
            state: status,
            rule: rule.name.clone(),
            severity: rule.severity.clone(),
            name: "deadair_source_silent".into(),
            labels,
            annotations,
            event_time,
            started_at: group.state.since,
            emitted_at: self.now.max(event_time),
            value: Some(f64::from(count)),
            expected: None,
            lower: None,
            upper: None,
            score: if status == AlertStatus::Firing {
                1.0
            } else {
                0.0
            },
            summary,
            series: id,
        }
    }
}
