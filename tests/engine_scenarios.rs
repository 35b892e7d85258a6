//! Absence scenarios (issue "absence that knows its clocks"), deterministic, at engine level,
//! through the public API. Each test states the alerts expected and checks the alerts seen and
//! their event times. Inputs, replay and tables come from the kit in `tests/common/kit.rs`.

use std::sync::Arc;

use deadair::clock::{ClockConfig, Lag, PartitionClock};
use deadair::detect::DetectorState;
use deadair::{Alert, AlertKind, AlertStatus, Engine, Model, Outcome};

mod common;

use common::kit::{
    count, engine, feed, ingest, knuth_noise, label, replay, source, Row, Series, Smp, Step, Table,
    S, T0,
};

#[test]
fn correlated_silence_collapses_a_source_and_spares_the_others() {
    // api: 300 series every 10 s, phases spread over the whole interval; they stop at 600 s.
    // db: 300 series the same, all along. 297 api series come back at 1800 s; 3 never do.
    let mut input = source("api", 300, 10 * S, 10 * S, T0, T0 + 600 * S);
    input.extend(source("db", 300, 10 * S, 10 * S, T0, T0 + 2400 * S));
    let back: Vec<Smp> = source("api", 300, 10 * S, 10 * S, T0 + 1800 * S, T0 + 2400 * S)
        .into_iter()
        .filter(|s| !["api-7", "api-8", "api-9"].contains(&s.instance.as_str()))
        .collect();
    input.extend(back);
    let mut e = engine();
    let alerts = replay(&mut e, input, T0 + 2400 * S);

    let silent: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::SourceSilent)
        .collect();
    // expected: one firing and one resolved source_silent for api, nothing for db, and the
    // 3 api series that never came back alert on their own after their group resolved
    assert_eq!(silent.len(), 2, "{silent:#?}");
    let (fire, resolve) = (silent[0], silent[1]);
    assert_eq!((fire.state, fire.version), (AlertStatus::Firing, 1));
    assert_eq!((resolve.state, resolve.version), (AlertStatus::Resolved, 2));
    assert_eq!(fire.alert_id, resolve.alert_id);
    assert_eq!(label(fire, "job"), Some("api"));
    // api's first series (phase 0) last reported at 590 s; learned timeout 3 × 10 s
    assert_eq!(
        fire.event_time,
        T0 + 620 * S,
        "starts at the first member's deadline"
    );
    assert!(fire.value.unwrap() >= 150.0, "at least half of 300 silent");
    assert!(
        fire.summary.contains("of 300 series of job=\"api\""),
        "{}",
        fire.summary
    );
    // when the first deadline passed, not when they stopped (590 s): the text says which
    assert!(
        fire.summary.contains(
            "went silent together: the first missed its deadline at 2023-11-14T22:23:40.000Z"
        ),
        "{}",
        fire.summary
    );
    assert_eq!(
        resolve.event_time,
        T0 + 1800 * S,
        "the first returning sample"
    );
    // silent since that member's last sample (590 s), as its own absence would say; not since
    // the group fired (620 s)
    assert!(
        resolve
            .summary
            .contains("at 2023-11-14T22:43:20.000Z after 20m10s of silence"),
        "{}",
        resolve.summary
    );
    // (db's noise may set new extremes, which the default model's novelty reports as
    // anomalies: that is detection, not silence handling)
    let db: Vec<&Alert> = alerts
        .iter()
        .filter(|a| label(a, "job") == Some("db") && a.kind != AlertKind::Anomaly)
        .collect();
    assert!(db.is_empty(), "db's silence handling untouched: {db:#?}");

    let own: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::Absence)
        .collect();
    let mut who: Vec<&str> = own.iter().filter_map(|a| label(a, "instance")).collect();
    who.sort();
    assert_eq!(who, ["api-7", "api-8", "api-9"], "{own:#?}");
    for a in &own {
        assert_eq!(a.state, AlertStatus::Firing);
        // each keeps its own silence start (its deadline), emitted after its grace period
        assert!(a.started_at < T0 + 640 * S && a.started_at >= T0 + 620 * S);
        assert!(a.emitted_at >= T0 + 1830 * S);
    }
    // (anomalies are another matter: the default model's novelty detector may flag the noise)
}

