//! The learning-rate schedule: linear warm-up to the peak rate, then a half cosine down to
//! the minimum rate at the last step, as a pure function of the step.

use infra::FieldError;

use super::TrainConfig;

/// A resolved schedule, in optimiser steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// Rate at the end of warm-up.
    pub peak_lr: f64,
    /// Rate at and after `total_steps`.
    pub min_lr: f64,
    /// Warm-up steps (0: none).
    pub warmup_steps: u64,
    /// Steps of the whole run.
    pub total_steps: u64,
}

impl LrSchedule {
    /// Resolves the schedule of a config, given the optimiser steps in one epoch (used
    /// where warm-up or length are in epochs; warm-up epochs are rounded to steps).
    pub fn from_config(c: &TrainConfig, steps_per_epoch: u64) -> Result<LrSchedule, FieldError> {
        let need_epoch = c.optim.warmup_epochs.is_some() || c.train.epochs.is_some();
        if need_epoch && steps_per_epoch == 0 {
            return Err(FieldError::new(
                "train.epochs",
                "an epoch has no optimiser steps (dataset smaller than train.batch_size?)",
            ));
        }
        let total_steps = match (c.train.max_steps, c.train.epochs) {
            (Some(n), _) => n,
            (None, Some(e)) => u64::from(e) * steps_per_epoch,
            (None, None) => 0,
        };
        let warmup_steps = match (c.optim.warmup_steps, c.optim.warmup_epochs) {
            (Some(w), _) => w,
            (None, Some(e)) => (e * steps_per_epoch as f64).round() as u64,
            (None, None) => 0,
        };
        if warmup_steps >= total_steps {
            return Err(FieldError::new(
                "optim.warmup_steps",
                format!(
                    "warm-up ({warmup_steps} steps) must be shorter than training ({total_steps} steps)"
                ),
            ));
        }
        Ok(LrSchedule {
            peak_lr: c.optim.lr,
            min_lr: c.optim.min_lr,
            warmup_steps,
            total_steps,
        })
    }

    /// The learning rate of optimiser step `step` (0-based): `peak * (step + 1) / warmup`
    /// during warm-up, so the first step already moves and the last warm-up step runs at
    /// the peak; then `min + (peak - min) * (1 + cos(pi * t)) / 2` with `t` going from 0
    /// at the first step after warm-up to 1 at `total_steps`; `min` from there on.
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak_lr * ((step + 1) as f64 / self.warmup_steps as f64);
        }
        if step >= self.total_steps {
            return self.min_lr;
        }
        let t = (step - self.warmup_steps) as f64 / (self.total_steps - self.warmup_steps) as f64;
        self.min_lr + (self.peak_lr - self.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(warmup: u64, total: u64) -> LrSchedule {
        LrSchedule {
            peak_lr: 1e-3,
            min_lr: 1e-5,
            warmup_steps: warmup,
            total_steps: total,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-12)
    }

    #[test]
    fn warmup_rises_linearly_to_the_peak() {
        let s = sched(10, 110);
        assert!(close(s.lr_at(0), 1e-4));
        assert!(close(s.lr_at(4), 5e-4));
        assert!(close(s.lr_at(9), 1e-3));
        // Strictly increasing through warm-up.
        assert!((1..10).all(|i| s.lr_at(i) > s.lr_at(i - 1)));
    }

    #[test]
    fn cosine_starts_at_peak_halves_midway_and_ends_at_min() {
        let s = sched(10, 110);
        assert!(close(s.lr_at(10), 1e-3));
        // Halfway through the decay: the mean of peak and min.
        assert!(close(s.lr_at(60), (1e-3 + 1e-5) / 2.0));
        // One step before the end: (1 + cos(pi t)) / 2 = cos^2(pi t / 2) at t = 0.99.
        let c = (std::f64::consts::PI * 0.495).cos();
        assert!((s.lr_at(109) - (1e-5 + 9.9e-4 * c * c)).abs() < 1e-15);
        assert!(s.lr_at(109) > 1e-5);
        assert!(close(s.lr_at(110), 1e-5));
        assert!(close(s.lr_at(10_000), 1e-5));
        assert!((11..=110).all(|i| s.lr_at(i) <= s.lr_at(i - 1)));
    }

    #[test]
    fn no_warmup_starts_at_the_peak() {
        let s = sched(0, 100);
        assert!(close(s.lr_at(0), 1e-3));
        assert!(close(s.lr_at(50), (1e-3 + 1e-5) / 2.0));
    }
}
