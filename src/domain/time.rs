//! Time: a compact timestamp, and the injected clock. No code outside
//! [`SystemClock`] reads the system time.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;

/// Microseconds in a day (86,400 s): deletion cut-offs, `days_before`, and
/// the tests and benchmarks that move a clock by days.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Microseconds since 1970-01-01T00:00:00Z. Eight bytes in events and rows,
/// where chrono's own encoding would be a string.
///
/// ```
/// use joblog::domain::{Timestamp, MICROS_PER_DAY};
///
/// let t = Timestamp::parse("2026-01-31T12:00:00+01:00").unwrap();
/// assert_eq!(t.to_rfc3339(), "2026-01-31T11:00:00Z");
/// assert_eq!(t.micros() - t.days_before(1).micros(), MICROS_PER_DAY);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The timestamp `micros` microseconds after the Unix epoch (negative:
    /// before it).
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// The same instant as chrono's `DateTime<Utc>` (to the microsecond).
    pub fn from_datetime(t: DateTime<Utc>) -> Self {
        Self(t.timestamp_micros())
    }

    /// The same instant as chrono's `DateTime<Utc>`.
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_micros(self.0).single().expect("every i64 of microseconds is a valid time")
    }

    /// RFC 3339 (`2026-01-31T12:00:00Z`, any offset, any fraction).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| Self::from_datetime(t.with_timezone(&Utc)))
            .map_err(|e| DomainError::BadTime { text: s.to_string(), reason: e.to_string() })
    }

    /// RFC 3339 in UTC, with a fraction only when there is one.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime().to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// `micros` microseconds later (earlier if negative), saturating at the
    /// ends of the range.
    pub fn plus_micros(self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros))
    }

    /// `days` whole days of 86,400 s ([`MICROS_PER_DAY`]) earlier, saturating:
    /// a deletion's cut-off.
    pub fn days_before(self, days: u32) -> Self {
        Self(self.0.saturating_sub(i64::from(days) * MICROS_PER_DAY))
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    /// The current time. The engine never lets an event's time go backwards,
    /// whatever this says.
    fn now(&self) -> Timestamp;

    /// Whether this is the system's wall clock, which may read a little
    /// behind the newest event (an NTP step back, or an earlier write whose
    /// `--now` ran ahead within the allowed skew). The engine then stamps a
    /// write with the newest event's time rather than refusing it; a clock
    /// that only moves when told to (tests, simulations) is refused instead.
    fn is_wall_clock(&self) -> bool {
        false
    }
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(Utc::now())
    }

    fn is_wall_clock(&self) -> bool {
        true
    }
}

/// A clock that moves only when told to (tests, `--now`).
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock that reads `at` until it is set or advanced.
    pub fn new(at: Timestamp) -> Self {
        Self(AtomicI64::new(at.micros()))
    }

    /// Sets the time to `at` (backwards too).
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.micros(), Ordering::SeqCst);
    }

    /// Moves the time `secs` seconds on (back if negative).
    pub fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(secs * 1_000_000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let t = Timestamp::parse("2026-01-31T12:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-31T12:00:00Z");
        assert_eq!(Timestamp::parse("2026-01-31T13:00:00.5+01:00").unwrap().to_rfc3339(), "2026-01-31T12:00:00.500Z");
        assert!(matches!(Timestamp::parse("yesterday"), Err(DomainError::BadTime { .. })));
        assert_eq!(t.days_before(1).to_rfc3339(), "2026-01-30T12:00:00Z");
    }

    #[test]
    fn the_manual_clock_moves_when_told() {
        let c = ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z").unwrap());
        c.advance_secs(60);
        assert_eq!(c.now().to_rfc3339(), "2026-01-01T00:01:00Z");
    }
}
