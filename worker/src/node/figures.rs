//! What a node's heartbeats say of each of its ranks: the latest progress of a rank's
//! step events, and its measures (phase times, throughput, memory, gradient norm, prefetch
//! fill) as a mean over its last [`WINDOW`] steps, so one slow step neither hides nor
//! invents a straggler.

use std::collections::VecDeque;
use std::time::Instant;

use proto::domain::{Rank, RankProgress, Step, StepTiming};

use crate::events::StepFigures;

/// Steps a rank's measures are averaged over.
pub const WINDOW: usize = 8;

/// One rank's step events so far.
#[derive(Debug, Default)]
pub struct RankFigures {
    recent: VecDeque<StepFigures>,
    last_step_at: Option<Instant>,
    progress: RankProgress,
}

/// A step event's progress fields.
#[derive(Debug, Clone, Copy)]
pub struct StepProgress {
    /// Steps taken.
    pub step: u64,
    /// Data position after it.
    pub epoch: u64,
    /// See `epoch`.
    pub consumed: u64,
    /// Its loss.
    pub loss: f64,
    /// Pairs in the global batch.
    pub samples: u64,
}

impl RankFigures {
    /// Takes rank `rank`'s step event, arrived at `now`, in a group of `world` ranks.
    pub fn on_step(
        &mut self,
        rank: Rank,
        p: StepProgress,
        figures: StepFigures,
        world: u32,
        now: Instant,
    ) {
        // This rank's share of the global batch per second, smoothed.
        let share = p.samples as f64 / f64::from(world.max(1));
        if let Some(t) = self.last_step_at.replace(now) {
            let rate = share / now.duration_since(t).as_secs_f64().max(1e-6);
            let old = self.progress.samples_per_sec;
            self.progress.samples_per_sec = if old > 0.0 {
                0.8 * old + 0.2 * rate
            } else {
                rate
            };
        }
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(figures);
        let mean = |f: fn(&StepFigures) -> f64| {
            self.recent.iter().map(f).sum::<f64>() / self.recent.len() as f64
        };
        let latest = self.recent.back().expect("just pushed");
        let out = &mut self.progress;
        out.global_rank = rank;
        (out.step, out.epoch, out.samples_consumed, out.loss) =
            (Step::new(p.step), p.epoch, p.consumed, p.loss);
        out.lr = latest.lr;
        out.logit_scale = latest.logit_scale;
        out.grad_norm = mean(|f| f.grad_norm);
        out.timing = StepTiming::mean(self.recent.iter().map(|f| &f.timing));
        out.data = latest.data.clone();
        out.data.prefetch_fill = mean(|f| f.data.prefetch_fill);
        out.memory_allocated_bytes = latest.memory_allocated_bytes;
        out.memory_peak_bytes = self
            .recent
            .iter()
            .map(|f| f.memory_peak_bytes)
            .max()
            .unwrap_or(0);
        out.model_tflops = mean(|f| f.model_tflops);
        out.mfu = mean(|f| f.mfu);
    }

    /// What a heartbeat reports of this rank.
    pub fn progress(&self) -> &RankProgress {
        &self.progress
    }

    /// Whether the rank has taken a step.
    pub fn stepped(&self) -> bool {
        self.last_step_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn figures(step_s: f64, peak: u64) -> StepFigures {
        StepFigures {
            timing: StepTiming {
                step_s,
                collective_s: step_s / 2.0,
                ..Default::default()
            },
            memory_peak_bytes: peak,
            ..Default::default()
        }
    }

    #[test]
    fn measures_are_the_mean_of_the_last_window_of_steps() {
        let mut r = RankFigures::default();
        let t0 = Instant::now();
        for i in 0..20u64 {
            let step_s = if i < 12 { 10.0 } else { 1.0 };
            let p = StepProgress {
                step: i + 1,
                epoch: 0,
                consumed: 8 * (i + 1),
                loss: 2.0,
                samples: 8,
            };
            let now = t0 + Duration::from_secs(i);
            r.on_step(Rank::new(3), p, figures(step_s, 100 + i), 2, now);
        }
        let p = r.progress();
        assert_eq!((p.global_rank, p.step), (Rank::new(3), Step::new(20)));
        // The last 8 steps were all 1 s: the 10 s steps before them are out of the window.
        assert_eq!(p.timing.step_s, 1.0);
        assert_eq!(p.timing.collective_s, 0.5);
        assert_eq!(p.memory_peak_bytes, 119);
        // 4 pairs (8 over 2 ranks) a second.
        assert!((p.samples_per_sec - 4.0).abs() < 1e-9);
    }
}
