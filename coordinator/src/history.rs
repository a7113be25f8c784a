//! The job's curves over steps for the dashboard: loss, learning rate, throughput and phase
//! times, one point per `stride` steps. When the points pass the cap, every other one is
//! dropped and the stride doubles, so a 500k-step job keeps about as many points as a
//! short one, evenly spread over the whole run. Pure: what to keep is a function of the
//! points and the offer; the server stores the result.

use proto::domain::{JobStatus, Rank, StepTiming};
use serde::{Deserialize, Serialize};

/// Points kept at most (the stride doubles past it).
pub const CAP: usize = 1000;

/// The job at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// Rank 0's step.
    pub step: u64,
    /// When it was seen.
    pub unix_ms: u64,
    /// Rank 0's loss (the loss over the whole global batch).
    pub loss: f64,
    /// The learning rate.
    pub lr: f64,
    /// Pairs per second over the round's ranks.
    pub samples_per_sec: f64,
    /// Phase times, the mean over the round's ranks.
    pub timing: StepTiming,
    /// Model FLOPs utilisation, mean over ranks (0 when unknown).
    pub mfu: f64,
}

/// The kept points and their spacing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Steps between kept points (a power of two).
    pub stride: u64,
    /// Points by step, ascending.
    pub points: Vec<HistoryPoint>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            stride: 1,
            points: Vec::new(),
        }
    }
}

/// What an offer changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Nothing (too close to the last point, or not after it).
    None,
    /// The point was added.
    Added(HistoryPoint),
    /// The point was added and the history thinned: store it whole.
    Thinned,
}

impl History {
    /// Offers `point`: taken when it is at least a stride after the last one (a step
    /// before the last one means the job went back to a checkpoint: later points are
    /// dropped first, so the curve shows the run that continued).
    pub fn offer(&mut self, point: HistoryPoint) -> Change {
        let rewound = self
            .points
            .last()
            .is_some_and(|last| point.step < last.step);
        if rewound {
            self.points.retain(|p| p.step < point.step);
        }
        if let Some(last) = self.points.last() {
            if point.step < last.step + self.stride {
                return if rewound {
                    Change::Thinned
                } else {
                    Change::None
                };
            }
        }
        self.points.push(point.clone());
        if self.points.len() <= CAP {
            return if rewound {
                Change::Thinned
            } else {
                Change::Added(point)
            };
        }
        self.stride *= 2;
        let mut kept = Vec::with_capacity(CAP / 2 + 1);
        for p in self.points.drain(..) {
            if kept
                .last()
                .is_none_or(|k: &HistoryPoint| p.step >= k.step + self.stride)
            {
                kept.push(p);
            }
        }
        self.points = kept;
        Change::Thinned
    }
}

/// The point `status` stands at: rank 0's step, loss and learning rate, the round's
/// throughput and mean phase times; `None` before rank 0 has reported a step.
pub fn point_of(status: &JobStatus, unix_ms: u64) -> Option<HistoryPoint> {
    let ranks: Vec<_> = status
        .members
        .iter()
        .filter(|m| m.alive)
        .flat_map(|m| &m.progress)
        .collect();
    let rank0 = ranks.iter().find(|p| p.global_rank == Rank::new(0))?;
    if rank0.step.get() == 0 {
        return None;
    }
    let timed: Vec<_> = ranks.iter().filter(|p| p.timing.step_s > 0.0).collect();
    Some(HistoryPoint {
        step: rank0.step.get(),
        unix_ms,
        loss: rank0.loss,
        lr: rank0.lr,
        samples_per_sec: status.samples_per_sec,
        timing: StepTiming::mean(timed.iter().map(|p| &p.timing)),
        mfu: if ranks.is_empty() {
            0.0
        } else {
            ranks.iter().map(|p| p.mfu).sum::<f64>() / ranks.len() as f64
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(step: u64) -> HistoryPoint {
        HistoryPoint {
            step,
            unix_ms: step,
            loss: 1.0 / step as f64,
            lr: 0.1,
            samples_per_sec: 1.0,
            timing: StepTiming::default(),
            mfu: 0.0,
        }
    }

    #[test]
    fn a_500k_step_job_keeps_at_most_the_cap_evenly_spread_over_the_run() {
        let mut h = History::default();
        for step in 1..=500_000 {
            h.offer(at(step));
        }
        assert!(
            h.points.len() <= CAP && h.points.len() > CAP / 2,
            "{}",
            h.points.len()
        );
        assert_eq!(h.stride, 512);
        assert_eq!(h.points[0].step, 1);
        assert!(h.points.last().unwrap().step > 499_000);
        for w in h.points.windows(2) {
            assert!(w[1].step - w[0].step >= h.stride / 2, "{w:?}");
        }
    }

    #[test]
    fn points_closer_than_the_stride_or_repeated_are_not_taken() {
        let mut h = History::default();
        assert_eq!(h.offer(at(5)), Change::Added(at(5)));
        assert_eq!(h.offer(at(5)), Change::None);
        h.stride = 4;
        assert_eq!(h.offer(at(8)), Change::None);
        assert_eq!(h.offer(at(9)), Change::Added(at(9)));
    }

    #[test]
    fn a_job_that_went_back_to_a_checkpoint_drops_the_lost_steps() {
        let mut h = History::default();
        for step in [10, 20, 30, 40] {
            h.offer(at(step));
        }
        assert_eq!(h.offer(at(25)), Change::Thinned);
        let steps: Vec<u64> = h.points.iter().map(|p| p.step).collect();
        assert_eq!(steps, [10, 20, 25]);
    }
}