#[test]
fn a_lone_silence_in_a_large_group_alerts_on_its_own_at_its_deadline() {
    let mut input = source("db", 50, 10 * S, 10 * S, T0, T0 + 1200 * S);
    input.retain(|s| !(s.instance == "db-3" && s.ts >= T0 + 600 * S));
    let mut e = engine();
    let alerts = replay(&mut e, input, T0 + 1200 * S);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!((a.kind, a.state), (AlertKind::Absence, AlertStatus::Firing));
    assert_eq!(label(a, "instance"), Some("db-3"));
    // db-3 (phase 0.6 s) last reported at 590.6 s; timeout 3 × 10 s
    assert_eq!(a.event_time, T0 + 620_600);
    // held one reporting interval (10 s) to see whether its group follows
    assert!(a.emitted_at >= T0 + 630_600 && a.emitted_at <= T0 + 631_600);
}

#[test]
fn catch_up_after_downtime_raises_no_false_absence() {
    // deadair is down from 300 s to 900 s while 100 series keep sending every 10 s; one of
    // them (app-5) truly stops at 500 s. On restart the engine starts empty at the committed
    // position (300 s) and consumes the backlog as fast as it can: the clock follows event
    // time only (lagging), so nothing can fire for deadair's own downtime.
    let mut input = source("app", 100, 10 * S, 10 * S, T0 + 300 * S, T0 + 1200 * S);
    input.retain(|s| !(s.instance == "app-5" && s.ts >= T0 + 500 * S));
    input.sort_by_key(|s| s.ts);
    let mut e = engine();
    let mut clock = PartitionClock::new(
        ClockConfig {
            allowed_lateness: 0,
            ingest_delay: S,
            lag_threshold: 60 * S,
        },
        Arc::from("metrics"),
        0,
    );
    let total = input.len() as i64;
    let wall = T0 + 1200 * S; // the backlog is consumed at wall time 1200 s
    let mut out = Vec::new();
    for (offset, s) in input.iter().enumerate() {
        clock.consumed(offset as i64, Some(s.ts), Some(s.ts));
        ingest(&mut e, s, &mut out);
        if let Some(w) = clock.event_watermark() {
            e.advance(w, &mut out);
        }
        if offset % 1000 == 0 {
            // a clock tick mid-backlog: lagging, so wall time must not count
            let lag = clock.lag(Some(total), None, wall);
            assert!(lag.messages.unwrap() > 0);
            e.advance(clock.watermark(lag, wall), &mut out);
            clock.step_lag(lag, wall, "g", &mut out);
        }
    }
    let lag = clock.lag(Some(total), None, wall);
    assert_eq!(
        lag,
        Lag {
            messages: Some(0),
            behind_ms: 0
        }
    );
    clock.step_lag(lag, wall, "g", &mut out);
    e.advance(clock.watermark(lag, wall), &mut out);

    let absences: Vec<&Alert> = out
        .iter()
        .filter(|a| a.kind == AlertKind::Absence)
        .collect();
    assert_eq!(
        absences.len(),
        1,
        "only the series that truly stopped: {absences:#?}"
    );
    let a = absences[0];
    assert_eq!(label(a, "instance"), Some("app-5"));
    // app-5 (phase 0.5 s) last reported at 490.5 s; learned timeout 30 s
    assert_eq!(
        a.event_time,
        T0 + 520_500,
        "event-time start, not restart time"
    );
    assert_eq!(
        count(&out, AlertKind::SourceSilent, AlertStatus::Firing),
        0,
        "{out:#?}"
    );
    // the backlog was 15 minutes behind: one pipeline_lag episode
    assert_eq!(count(&out, AlertKind::PipelineLag, AlertStatus::Firing), 1);
    assert_eq!(
        count(&out, AlertKind::PipelineLag, AlertStatus::Resolved),
        1
    );
}

