//! The wall clock, read in one place: the I/O shell (Kafka stage, HTTP, Alertmanager, demo)
//! reads it and passes `now` into the engine, which never reads a clock itself.

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
