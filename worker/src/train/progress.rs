//! Progress of a training run: a progress bar on a terminal, structured log lines every
//! `logging.every_steps` steps otherwise (and always), with step, loss, learning rate,
//! temperature, samples per second, the fraction of time spent waiting for data, the mean
//! seconds per phase, model TFLOP/s (and MFU where the device's peak is known), GPU memory
//! and how full the prefetch queue was.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use proto::domain::StepTiming;

use crate::events::StepFigures;

/// Accumulates the figures of the steps since the last report.
#[derive(Debug)]
pub struct Progress {
    bar: indicatif::ProgressBar,
    every: u64,
    since: Instant,
    loss_sum: f64,
    steps: u64,
    samples: u64,
    waited: Duration,
    timings: Vec<StepTiming>,
}

/// `x` to `digits` decimals: numbers in the logs stay numbers (for log collectors) and
/// short (for people).
fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// One step's figures.
#[derive(Debug, Clone, Copy)]
pub struct StepReport<'a> {
    /// The step just taken (1-based count of optimiser steps).
    pub step: u64,
    /// Its loss.
    pub loss: f64,
    /// Its learning rate.
    pub lr: f64,
    /// The logit scale (1 / temperature).
    pub logit_scale: f64,
    /// Pairs in the batch.
    pub samples: u64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// What the step measured.
    pub figures: &'a StepFigures,
}

/// Means over the steps of one reporting interval.
#[derive(Debug, Clone, Copy)]
pub struct Interval {
    /// Mean loss.
    pub loss: f64,
    /// Pairs per second over the interval (wall clock).
    pub samples_per_s: f64,
    /// Fraction of the interval spent waiting for data.
    pub data_wait: f64,
    /// Mean seconds per phase.
    pub timing: StepTiming,
}

impl Progress {
    /// Progress over a run ending at `total` steps, starting at `start`, reporting every
    /// `every` steps; the bar only when `show_bar` (one rank of a group shows it).
    pub fn new(start: u64, total: u64, every: u64, show_bar: bool) -> Self {
        let bar = if show_bar && std::io::stderr().is_terminal() {
            let pb = indicatif::ProgressBar::new(total);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{bar:30} step {pos}/{len} eta {eta} {msg}")
            {
                pb.set_style(style);
            }
            pb.set_position(start);
            pb
        } else {
            indicatif::ProgressBar::hidden()
        };
        Self {
            bar,
            every: every.max(1),
            since: Instant::now(),
            loss_sum: 0.0,
            steps: 0,
            samples: 0,
            waited: Duration::ZERO,
            timings: Vec::new(),
        }
    }

    /// Records a step; logs (and updates the bar's message) at every reporting step, and
    /// returns the means over the steps since the previous one.
    pub fn step(&mut self, r: StepReport<'_>) -> Option<Interval> {
        self.loss_sum += r.loss;
        self.steps += 1;
        self.samples += r.samples;
        self.waited += Duration::from_secs_f64(r.figures.timing.data_wait_s);
        self.timings.push(r.figures.timing);
        self.bar.set_position(r.step);
        if !r.step.is_multiple_of(self.every) {
            return None;
        }
        let elapsed = self.since.elapsed().as_secs_f64().max(1e-9);
        let loss = self.loss_sum / self.steps as f64;
        let samples_per_s = self.samples as f64 / elapsed;
        let data_wait = self.waited.as_secs_f64() / elapsed;
        let t = StepTiming::mean(&self.timings);
        let f = r.figures;
        tracing::info!(
            step = r.step,
            loss = round(loss, 4),
            lr = r.lr as f32,
            temperature = round(1.0 / r.logit_scale, 4),
            grad_norm = round(r.grad_norm, 3),
            samples_per_s = round(samples_per_s, 1),
            data_wait = round(data_wait, 3),
            step_s = round(t.step_s, 4),
            forward_s = round(t.forward_s, 4),
            backward_s = round(t.backward_s, 4),
            grad_reduce_s = round(t.grad_reduce_s, 4),
            optimizer_s = round(t.optimizer_s, 4),
            checkpoint_s = round(t.checkpoint_s, 4),
            collective_s = round(t.collective_s, 4),
            model_tflops = round(f.model_tflops, 4),
            mfu = round(f.mfu, 4),
            memory_peak_bytes = f.memory_peak_bytes,
            prefetch_fill = round(f.data.prefetch_fill, 2),
            skipped = f.data.skipped.values().sum::<u64>(),
            "train"
        );
        self.bar.set_message(format!(
            "loss {loss:.3} lr {:.2e} {samples_per_s:.0} samples/s data wait {:.0}%",
            r.lr,
            data_wait * 100.0
        ));
        self.since = Instant::now();
        self.loss_sum = 0.0;
        self.steps = 0;
        self.samples = 0;
        self.waited = Duration::ZERO;
        self.timings.clear();
        Some(Interval {
            loss,
            samples_per_s,
            data_wait,
            timing: t,
        })
    }

    /// Ends the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
