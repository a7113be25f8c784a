//! What a node does next, as a pure function of what it is doing and what just happened
//! (a directive from the coordinator, its training processes ending, a signal), so the
//! supervision rules are tested without processes or a network.

use proto::domain::{Directive, RoundId};

/// What the node is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Training processes of `round` are running.
    Training {
        /// The round they belong to.
        round: RoundId,
    },
    /// Every local process completed the job; waiting for the coordinator to end it.
    Finished,
    /// Local processes failed; waiting for the coordinator to name the next round.
    Failed,
}

/// What just happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The coordinator's answer to a heartbeat.
    Directive(Directive),
    /// Every local process exited; `all_ok` when each exited successfully.
    ProcessesExited {
        /// Whether all exited with success.
        all_ok: bool,
    },
    /// One local process exited with a failure while others may still run.
    ProcessFailed,
    /// The node was told to terminate (SIGTERM/SIGINT).
    Terminate,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    Wait,
    /// Kill the local processes and join `round`.
    Rejoin {
        /// The round to join.
        round: RoundId,
    },
    /// Report that every local process finished.
    ReportFinished,
    /// Kill the remaining local processes and register again, so the coordinator starts
    /// a new round (a failed process of a live node is not seen by heartbeats alone).
    RestartRound,
    /// Ask the processes to checkpoint and stop (SIGTERM), wait, then exit.
    DrainAndExit,
    /// Tell the coordinator the node leaves, drain the processes, exit.
    LeaveAndExit,
    /// Kill what runs and exit; `success` is the exit status to give.
    Exit {
        /// Whether the node's part of the job is done.
        success: bool,
    },
}

/// The next action in `phase` on `event`.
pub fn decide(phase: Phase, event: Event) -> Action {
    use Action as A;
    match (phase, event) {
        (_, Event::Terminate) => A::LeaveAndExit,
        (Phase::Finished, Event::Directive(Directive::Stop)) => A::Exit { success: true },
        (_, Event::Directive(Directive::Stop)) => A::Exit { success: false },
        (Phase::Training { .. }, Event::Directive(Directive::Drain)) => A::DrainAndExit,
        (Phase::Finished, Event::Directive(Directive::Drain)) => A::Exit { success: true },
        (Phase::Failed, Event::Directive(Directive::Drain)) => A::Exit { success: false },
        (Phase::Training { round }, Event::Directive(Directive::Rejoin { round: r })) => {
            if r > round {
                A::Rejoin { round: r }
            } else {
                A::Wait
            }
        }
        (Phase::Failed, Event::Directive(Directive::Rejoin { round })) => A::Rejoin { round },
        // A round reopened before every member reported its part finished (another
        // node's processes failed at the end): the job needs every node in the new round,
        // whose processes resume from the final checkpoint and finish at once.
        (Phase::Finished, Event::Directive(Directive::Rejoin { round })) => A::Rejoin { round },
        (_, Event::Directive(Directive::Continue | Directive::Standby)) => A::Wait,
        (Phase::Training { .. }, Event::ProcessesExited { all_ok: true }) => A::ReportFinished,
        (Phase::Training { .. }, Event::ProcessesExited { all_ok: false })
        | (Phase::Training { .. }, Event::ProcessFailed) => A::RestartRound,
        (Phase::Finished | Phase::Failed, Event::ProcessesExited { .. } | Event::ProcessFailed) => {
            A::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRAINING: Phase = Phase::Training {
        round: RoundId::new(3),
    };

    #[test]
    fn rejoin_only_moves_forward() {
        let rejoin = |r| {
            Event::Directive(Directive::Rejoin {
                round: RoundId::new(r),
            })
        };
        assert_eq!(
            decide(TRAINING, rejoin(4)),
            Action::Rejoin {
                round: RoundId::new(4)
            }
        );
        assert_eq!(
            decide(TRAINING, rejoin(3)),
            Action::Wait,
            "the round already running"
        );
        assert_eq!(
            decide(Phase::Failed, rejoin(5)),
            Action::Rejoin {
                round: RoundId::new(5)
            }
        );
        assert_eq!(
            decide(Phase::Finished, rejoin(5)),
            Action::Rejoin {
                round: RoundId::new(5)
            },
            "a round reopened at the end needs the finished nodes too"
        );
    }

    #[test]
    fn processes_ending_well_or_badly() {
        let ok = Event::ProcessesExited { all_ok: true };
        let bad = Event::ProcessesExited { all_ok: false };
        assert_eq!(decide(TRAINING, ok), Action::ReportFinished);
        assert_eq!(decide(TRAINING, bad), Action::RestartRound);
        assert_eq!(decide(TRAINING, Event::ProcessFailed), Action::RestartRound);
        assert_eq!(decide(Phase::Failed, Event::ProcessFailed), Action::Wait);
    }

    #[test]
    fn stop_drain_and_signals() {
        let stop = Event::Directive(Directive::Stop);
        let drain = Event::Directive(Directive::Drain);
        assert_eq!(
            decide(Phase::Finished, stop),
            Action::Exit { success: true }
        );
        assert_eq!(decide(TRAINING, stop), Action::Exit { success: false });
        assert_eq!(decide(TRAINING, drain), Action::DrainAndExit);
        assert_eq!(
            decide(Phase::Finished, drain),
            Action::Exit { success: true }
        );
        for phase in [TRAINING, Phase::Finished, Phase::Failed] {
            assert_eq!(decide(phase, Event::Terminate), Action::LeaveAndExit);
            assert_eq!(
                decide(phase, Event::Directive(Directive::Continue)),
                Action::Wait
            );
        }
    }
}
