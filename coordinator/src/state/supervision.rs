//! What `coordinator launch` does when one of its local worker processes exits: a pure
//! function of the exit, whether the job is over and how often it was restarted.

/// How local worker processes are restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed per worker before the launch fails.
    pub max_restarts: u32,
    /// Wait before the first restart; doubled for each further one.
    pub backoff_ms: u64,
    /// Upper bound of the wait.
    pub max_backoff_ms: u64,
}

/// The decision for one exited worker process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitVerdict {
    /// It completed (exit 0), or the job is over anyway: nothing to do.
    Done,
    /// Start it again after `after_ms`; this is restart number `attempt` (from 1).
    Restart {
        /// Restart number, from 1.
        attempt: u32,
        /// Back-off before starting it.
        after_ms: u64,
    },
    /// It failed more often than allowed: the launch fails.
    GiveUp {
        /// Restarts already made.
        restarts: u32,
    },
}

/// Decides what follows a worker's exit. `success`: exit status 0; `job_over`: the job
/// is finished or stopped; `restarts`: restarts made so far for this worker.
pub fn on_worker_exit(
    success: bool,
    job_over: bool,
    restarts: u32,
    policy: &RestartPolicy,
) -> ExitVerdict {
    if success || job_over {
        return ExitVerdict::Done;
    }
    if restarts >= policy.max_restarts {
        return ExitVerdict::GiveUp { restarts };
    }
    let factor = 1u64.checked_shl(restarts.min(32)).unwrap_or(u64::MAX);
    ExitVerdict::Restart {
        attempt: restarts + 1,
        after_ms: policy
            .backoff_ms
            .saturating_mul(factor)
            .min(policy.max_backoff_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RestartPolicy = RestartPolicy {
        max_restarts: 3,
        backoff_ms: 500,
        max_backoff_ms: 1_500,
    };

    #[test]
    fn a_clean_exit_or_an_exit_after_the_job_ended_is_not_restarted() {
        assert_eq!(on_worker_exit(true, false, 0, &POLICY), ExitVerdict::Done);
        assert_eq!(on_worker_exit(false, true, 0, &POLICY), ExitVerdict::Done);
        assert_eq!(on_worker_exit(false, true, 9, &POLICY), ExitVerdict::Done);
    }

    #[test]
    fn failures_are_restarted_with_growing_capped_back_off_then_given_up() {
        let waits: Vec<_> = (0..3)
            .map(|r| on_worker_exit(false, false, r, &POLICY))
            .collect();
        assert_eq!(
            waits,
            vec![
                ExitVerdict::Restart {
                    attempt: 1,
                    after_ms: 500
                },
                ExitVerdict::Restart {
                    attempt: 2,
                    after_ms: 1_000
                },
                ExitVerdict::Restart {
                    attempt: 3,
                    after_ms: 1_500
                },
            ]
        );
        assert_eq!(
            on_worker_exit(false, false, 3, &POLICY),
            ExitVerdict::GiveUp { restarts: 3 }
        );
    }

    #[test]
    fn zero_restarts_allowed_gives_up_at_the_first_failure() {
        let none = RestartPolicy {
            max_restarts: 0,
            ..POLICY
        };
        assert_eq!(
            on_worker_exit(false, false, 0, &none),
            ExitVerdict::GiveUp { restarts: 0 }
        );
    }
}
