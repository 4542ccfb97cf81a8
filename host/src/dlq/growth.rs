//! Dead-letter growth: entries written in the last minute, and the alert that degrades the pipeline while they exceed a limit.
//!
//! A spike of dead letters is the first sign of a bad upstream feed or a
//! faulty plugin; it must be seen while it happens, not at the end of a run.
//! Counts are kept per second over a sliding minute (60 buckets), so the rate
//! decays on its own when entries stop: whoever reports health calls
//! [`DlqGrowth::refresh`] before answering.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const WINDOW_SECONDS: u64 = 60;

/// What a refresh found, for the caller to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrowthState {
    /// Under the limit (or no limit).
    Normal { per_minute: u64 },
    /// Over the limit: the reason to show.
    Alert { per_minute: u64, reason: String },
}

#[derive(Debug)]
pub struct DlqGrowth {
    limit_per_minute: Option<u64>,
    /// `(epoch second, entries)`, one bucket per second of the window.
    buckets: Mutex<[(u64, u64); WINDOW_SECONDS as usize]>,
}

impl DlqGrowth {
    pub fn new(limit_per_minute: Option<u64>) -> DlqGrowth {
        DlqGrowth { limit_per_minute, buckets: Mutex::new([(0, 0); WINDOW_SECONDS as usize]) }
    }

    /// Counts `entries` written now.
    pub fn record(&self, entries: u64) {
        self.record_at(epoch_second(), entries);
    }

    fn record_at(&self, second: u64, entries: u64) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = &mut buckets[(second % WINDOW_SECONDS) as usize];
        if bucket.0 != second {
            *bucket = (second, 0);
        }
        bucket.1 += entries;
    }

    /// Entries written in the last minute, and whether that is over the limit.
    pub fn refresh(&self) -> GrowthState {
        self.refresh_at(epoch_second())
    }

    fn refresh_at(&self, now: u64) -> GrowthState {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let per_minute: u64 = buckets.iter().filter(|(second, _)| *second + WINDOW_SECONDS > now && *second <= now).map(|(_, n)| n).sum();
        drop(buckets);
        crate::metrics::dlq_growth_per_minute(per_minute);
        match self.limit_per_minute {
            Some(limit) if per_minute > limit => GrowthState::Alert {
                per_minute,
                reason: format!(
                    "{per_minute} dead letters in the last minute, over the alert threshold of {limit} (`growth_alert_per_minute`)"
                ),
            },
            _ => GrowthState::Normal { per_minute },
        }
    }
}

fn epoch_second() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_counts_the_last_minute_only_and_alerts_above_the_limit() {
        let growth = DlqGrowth::new(Some(10));
        growth.record_at(1000, 6);
        growth.record_at(1030, 5);
        assert!(matches!(growth.refresh_at(1030), GrowthState::Alert { per_minute: 11, .. }));
        // The first bucket leaves the window 60 s after it was written.
        assert_eq!(growth.refresh_at(1060), GrowthState::Normal { per_minute: 5 });
        assert_eq!(growth.refresh_at(1090), GrowthState::Normal { per_minute: 0 });
        // A bucket reused a minute later starts from zero.
        growth.record_at(1090, 2);
        assert_eq!(growth.refresh_at(1090), GrowthState::Normal { per_minute: 2 });
    }

    #[test]
    fn without_a_limit_it_never_alerts() {
        let growth = DlqGrowth::new(None);
        growth.record_at(5, 1_000_000);
        assert_eq!(growth.refresh_at(5), GrowthState::Normal { per_minute: 1_000_000 });
    }
}