#[test]
fn wall_clock_detects_a_silent_partition_only_while_caught_up() {
    // one partition carrying one source of 20 series every second; the source stops at 60 s
    // and nothing else arrives on the partition.
    let input = source("edge", 20, S, 500, T0, T0 + 60 * S);
    let cfg = ClockConfig {
        allowed_lateness: 0,
        ingest_delay: S,
        lag_threshold: 60 * S,
    };
    let run = |caught_up_from: i64| {
        let mut sorted = input.clone();
        sorted.sort_by_key(|s| s.ts);
        let mut e = engine();
        let mut clock = PartitionClock::new(cfg, Arc::from("metrics"), 0);
        let mut out = Vec::new();
        for (offset, s) in sorted.iter().enumerate() {
            clock.consumed(offset as i64, Some(s.ts), Some(s.ts));
            ingest(&mut e, s, &mut out);
            if let Some(w) = clock.event_watermark() {
                e.advance(w, &mut out);
            }
        }
        let last = sorted.len() as i64;
        // wall-clock ticks every 250 ms from 60 s to 200 s
        let mut wall = T0 + 60 * S;
        while wall < T0 + 200 * S {
            // before `caught_up_from` librdkafka reports more messages than consumed
            let high = if wall < caught_up_from {
                last + 10
            } else {
                last
            };
            let lag = clock.lag(Some(high), None, wall);
            e.advance(clock.watermark(lag, wall), &mut out);
            if !out.is_empty() {
                return (out, wall);
            }
            wall += 250;
        }
        (out, wall)
    };
    // caught up all along: fires once wall - ingest_delay passes the group's deadlines
    let (out, at) = run(0);
    assert_eq!(out.len(), 1, "{out:#?}");
    let a = &out[0];
    assert_eq!(
        (a.kind, a.state),
        (AlertKind::SourceSilent, AlertStatus::Firing)
    );
    // edge-0 last reported at 59 s; learned timeout = floor 10 s
    assert_eq!(a.event_time, T0 + 69 * S);
    // 20 series with phases over 0.5 s: silent ≥ 10 by 69.25 s; +1 s ingest delay, +1 tick
    let delay = at - a.event_time;
    assert!(
        (S..=S + 500).contains(&delay),
        "detected {delay} ms after the deadline"
    );

    // lagging until 150 s (deadair behind its input): nothing may fire before it catches up
    let (out, at) = run(T0 + 150 * S);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event_time, T0 + 69 * S, "the same event-time start");
    assert_eq!(
        at,
        T0 + 150 * S,
        "fired at the first caught-up tick, not before"
    );
}

#[test]
fn a_source_returning_with_a_backlog_resolves_in_event_time_without_anomalies() {
    // 20 series of `agent` every 10 s; at 3000 s their network goes down. The other source's
    // event time moves the clock past their deadlines: the group fires. At 3600 s the agents
    // reconnect and replay their buffer (3000 s .. 3600 s, old timestamps arriving at once),
    // then run live again.
    let mut e = engine();
    let mut input = source("agent", 20, 10 * S, 2 * S, T0, T0 + 3000 * S);
    input.extend(source("other", 20, 10 * S, 2 * S, T0, T0 + 3600 * S));
    let mut out = replay(&mut e, input, T0 + 3600 * S);
    assert_eq!(
        count(&out, AlertKind::SourceSilent, AlertStatus::Firing),
        1,
        "{out:#?}"
    );
    let fired = out
        .iter()
        .find(|a| a.kind == AlertKind::SourceSilent)
        .cloned();
    let fired = fired.unwrap();
    assert_eq!(
        fired.event_time,
        T0 + 3020 * S,
        "agent-0's deadline: 2990 s + 30 s"
    );
    out.clear();
    // the buffered wave: 60 samples per series in a burst, in per-series order
    let mut wave = source("agent", 20, 10 * S, 2 * S, T0 + 3000 * S, T0 + 3600 * S);
    wave.sort_by_key(|s| s.ts);
    for s in &wave {
        ingest(&mut e, s, &mut out);
    }
    let live = source("agent", 20, 10 * S, 2 * S, T0 + 3600 * S, T0 + 4200 * S);
    let mut rest = live;
    rest.extend(source(
        "other",
        20,
        10 * S,
        2 * S,
        T0 + 3600 * S,
        T0 + 4200 * S,
    ));
    out.extend(replay(&mut e, rest, T0 + 4200 * S));
    // expected: one resolved for the group at the first replayed sample, which is before the
    // group's start (late, not silent); no anomaly from the burst; nothing else
    assert_eq!(out.len(), 1, "{out:#?}");
    let r = &out[0];
    assert_eq!(
        (r.kind, r.state),
        (AlertKind::SourceSilent, AlertStatus::Resolved)
    );
    assert_eq!(r.alert_id, fired.alert_id);
    assert_eq!(r.event_time, T0 + 3000 * S);
    assert_eq!(
        e.stats().late,
        0,
        "every replayed sample was accepted in event time"
    );
}

