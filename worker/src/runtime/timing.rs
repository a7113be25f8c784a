//! Where a training step's time goes: a [`PhaseClock`] that the step marks at each phase
//! boundary (forward, backward, the gradient all-reduce left after backward, the
//! optimiser).
//!
//! On CPU every libtorch call returns when its work is done, so the host clock measures
//! the phases. On a GPU the host only queues work, so the clock records a CUDA event on
//! libtorch's current stream at each boundary and reads the times between them one step
//! later, when they have long fired: no synchronisation is added to the step (reading an
//! event of the previous step waits only if the GPU is more than a step behind, which the
//! step's own loss read-out already prevents).

use std::cell::RefCell;
use std::time::Instant;

/// A phase of the step's compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Forward passes (and the embeddings' all-gather).
    Forward,
    /// Backward passes.
    Backward,
    /// The gradient all-reduce not hidden behind backward.
    GradReduce,
    /// Clipping and the optimiser step.
    Optimizer,
}

impl Phase {
    const COUNT: usize = 4;

    fn slot(self) -> usize {
        self as usize
    }
}

/// Seconds of one step in each phase (index: [`Phase`] order).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseSeconds([f64; Phase::COUNT]);

impl PhaseSeconds {
    /// The seconds of `phase`.
    pub fn get(&self, phase: Phase) -> f64 {
        self.0[phase.slot()]
    }
}

/// Marks phase boundaries of one step at a time; see the module documentation.
#[derive(Debug)]
pub struct PhaseClock {
    state: RefCell<Clock>,
}

#[derive(Debug)]
enum Clock {
    Host {
        last: Instant,
        seconds: [f64; Phase::COUNT],
    },
    #[cfg(feature = "cuda")]
    Cuda(cuda::EventClock),
}

impl PhaseClock {
    /// A clock for steps on `device`: CUDA events on a GPU, the host clock otherwise.
    pub fn for_device(device: tch::Device) -> Self {
        let clock = match device {
            #[cfg(feature = "cuda")]
            tch::Device::Cuda(index) => Clock::Cuda(cuda::EventClock::new(index)),
            _ => Clock::Host {
                last: Instant::now(),
                seconds: [0.0; Phase::COUNT],
            },
        };
        Self {
            state: RefCell::new(clock),
        }
    }

    /// A step's compute starts now.
    pub fn start(&self) {
        match &mut *self.state.borrow_mut() {
            Clock::Host { last, seconds } => {
                *last = Instant::now();
                *seconds = [0.0; Phase::COUNT];
            }
            #[cfg(feature = "cuda")]
            Clock::Cuda(c) => c.start(),
        }
    }

    /// The time since the previous mark was spent in `phase`.
    pub fn lap(&self, phase: Phase) {
        match &mut *self.state.borrow_mut() {
            Clock::Host { last, seconds } => {
                let now = Instant::now();
                seconds[phase.slot()] += now.duration_since(*last).as_secs_f64();
                *last = now;
            }
            #[cfg(feature = "cuda")]
            Clock::Cuda(c) => c.lap(phase),
        }
    }

    /// Ends the step: its phase times on the host clock; with CUDA events, those of the
    /// previous step (zero after the first).
    pub fn finish(&self) -> PhaseSeconds {
        match &mut *self.state.borrow_mut() {
            Clock::Host { seconds, .. } => PhaseSeconds(*seconds),
            #[cfg(feature = "cuda")]
            Clock::Cuda(c) => c.finish(),
        }
    }
}

