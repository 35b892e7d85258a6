//! Rate-limited logging: failure handling must not amplify failures. Every occurrence is
//! counted by the caller; at most `per_minute` lines per key are logged each minute (as
//! warnings, with the key as the `kind` field), and the next logged line says how many were
//! suppressed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct RateLimitedLog {
    per_minute: u32,
    keys: HashMap<&'static str, Window>,
}

struct Window {
    start: Instant,
    printed: u32,
    suppressed: u64,
}

impl RateLimitedLog {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            keys: HashMap::new(),
        }
    }

    /// Returns the line to print for this occurrence at `now`, if any.
    pub fn line(
        &mut self,
        key: &'static str,
        now: Instant,
        message: impl FnOnce() -> String,
    ) -> Option<String> {
        let w = self.keys.entry(key).or_insert(Window {
            start: now,
            printed: 0,
            suppressed: 0,
        });
        if now.duration_since(w.start) >= Duration::from_secs(60) {
            w.start = now;
            w.printed = 0;
        }
        if w.printed >= self.per_minute {
            w.suppressed += 1;
            return None;
        }
        w.printed += 1;
        let mut line = format!("{key}: {}", message());
        if w.suppressed > 0 {
            line.push_str(&format!(" ({} similar suppressed)", w.suppressed));
            w.suppressed = 0;
        }
        Some(line)
    }

    /// Logs the line for this occurrence (a warning), if the rate allows.
    pub fn log(&mut self, key: &'static str, message: impl FnOnce() -> String) {
        if let Some(l) = self.line(key, Instant::now(), message) {
            tracing::warn!(kind = key, "{l}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_n_lines_per_minute_per_key() {
        let mut log = RateLimitedLog::new(3);
        let t0 = Instant::now();
        let printed = (0..1000)
            .filter(|_| log.line("decode", t0, || "bad".into()).is_some())
            .count();
        assert_eq!(printed, 3);
        assert!(
            log.line("other", t0, || "x".into()).is_some(),
            "keys are independent"
        );
        let next = log
            .line("decode", t0 + Duration::from_secs(61), || "bad".into())
            .unwrap();
        assert!(next.ends_with("(997 similar suppressed)"), "{next}");
    }
}