#[test]
fn irregular_series_get_no_learned_switch_but_regular_ones_do() {
    // `events` reports at Poisson-like times (mean 30 s); `steady` every 10 s with ±3 s jitter
    // and one sample 90 s late. Both stop at 3000 s.
    let mut e = engine();
    let mut out = Vec::new();
    let mut t = T0;
    let mut samples = Vec::new();
    for i in 0..100u64 {
        // exponential inter-arrival from deterministic uniform noise
        let u = (knuth_noise(i * 7 + 3) + 1.0) / 2.0;
        t += (-(1.0 - u * 0.999).ln() * 30_000.0) as i64 + 1;
        if t >= T0 + 3000 * S {
            break;
        }
        samples.push(("events", t));
    }
    let mut t = T0;
    let mut i = 0u64;
    while t < T0 + 3000 * S {
        samples.push(("steady", t));
        t += 10 * S + (knuth_noise(i) * 3000.0) as i64 + if i == 150 { 20 * S } else { 0 };
        i += 1;
    }
    samples.sort_by_key(|s| s.1);
    for &(name, ts) in &samples {
        e.advance(ts - 1, &mut out);
        e.ingest(name, &[("job", "x")], ts, 1.0, &mut out);
    }
    e.advance(T0 + 9000 * S, &mut out);
    let absent: Vec<&str> = out
        .iter()
        .filter(|a| a.kind == AlertKind::Absence && a.state == AlertStatus::Firing)
        .map(|a| a.name.as_str())
        .collect();
    // `steady`'s one late sample (a 30 s gap) stays within its timeout (≈ 3 × 13 s): only its
    // real stop fires; `events` never does
    assert_eq!(absent, ["steady"], "{out:#?}");
    let idx = e.series_index("events", &[("job", "x")]).unwrap();
    assert!(e.series_state(idx).unwrap().cadence.is_irregular());
}

#[test]
fn a_held_episode_is_decided_before_the_same_series_goes_silent_again() {
    // `a` reports every 20 s, then is silent from 200 s (deadline 260 s, held one 20 s
    // interval), returns at 261 s with 1 s samples until 268 s (its learned timeout drops to
    // 10 s, the floor) and is silent again (deadline 278 s). `b`, `c`, `d` keep the clock going
    // and make the group collapsible. Events of `a` must alternate firing/resolved with
    // increasing versions, in event-time order. (The irregular check is off: the sudden
    // change from 20 s to 1 s would otherwise class `a` irregular, with no switch at all.)
    let text = deadair::model::DEFAULT_MODEL_TOML.replace("irregular = 4.0", "irregular = 0");
    assert!(text.contains("irregular = 0"));
    let mut e = Engine::new(Arc::new(Model::parse(&text, "test").unwrap()));
    let mut out = Vec::new();
    let mut input: Vec<(i64, &str)> = Vec::new();
    for t in (0..=200).step_by(20) {
        input.push((t, "a"));
    }
    for t in 261..=268 {
        input.push((t, "a"));
    }
    input.push((290, "a"));
    for t in 0..=295 {
        for who in ["b", "c", "d"] {
            input.push((t, who));
        }
    }
    input.sort();
    for &(t, who) in &input {
        let ts = T0 + t * S;
        e.advance(ts - 1, &mut out);
        e.ingest("up", &[("instance", who), ("job", "g")], ts, 1.0, &mut out);
    }
    e.advance(T0 + 295 * S, &mut out); // before a's next deadline (300 s)
    e.finish(&mut out);
    let a: Vec<(AlertStatus, u64, i64)> = out
        .iter()
        .filter(|x| x.kind == AlertKind::Absence && label(x, "instance") == Some("a"))
        .map(|x| (x.state, x.version, (x.event_time - T0) / S))
        .collect();
    assert_eq!(
        a,
        [
            (AlertStatus::Firing, 1, 260),
            (AlertStatus::Resolved, 2, 261),
            (AlertStatus::Firing, 3, 278),
            (AlertStatus::Resolved, 4, 290),
        ],
        "{out:#?}"
    );
}

#[test]
fn inventory_expectations_tombstones_and_retention() {
    // retention 2 h; `a` and `b` report every 10 s, `c` is expected but never reports
    let text =
        deadair::model::DEFAULT_MODEL_TOML.replace("retention = \"7d\"", "retention = \"2h\"");
    assert!(text.contains("retention = \"2h\""));
    let mut e = Engine::new(Arc::new(Model::parse(&text, "test").unwrap()));
    const A: Series<'static> = ("up", &[("instance", "a"), ("job", "inv")]);
    const B: Series<'static> = ("up", &[("instance", "b"), ("job", "inv")]);
    const C: Series<'static> = ("up", &[("instance", "c"), ("job", "inv")]);
    use AlertKind::Absence;
    use AlertStatus::{Firing, Resolved};
    use Step::{Every, Expect, Unexpect};
    // rows: (t in s after T0, step, the absence events it emits: (kind, state, instance,
    // event time in s after T0))
    let inv = Table {
        origin: T0,
        key: "instance",
        kinds: &[Absence],
    };

    let mut out = inv.walk(&mut e, &[(0, Expect(&[A, B, C]), &[])]);
    assert!(!e.expect(A.0, A.1, T0, &mut out), "already known");
    assert!(out.iter().all(|x| x.kind != Absence), "{out:#?}");
    let rows: &[Row] = &[
        (0, Every(&[A, B], 10, 1000), &[]),
        // `b` stops at 1000 s; `c` never reports. c: absent at its initial timeout (1 h after
        // it was expected); b: at 990 s + 30 s
        (
            1000,
            Every(&[A], 10, 4000),
            &[(Absence, Firing, "b", 1020), (Absence, Firing, "c", 3600)],
        ),
    ];
    out.extend(inv.walk(&mut e, rows));
    assert!(out.iter().any(|x| x.summary.contains("inventory")));

    // a tombstone for `c`: retired now, with its final resolved event
    let out = inv.walk(
        &mut e,
        &[(4000, Unexpect(&[C]), &[(Absence, Resolved, "c", 4000)])],
    );
    assert!(out[0].summary.contains("retired"), "{}", out[0].summary);
    assert_eq!(e.series_count(), 2);

    // `b` silent for its retention (2 h after its deadline): retired, with a final resolved
    let rows: &[Row] = &[(
        4000,
        Every(&[A], 10, 8300),
        &[(Absence, Resolved, "b", 1020 + 7200)],
    )];
    inv.walk(&mut e, rows);
    assert_eq!((e.series_count(), e.stats().retired), (1, 2));

    // a retired series that reports again is a new series: nothing to resolve, fresh state
    inv.walk(&mut e, &[(8300, Every(&[A, B], 10, 8400), &[])]);
    assert_eq!(e.series_count(), 2);
}