/// The dense bf16 peak of `device` in TFLOP/s when it is a GPU we know (by its name);
/// `None` on CPU. Model FLOPs utilisation divides by it.
pub fn device_peak_tflops(device: tch::Device) -> Option<f64> {
    match device {
        #[cfg(feature = "cuda")]
        tch::Device::Cuda(index) => cuda::device_name(index)
            .as_deref()
            .and_then(kernels::flops::peak_bf16_tflops),
        _ => None,
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    //! CUDA events on libtorch's current stream; their times are read a step later.

    use super::{Phase, PhaseSeconds};
    use cudarc::driver::sys::{self as cu, CUevent, CUresult};

    /// The name the driver gives GPU `index` (e.g. `NVIDIA H100 80GB HBM3`).
    pub(super) fn device_name(index: usize) -> Option<String> {
        let mut name = [0 as std::ffi::c_char; 256];
        let mut dev = 0;
        // SAFETY: out-pointers to locals, the buffer's length given; cuInit is idempotent.
        unsafe {
            if cu::cuInit(0) != CUresult::CUDA_SUCCESS
                || cu::cuDeviceGet(&mut dev, index as i32) != CUresult::CUDA_SUCCESS
                || cu::cuDeviceGetName(name.as_mut_ptr(), name.len() as i32, dev)
                    != CUresult::CUDA_SUCCESS
            {
                return None;
            }
            Some(
                std::ffi::CStr::from_ptr(name.as_ptr())
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    }

    /// One step's events: the start, then one per lap with its phase.
    #[derive(Debug, Default)]
    struct Marks {
        start: Option<CUevent>,
        laps: Vec<(Phase, CUevent)>,
    }

    #[derive(Debug)]
    pub(super) struct EventClock {
        device: usize,
        current: Marks,
        previous: Marks,
        free: Vec<CUevent>,
        /// An event could not be made or recorded: timing is off (logged once).
        broken: bool,
    }

    impl EventClock {
        pub(super) fn new(device: usize) -> Self {
            Self {
                device,
                current: Marks::default(),
                previous: Marks::default(),
                free: Vec::new(),
                broken: false,
            }
        }

        /// An event recorded now on libtorch's current stream.
        fn record(&mut self) -> Option<CUevent> {
            if self.broken {
                return None;
            }
            let stream = kernels::cuda::current_stream(self.device).ok()?;
            let event = match self.free.pop() {
                Some(e) => e,
                None => {
                    let mut e: CUevent = std::ptr::null_mut();
                    // SAFETY: an out-pointer to a local; default flags (timing on).
                    let rc = unsafe { cu::cuEventCreate(&mut e, 0) };
                    if rc != CUresult::CUDA_SUCCESS {
                        return self.fail("creating a CUDA event", rc);
                    }
                    e
                }
            };
            // SAFETY: an event this clock made, on libtorch's live stream of the device.
            let rc = unsafe { cu::cuEventRecord(event, stream as _) };
            if rc != CUresult::CUDA_SUCCESS {
                self.free.push(event);
                return self.fail("recording a CUDA event", rc);
            }
            Some(event)
        }

        fn fail(&mut self, what: &str, rc: CUresult) -> Option<CUevent> {
            tracing::warn!(error = ?rc, "{what} failed; GPU phase times are off for this run");
            self.broken = true;
            None
        }

        pub(super) fn start(&mut self) {
            let old = std::mem::take(&mut self.current);
            self.recycle(old);
            self.current.start = self.record();
        }

        pub(super) fn lap(&mut self, phase: Phase) {
            if let Some(e) = self.record() {
                self.current.laps.push((phase, e));
            }
        }

        pub(super) fn finish(&mut self) -> PhaseSeconds {
            let done = std::mem::replace(&mut self.previous, std::mem::take(&mut self.current));
            let seconds = Self::read(&done);
            self.recycle(done);
            seconds
        }

        /// The phase times of a step whose events were all recorded.
        fn read(marks: &Marks) -> PhaseSeconds {
            let mut out = PhaseSeconds::default();
            let (Some(mut from), Some(&(_, last))) = (marks.start, marks.laps.last()) else {
                return out;
            };
            // SAFETY: recorded events of this clock; waits for the last (long fired).
            if unsafe { cu::cuEventSynchronize(last) } != CUresult::CUDA_SUCCESS {
                return out;
            }
            for &(phase, to) in &marks.laps {
                let mut ms = 0f32;
                // SAFETY: two recorded, completed events with timing enabled.
                if unsafe { cu::cuEventElapsedTime_v2(&mut ms, from, to) } == CUresult::CUDA_SUCCESS
                {
                    out.0[phase.slot()] += f64::from(ms.max(0.0)) / 1e3;
                }
                from = to;
            }
            out
        }

        fn recycle(&mut self, marks: Marks) {
            self.free.extend(marks.start);
            self.free.extend(marks.laps.into_iter().map(|(_, e)| e));
        }
    }

    impl Drop for EventClock {
        fn drop(&mut self) {
            let current = std::mem::take(&mut self.current);
            let previous = std::mem::take(&mut self.previous);
            self.recycle(current);
            self.recycle(previous);
            for e in self.free.drain(..) {
                // SAFETY: events this clock made; CUDA frees them once they have fired.
                unsafe { cu::cuEventDestroy_v2(e) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_laps_add_up_per_phase_and_start_resets_them() {
        let clock = PhaseClock::for_device(tch::Device::Cpu);
        clock.start();
        std::thread::sleep(std::time::Duration::from_millis(20));
        clock.lap(Phase::Forward);
        clock.lap(Phase::Backward);
        std::thread::sleep(std::time::Duration::from_millis(20));
        clock.lap(Phase::Forward);
        let t = clock.finish();
        assert!(t.get(Phase::Forward) >= 0.04, "{t:?}");
        assert!(t.get(Phase::Backward) < 0.02, "{t:?}");
        assert_eq!(t.get(Phase::Optimizer), 0.0);
        clock.start();
        assert_eq!(clock.finish(), PhaseSeconds::default());
    }
}
