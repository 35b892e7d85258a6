//! The detection-quality suite (`src/quality.rs`, `deadair quality`) on the shipped default
//! model: its false-alarm budget holds on healthy series of thirteen kinds, new series are quiet
//! on their first day, and the injected events are caught in the share of series the goals ask
//! (issue #13; docs/detection-quality.md).

use std::sync::Arc;

use deadair::quality::{self, EventKind, Options};
use deadair::Model;

#[test]
fn default_model_meets_its_false_alarm_budget_and_catch_rates() {
    let model = Arc::new(Model::default_model());
    let report = quality::run(&model, Options::default(), |_| {});
    eprintln!("{}", report.table());

    // false alerts per series-day after the first day: 0.01 on average (the budget), at most
    // 0.05 for the worst kind
    let mean = report.mean_false_per_day();
    assert!(mean <= 0.01, "mean false alerts per series-day {mean}");
    let worst = report.worst().unwrap();
    assert!(
        worst.false_per_day <= 0.05,
        "{}: {} false alerts per series-day",
        worst.kind.name(),
        worst.false_per_day
    );
    // a new series: at most 0.1 alerts during its first day, whatever its kind
    for k in &report.kinds {
        assert!(
            k.day1 <= 0.1,
            "{}: {} alerts per new series on its first day",
            k.kind.name(),
            k.day1
        );
    }
    // a batch job's bursts (beyond the goals): the default model still pages about every
    // other day per series there (docs/detection-quality.md); guarded at its level (it was 4.9
    // and 4.2 on a new series' first day before `shift` clipped and learned bursts)
    for k in &report.hard {
        assert!(
            k.false_per_day <= 0.6 && k.day1 <= 1.0,
            "{}: {} false alerts per series-day, {} on the first day",
            k.kind.name(),
            k.false_per_day,
            k.day1
        );
    }
    // the events, each within its delay
    for e in &report.events {
        // variance x4 within 30 samples: the goal, 80 %, is met on this seed (84 %; 75 to 86 %
        // over the seeds tried, docs/detection-quality.md; 78 % before the slow unit was
        // learned over the memory). A spike 6 sd above a daily cycle: the goal is 80 %;
        // guarded at 88 % (91 % on this seed; 81 % when the level's trend was damped, which
        // lagged the cycle's slope)
        let goal = match e.case.event {
            EventKind::DailySpike => 0.88,
            _ => e.case.goal,
        };
        assert!(
            e.caught >= goal,
            "{} on {}: caught in {:.0} % of series, goal {:.0} %",
            e.case.event.name(),
            e.case.base.name(),
            e.caught * 100.0,
            goal * 100.0
        );
    }
}