#[test]
fn a_cardinality_explosion_is_refused_once_per_source_and_other_sources_are_untouched() {
    let text = deadair::model::DEFAULT_MODEL_TOML
        .replace("max_series = 1000000", "max_series = 300")
        .replace(
            "max_series_per_source = 250000",
            "max_series_per_source = 100",
        );
    assert!(text.contains("max_series = 300") && text.contains("max_series_per_source = 100\n"));
    let model = Arc::new(Model::parse(&text, "test").unwrap());
    // the good source: 20 series every 10 s for 1200 s; api-3 stops at 600 s
    let mut good = source("api", 20, 10 * S, 10 * S, T0, T0 + 1200 * S);
    good.retain(|s| !(s.instance == "api-3" && s.ts >= T0 + 600 * S));
    // the abuser: every 10 s, 50 brand-new series of job `spam`, and 50 series each with a
    // brand-new job (so no per-source limit can catch them: the partition limit does)
    let mut spam = Vec::new();
    for t in 0..120i64 {
        for k in 0..50 {
            let ts = T0 + t * 10 * S + 5;
            spam.push(Smp {
                ts,
                job: "spam".into(),
                instance: format!("spam-{t}-{k}"),
                value: 1.0,
            });
            spam.push(Smp {
                ts,
                job: format!("job-{t}-{k}"),
                instance: "x".into(),
                value: 1.0,
            });
        }
    }
    let api_events = |alerts: &[Alert]| -> Vec<(AlertKind, AlertStatus, String, i64)> {
        alerts
            .iter()
            .filter(|a| label(a, "job") == Some("api"))
            .map(|a| {
                let who = label(a, "instance").unwrap_or("").to_string();
                (a.kind, a.state, who, a.event_time)
            })
            .collect()
    };
    let mut alone = Engine::new(model.clone());
    let expected = replay(&mut alone, good.clone(), T0 + 1200 * S);
    let mut e = Engine::new(model);
    let mut input = good;
    input.extend(spam);
    let seen = replay(&mut e, input, T0 + 1200 * S);

    // the good source's alerts are exactly those of a run without the abuser
    assert_eq!(api_events(&seen), api_events(&expected));
    assert_eq!(
        api_events(&expected).len(),
        1,
        "api-3's absence: {expected:#?}"
    );
    // one cardinality_limit for the `spam` source, one for the partition; never per sample
    let limits: Vec<(AlertStatus, Option<&str>)> = seen
        .iter()
        .filter(|a| a.kind == AlertKind::CardinalityLimit)
        .map(|a| (a.state, label(a, "job")))
        .collect();
    assert_eq!(
        limits,
        [
            (AlertStatus::Firing, Some("spam")),
            (AlertStatus::Firing, None)
        ],
        "{seen:#?}"
    );
    // 20 api + 100 spam + 180 single-series jobs = the partition limit of 300
    assert_eq!(e.series_count(), 300);
    assert_eq!(e.stats().refused, 120 * 100 - 280);
    // nothing else fired for the abuser
    assert!(seen
        .iter()
        .all(|a| a.kind == AlertKind::CardinalityLimit || label(a, "job") == Some("api")));
}

