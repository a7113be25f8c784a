//! Measuring the read path (shard ranges, decode, crop, tokenise, batch) in patches per
//! second and per CPU-second. Datasets to measure on come from `dataloader pack` (real
//! photos, or full-resolution ones from `dataloader generate`).

use crate::order::Position;
use crate::shard::Dataset;
use crate::stream::{BatchStream, CounterSnapshot, StreamError, StreamOptions};
use crate::tokenize::TextTokenizer;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a measurement saw.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Samples in the measured batches.
    pub samples: u64,
    /// Patches in the measured batches: samples times crops per sample.
    pub patches: u64,
    /// Measured batches.
    pub batches: u64,
    /// Wall time of the measured batches.
    pub wall: Duration,
    /// CPU time of the whole process (all threads) over the same span, where the platform
    /// reports it.
    pub cpu: Option<Duration>,
    /// The stream's counters at the end.
    pub counters: CounterSnapshot,
    /// Where the stream stood after the last batch.
    pub resume: Option<Position>,
}

impl Measurement {
    /// Patches per second of wall time.
    pub fn patches_per_s(&self) -> f64 {
        self.patches as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Patches per CPU-second over all threads: the per-core throughput.
    pub fn patches_per_cpu_s(&self) -> Option<f64> {
        self.cpu
            .map(|c| self.patches as f64 / c.as_secs_f64().max(1e-9))
    }
}

/// Starts a stream and times it from its start to its `batches`-th batch (or its end):
/// the figure covers everything, start-up and prefetch included, since with bounded
/// prefetch nothing can be read ahead of the clock.
pub fn measure(
    runtime: &tokio::runtime::Handle,
    dataset: Arc<Dataset>,
    tokenizer: Arc<TextTokenizer>,
    opts: StreamOptions,
    batches: u64,
) -> Result<Measurement, StreamError> {
    let (t0, cpu0) = (Instant::now(), process_cpu_time());
    let mut stream = BatchStream::start(runtime, dataset, tokenizer, opts)?;
    let (mut samples, mut patches, mut n, mut resume) = (0, 0, 0, None);
    while n < batches {
        let Some(b) = stream.next_blocking() else {
            break;
        };
        let b = b?;
        samples += b.len() as u64;
        patches += b.len() as u64 * u64::from(b.crops);
        n += 1;
        resume = Some(b.resume);
    }
    let wall = t0.elapsed();
    let cpu = process_cpu_time()
        .zip(cpu0)
        .map(|(a, b)| a.saturating_sub(b));
    Ok(Measurement {
        samples,
        patches,
        batches: n,
        wall,
        cpu,
        counters: stream.counters(),
        resume,
    })
}

/// CPU time used by this process so far, all threads (Linux: `/proc/self/stat`).
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15, in clock ticks of 1/100 s on Linux.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// A `width x height` JPEG (4:2:0, quality 92) of a gradient with sensor-like noise, so it
/// compresses about as a camera photo does; any size, also below the patch size (tests).
pub fn noisy_jpeg(
    width: u16,
    height: u16,
    seed: u64,
) -> Result<Vec<u8>, jpeg_encoder::EncodingError> {
    let (w, h) = (u32::from(width), u32::from(height));
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
    for y in 0..h {
        for x in 0..w {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state & 0x1f) as i32 - 16;
            let base = [x * 255 / w, y * 255 / h, ((x / 64 + y / 64) * 37) % 256];
            rgb.extend(base.map(|v| (v as i32 + n).clamp(0, 255) as u8));
        }
    }
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 92);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    enc.encode(&rgb, width, height, jpeg_encoder::ColorType::Rgb)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let Some(t0) = process_cpu_time() else { return };
        let start = Instant::now();
        let mut x = 0u64;
        // Spin until the clock ticks; a frozen clock fails after seconds of work.
        while process_cpu_time().unwrap() == t0 && start.elapsed() < Duration::from_secs(5) {
            for _ in 0..100_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
        }
        assert!(
            process_cpu_time().unwrap() > t0,
            "no CPU time counted after {x} iterations"
        );
    }
}
