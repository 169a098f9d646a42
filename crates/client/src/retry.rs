//! How long to keep retrying and how long to pause between tries: a pure policy, so it can be
//! tested without a clock.

use std::time::Duration;

/// Exponential backoff with a ceiling, inside an overall window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The pause after the first failure.
    pub initial: Duration,
    /// The longest pause: a cluster electing a controller answers within a second or two, so
    /// longer pauses only make the caller wait past the moment it could succeed.
    pub max: Duration,
    /// How long a request may be tried in all before its last error is returned.
    pub total: Duration,
}

impl Backoff {
    /// Pauses from 50 ms doubling to 1 s, for as long as one request may take.
    pub fn for_request_timeout(request_timeout: Duration) -> Backoff {
        Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(1),
            total: request_timeout,
        }
    }

    /// The pause after failed try number `attempt` (from 0).
    pub fn pause(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_ceiling() {
        let backoff = Backoff::for_request_timeout(Duration::from_secs(5));
        let pauses: Vec<u128> = (0..7)
            .map(|attempt| backoff.pause(attempt).as_millis())
            .collect();
        assert_eq!(pauses, vec![50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.pause(u32::MAX), Duration::from_secs(1));
    }
}