#[test]
fn a_restored_snapshot_continues_exactly_like_the_original() {
    // the correlated-silence scenario, cut at every interesting moment: before the silence,
    // while absences are held, while the group is firing, while stragglers wait
    let mut input = source("api", 300, 10 * S, 10 * S, T0, T0 + 600 * S);
    input.extend(source("db", 300, 10 * S, 10 * S, T0, T0 + 2400 * S));
    input.extend(
        source("api", 300, 10 * S, 10 * S, T0 + 1800 * S, T0 + 2400 * S)
            .into_iter()
            .filter(|s| !["api-7", "api-8", "api-9"].contains(&s.instance.as_str())),
    );
    input.sort_by_key(|s| s.ts);
    let model = Arc::new(Model::default_model());
    let mut whole = Engine::new(model.clone());
    let mut expected = Vec::new();
    feed(&mut whole, &input, &mut expected);
    whole.advance(T0 + 2400 * S, &mut expected);
    for cut_s in [300, 625, 1000, 1805, 2300] {
        let cut = input.partition_point(|s| s.ts < T0 + cut_s * S);
        let mut first = Engine::new(model.clone());
        let mut got = Vec::new();
        feed(&mut first, &input[..cut], &mut got);
        let bytes = first.snapshot();
        drop(first);
        let mut restored = Engine::restore(model.clone(), &bytes).unwrap();
        feed(&mut restored, &input[cut..], &mut got);
        restored.advance(T0 + 2400 * S, &mut got);
        assert_eq!(got, expected, "cut at {cut_s} s");
        assert_eq!(restored.stats(), whole.stats(), "cut at {cut_s} s");
        assert_eq!(restored.series_count(), whole.series_count());
    }
    assert!(expected.len() >= 5, "{expected:#?}");
}

#[test]
fn a_restored_engine_lists_what_it_still_has_firing_with_the_same_ids_and_versions() {
    // two lone series (jobs of one): `a` stops for good, `b` stops and comes back, `c` never stops
    let mut input = source("a", 1, 10 * S, 10 * S, T0, T0 + 600 * S);
    input.extend(source("b", 1, 10 * S, 10 * S, T0, T0 + 600 * S));
    input.extend(source("b", 1, 10 * S, 10 * S, T0 + 900 * S, T0 + 1200 * S));
    input.extend(source("c", 1, 10 * S, 10 * S, T0, T0 + 1200 * S));
    input.sort_by_key(|s| s.ts);
    let model = Arc::new(Model::default_model());
    let mut e = Engine::new(model.clone());
    let mut out = Vec::new();
    feed(&mut e, &input, &mut out);
    e.advance(T0 + 1200 * S, &mut out);
    let mut fired: Vec<(String, u64)> = out
        .iter()
        .filter(|a| a.kind == AlertKind::Absence && a.state == AlertStatus::Firing)
        .map(|a| (a.alert_id.clone(), a.version))
        .collect();
    assert_eq!(fired.len(), 2, "a and b fired: {out:#?}");
    let restored = Engine::restore(model, &e.snapshot()).unwrap();
    let mut firing = Vec::new();
    restored.firing(&mut firing);
    assert_eq!(firing.len(), 1, "{firing:#?}");
    let a = &firing[0];
    assert_eq!((a.kind, a.state), (AlertKind::Absence, AlertStatus::Firing));
    assert_eq!(label(a, "job"), Some("a"));
    fired.retain(|(id, _)| *id == a.alert_id);
    assert_eq!(
        fired,
        [(a.alert_id.clone(), a.version)],
        "the event that fired it"
    );
}

