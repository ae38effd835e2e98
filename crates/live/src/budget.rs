//! The live wing's server-wide memory budget, sans-I/O. What every stream holds (its rings, HLS
//! segments and receive buffer) is summed by the shell; this decides what that sum allows:
//!
//! - below the budget, nothing changes;
//! - above it, each stream shrinks its windows to the current GOP as it next publishes (viewers
//!   behind that point skip to the keyframe, as a slow viewer does; nobody is disconnected for
//!   it), and a new stream is not admitted until what is held falls back below the budget minus
//!   what a new stream needs to start.
//!
//! A stream's own hard limits (`Limits::max_bytes`, `HlsLimits::max_segment_bytes`) still bound
//! each stream; the budget bounds their sum.

/// A budget in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: usize,
}

/// Why a new stream is not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("live memory budget reached: {held} bytes held of {limit}")]
pub struct OverBudget {
    pub held: usize,
    pub limit: usize,
}

impl Budget {
    /// Whether a new stream that needs `start` bytes (its receive buffer) may begin while
    /// `held` bytes are held across streams.
    pub fn admit(self, held: usize, start: usize) -> Result<(), OverBudget> {
        if held.saturating_add(start) <= self.limit {
            Ok(())
        } else {
            Err(OverBudget {
                held,
                limit: self.limit,
            })
        }
    }

    /// Whether streams must shrink their windows to the current GOP.
    pub fn over(self, held: usize) -> bool {
        held > self.limit
    }
}

/// The default budget: a quarter of the machine's memory, at least 256 MiB.
pub fn default_limit(total_memory: u64) -> usize {
    usize::try_from(total_memory / 4)
        .unwrap_or(usize::MAX)
        .max(256 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Budget = Budget { limit: 1000 };

    #[test]
    fn a_stream_is_admitted_while_its_start_fits() {
        assert_eq!(B.admit(0, 1000), Ok(()));
        assert_eq!(B.admit(900, 100), Ok(()));
    }

    #[test]
    fn a_stream_is_refused_when_its_start_does_not_fit() {
        assert_eq!(
            B.admit(901, 100),
            Err(OverBudget {
                held: 901,
                limit: 1000
            })
        );
        assert!(B.admit(usize::MAX, 1).is_err());
    }

    #[test]
    fn streams_shrink_only_past_the_budget() {
        assert!(!B.over(1000));
        assert!(B.over(1001));
    }

    #[test]
    fn the_default_is_a_quarter_of_memory_and_never_tiny() {
        assert_eq!(default_limit(24 << 30), 6 << 30);
        assert_eq!(default_limit(512 << 20), 256 << 20);
    }
}