#[test]
fn a_restored_engine_lists_its_firing_source_and_limit_events_with_the_same_ids_and_versions() {
    let text = deadair::model::DEFAULT_MODEL_TOML.replace(
        "max_series_per_source = 250000",
        "max_series_per_source = 30",
    );
    let model = Arc::new(Model::parse(&text, "test").unwrap());
    // api: 20 series that go silent together at 600 s (a source_silent event fires);
    // spam: 40 series, 10 beyond its limit (a cardinality_limit event fires); db carries on
    let mut input = source("api", 20, 10 * S, 10 * S, T0, T0 + 600 * S);
    input.extend(source("spam", 40, 10 * S, 10 * S, T0, T0 + 1200 * S));
    input.extend(source("db", 5, 10 * S, 10 * S, T0, T0 + 1200 * S));
    let mut e = Engine::new(model.clone());
    let out = replay(&mut e, input, T0 + 1200 * S);
    let fired = |kind: AlertKind| -> Vec<(String, u64, Option<String>)> {
        out.iter()
            .filter(|a| a.kind == kind && a.state == AlertStatus::Firing)
            .map(|a| {
                (
                    a.alert_id.clone(),
                    a.version,
                    label(a, "job").map(String::from),
                )
            })
            .collect()
    };
    let (silent, limits) = (
        fired(AlertKind::SourceSilent),
        fired(AlertKind::CardinalityLimit),
    );
    assert_eq!(silent.len(), 1, "{out:#?}");
    assert_eq!(limits.len(), 1, "{out:#?}");
    assert!(out.iter().all(|a| a.state == AlertStatus::Firing
        || !matches!(
            a.kind,
            AlertKind::SourceSilent | AlertKind::CardinalityLimit
        )));

    let restored = Engine::restore(model, &e.snapshot()).unwrap();
    let mut firing = Vec::new();
    restored.firing(&mut firing);
    let again = |kind: AlertKind| -> Vec<(String, u64, Option<String>)> {
        firing
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| {
                (
                    a.alert_id.clone(),
                    a.version,
                    label(a, "job").map(String::from),
                )
            })
            .collect()
    };
    assert_eq!(again(AlertKind::SourceSilent), silent, "{firing:#?}");
    assert_eq!(again(AlertKind::CardinalityLimit), limits, "{firing:#?}");
    let s = firing
        .iter()
        .find(|a| a.kind == AlertKind::SourceSilent)
        .unwrap();
    assert_eq!(s.state, AlertStatus::Firing);
    assert!(s.summary.contains("job=\"api\""), "{}", s.summary);
    // the original event's start, not the time of the restore
    let original = out
        .iter()
        .find(|a| a.kind == AlertKind::SourceSilent)
        .unwrap();
    assert_eq!(
        (s.started_at, s.event_time),
        (original.started_at, original.started_at)
    );
}

/// A format-1 snapshot, written by deadair 2dbba2a (before the context detector) with its
/// default model: `cpu{host="a"}` reported every 10 s for 2000 s, `cpu{host="b"}` stopped at
/// 990 s and its absence fired (version 1).
const SNAPSHOT_V1: &[u8] = include_bytes!("fixtures/engine-snapshot-v1.bin");

#[test]
fn a_format_1_snapshot_restores_series_cadences_and_alerts_and_relearns_detectors() {
    let model = Arc::new(Model::default_model());
    let mut e = Engine::restore(model, SNAPSHOT_V1).expect("format 1 is read");
    assert_eq!(e.series_count(), 2);
    let t0 = 1_700_000_000_000i64;
    let mut out = Vec::new();
    // b's absence is still firing: its return resolves it, as version 2 of the same alert
    e.ingest("cpu", &[("host", "b")], t0 + 2_010_000, 10.0, &mut out);
    let resolved: Vec<&Alert> = out
        .iter()
        .filter(|a| a.kind == AlertKind::Absence && a.state == AlertStatus::Resolved)
        .collect();
    assert_eq!(resolved.len(), 1, "{out:#?}");
    assert_eq!(resolved[0].version, 2);
    assert_eq!(label(resolved[0], "host"), Some("b"));
    // a keeps its learned cadence (10 s × 3): silent after its last sample at 1990 s, it fires
    // at 2020 s, not after the 1 h initial timeout of a new series
    out.clear();
    e.advance(t0 + 2_021_000, &mut out);
    let fired: Vec<&Alert> = out
        .iter()
        .filter(|a| a.kind == AlertKind::Absence)
        .collect();
    assert_eq!(fired.len(), 1, "{out:#?}");
    assert_eq!(label(fired[0], "host"), Some("a"));
    assert_eq!(fired[0].event_time, t0 + 2_020_000);
    // detectors start afresh: a's next samples are in warm-up (no verdict)
    let outcome = e.ingest("cpu", &[("host", "a")], t0 + 2_030_000, 50.0, &mut out);
    assert!(matches!(outcome, Outcome::Accepted(None)), "{outcome:?}");
}

/// A format-3 snapshot, written by deadair a59d1c2 (before `shift` learned its bursts) with its
/// default model: `cpu{host="a"}` every minute for two days (50 ± 2), then 500, which fired an
/// anomaly (version 1).
const SNAPSHOT_V3: &[u8] = include_bytes!("fixtures/engine-snapshot-v3.bin");

#[test]
fn a_format_3_snapshot_restores_whole_with_its_learned_state() {
    let model = Arc::new(Model::default_model());
    let mut e = Engine::restore(model, SNAPSHOT_V3).expect("format 3 is read");
    assert_eq!(e.series_count(), 1);
    let st = e.series_state(0).unwrap();
    assert_eq!(st.detectors.samples(), 2881, "the learned state is kept");
    let t0 = 1_700_000_000_000i64;
    let mut out = Vec::new();
    // ordinary values every minute after the spike are judged (no warm-up), and the anomaly
    // resolves (10 minutes after its last improbable sample, `keep_firing_for`) as version 2
    // of the same alert
    for k in 1..=30i64 {
        let x = 50.0 + ((k * 7) % 9 - 4) as f64 * 0.4;
        let outcome = e.ingest(
            "cpu",
            &[("host", "a")],
            t0 + (2880 + k) * 60_000,
            x,
            &mut out,
        );
        assert!(matches!(outcome, Outcome::Accepted(Some(_))), "{outcome:?}");
    }
    assert!(out.iter().all(|a| a.kind == AlertKind::Anomaly), "{out:#?}");
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].state, AlertStatus::Resolved);
    assert_eq!(out[0].version, 2);
    // and a spike as gross as the one before still fires
    out.clear();
    e.ingest("cpu", &[("host", "a")], t0 + 2911 * 60_000, 500.0, &mut out);
    assert!(
        out.iter()
            .any(|a| a.kind == AlertKind::Anomaly && a.state == AlertStatus::Firing),
        "{out:#?}"
    );
}

/// A format-5 snapshot, written by deadair 5a88b3a (before `spread` became a CUSUM and the noise
/// was learned by level) with its default model: `cpu{host="a"}` every minute for two days
/// (50 ± 2, a fixed pattern), no alert.
const SNAPSHOT_V5: &[u8] = include_bytes!("fixtures/engine-snapshot-v5.bin");

#[test]
fn a_format_5_snapshot_restores_whole_and_relearns_only_spread() {
    let model = Arc::new(Model::default_model());
    let x = |k: i64| 50.0 + ((k * 7) % 9 - 4) as f64 * 0.4 + ((k * 13) % 5) as f64 * 0.3;
    let mut e = Engine::restore(model, SNAPSHOT_V5).expect("format 5 is read");
    assert_eq!(e.series_count(), 1);
    let samples = match &e.series_state(0).unwrap().detectors {
        DetectorState::Learned(l) => l.samples(),
        DetectorState::Classic(_) => panic!("the default model's rule is learned"),
    };
    assert_eq!(samples, 2880, "the learned state is kept");
    // the next hour's ordinary values are judged at once (no warm-up) and raise nothing
    let mut out = Vec::new();
    for k in 2880..2940i64 {
        let outcome = e.ingest("cpu", &[("host", "a")], T0 + k * 60_000, x(k), &mut out);
        assert!(matches!(outcome, Outcome::Accepted(Some(_))), "{outcome:?}");
    }
    assert!(out.is_empty(), "{out:#?}");
    // the spike's tail was kept: a gross spike fires as it would have before the upgrade
    e.ingest("cpu", &[("host", "a")], T0 + 2940 * 60_000, 80.0, &mut out);
    assert!(
        out.iter()
            .any(|a| a.kind == AlertKind::Anomaly && a.state == AlertStatus::Firing),
        "{out:#?}"
    );
}

#[test]
fn snapshots_of_another_format_or_corrupt_ones_are_refused_clearly() {
    let model = Arc::new(Model::default_model());
    let mut e = Engine::new(model.clone());
    let mut out = Vec::new();
    e.ingest("up", &[("job", "x")], T0, 1.0, &mut out);
    let mut bytes = e.snapshot();
    assert_eq!(&bytes[..4], b"DAsn");
    bytes[4] = 9;
    let err = Engine::restore(model.clone(), &bytes).err().unwrap();
    assert_eq!(
        err.to_string(),
        "engine snapshot format 9; this deadair reads formats 1 to 6"
    );
    let good = e.snapshot();
    let err = Engine::restore(model.clone(), &good[..good.len() / 2])
        .err()
        .unwrap();
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert!(Engine::restore(model, b"nope").is_err());
}

#[test]
fn a_snapshot_under_a_changed_model_keeps_series_and_relearns_orphans() {
    let a = Model::parse("[[rule]]\nname = \"old\"\n[rule.detectors.ewma]\n", "a").unwrap();
    let b = Model::parse("[[rule]]\nname = \"new\"\n[rule.detectors.ewma]\n", "b").unwrap();
    let mut e = Engine::new(Arc::new(a));
    let mut out = Vec::new();
    for i in 0..50 {
        e.ingest("up", &[("job", "x")], T0 + i * 10 * S, 1.0, &mut out);
    }
    let r = Engine::restore(Arc::new(b), &e.snapshot()).unwrap();
    assert_eq!(r.series_count(), 1);
    let st = r.series_state(0).unwrap();
    assert_eq!(st.rule, 0, "matched again under the new model");
    assert_eq!(st.detectors.samples(), 0, "learns afresh");
    assert_eq!(st.last_ts, T0 + 490 * S, "keeps its identity and time");
}
