//! libtorch failures as errors instead of panics. tch panics when libtorch throws (every
//! tensor operation unwraps its result), so running out of device or host memory, or a
//! GPU that another process holds, would end the process with a panic and a backtrace.
//! [`guarded`] runs a piece of model work, turns a libtorch panic into a [`RuntimeError`] that
//! names the device and what was asked (the step, the batch, the micro-batch, the
//! precision), and keeps the panic message off the terminal; any other panic (a bug)
//! goes on as a panic.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use super::RuntimeError;

thread_local! {
    /// How many [`guarded`] calls this thread is inside.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
}

/// What kind of libtorch failure a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchFailure {
    /// The device's (or the host's) memory ran out.
    OutOfMemory,
    /// The GPU exists but cannot be used (another process holds it in exclusive compute
    /// mode, or it is prohibited).
    DeviceUnavailable,
    /// Anything else libtorch threw.
    Other,
}

/// Classifies libtorch's message (CUDA caching allocator, CPU allocator, CUDA runtime).
pub fn classify(message: &str) -> TorchFailure {
    let m = message.to_ascii_lowercase();
    if m.contains("out of memory")
        || m.contains("can't allocate memory")
        || m.contains("not enough memory")
    {
        TorchFailure::OutOfMemory
    } else if m.contains("busy or unavailable") || m.contains("prohibited") {
        TorchFailure::DeviceUnavailable
    } else {
        TorchFailure::Other
    }
}

/// libtorch's own message in a tch panic payload (`... Err value: Torch("...")`), without
/// the C++ stack frames libtorch appends; `None` when the panic did not come from libtorch.
pub fn torch_message(payload: &str) -> Option<String> {
    let start = payload.find("Torch(\"")? + "Torch(\"".len();
    let body = payload[start..]
        .strip_suffix("\")")
        .unwrap_or(&payload[start..]);
    Some(first_lines(
        &body.replace("\\n", "\n").replace("\\\"", "\""),
    ))
}

/// libtorch's message in an error of a tch `f_` call, without the C++ stack frames.
pub fn tch_error_message(e: &tch::TchError) -> String {
    match e {
        tch::TchError::Torch(m) => first_lines(m),
        other => other.to_string(),
    }
}

fn first_lines(text: &str) -> String {
    let end = ["\nframe #", "\nException raised from"]
        .iter()
        .filter_map(|m| text.find(m))
        .min()
        .unwrap_or(text.len());
    text[..end].trim().to_string()
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

/// Silences the default panic message of libtorch panics inside [`guarded`] (they come
/// back as errors); every other panic prints as before.
fn quiet_guarded_torch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let inside = GUARDED.with(Cell::get) > 0;
            let torch = payload_text(info.payload()).is_some_and(|p| p.contains("Torch(\""));
            if !(inside && torch) {
                previous(info)
            }
        }));
    });
}

/// The error of a libtorch failure with message `message` on `device` while doing `what`.
pub fn torch_error(device: tch::Device, what: &str, message: String) -> RuntimeError {
    let device = device_name(device);
    match classify(&message) {
        TorchFailure::OutOfMemory => RuntimeError::OutOfMemory {
            device,
            what: what.to_string(),
            message,
        },
        TorchFailure::DeviceUnavailable => RuntimeError::Device(format!(
            "{device} cannot be used ({what}): {message}. Another process may hold it in \
             exclusive compute mode: `nvidia-smi` lists the processes and \
             `nvidia-smi -q -d COMPUTE` the mode; pick another GPU with CUDA_VISIBLE_DEVICES"
        )),
        TorchFailure::Other => RuntimeError::Torch {
            device,
            what: what.to_string(),
            message,
        },
    }
}

/// `cuda:0`, `cpu`.
pub fn device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        tch::Device::Cpu => "cpu".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Runs `f`; a libtorch failure inside it (a tch panic) becomes [`torch_error`] on
/// `device` with `what()` describing what was asked. Other panics go on.
pub fn guarded<T, E: From<RuntimeError>>(
    device: tch::Device,
    what: impl FnOnce() -> String,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    quiet_guarded_torch_panics();
    GUARDED.with(|g| g.set(g.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    match result {
        Ok(r) => r,
        Err(payload) => match payload_text(&*payload).and_then(torch_message) {
            Some(message) => Err(torch_error(device, &what(), message).into()),
            None => std::panic::resume_unwind(payload),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn running_out_of_memory_in_libtorch_is_an_error_naming_the_device_and_the_request() {
        let err = guarded(
            Device::Cpu,
            || "at step 7 (this rank's 4096 pairs)".into(),
            || -> Result<(), RuntimeError> {
                // 2^46 floats: libtorch's CPU allocator refuses it.
                let _t = Tensor::empty([1i64 << 46], (Kind::Float, Device::Cpu));
                Ok(())
            },
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, RuntimeError::OutOfMemory { .. }), "{text}");
        assert!(text.starts_with("cpu ran out of memory at step 7 (this rank's 4096 pairs)"));
        assert!(text.contains("can't allocate memory"), "{text}");
        assert!(text.contains("train.micro_batch_size"), "{text}");
        assert!(!text.contains("frame #"), "C++ frames kept: {text}");
    }

    #[test]
    fn other_libtorch_failures_are_errors_and_other_panics_stay_panics() {
        let err = guarded(
            Device::Cpu,
            || "in a test".into(),
            || -> Result<(), RuntimeError> {
                let _ = Tensor::ones([2, 3], (Kind::Float, Device::Cpu))
                    .matmul(&Tensor::ones([2, 3], (Kind::Float, Device::Cpu)));
                Ok(())
            },
        )
        .unwrap_err();
        assert!(matches!(err, RuntimeError::Torch { .. }), "{err}");
        assert!(err.to_string().contains("cannot be multiplied"), "{err}");
        let bug = catch_unwind(|| {
            guarded(Device::Cpu, String::new, || -> Result<(), RuntimeError> {
                panic!("a bug")
            })
        });
        assert!(bug.is_err(), "a non-libtorch panic was swallowed");
        // Errors pass through untouched.
        let own = guarded(Device::Cpu, String::new, || -> Result<(), _> {
            Err(RuntimeError::Device("x".into()))
        });
        assert!(matches!(own, Err(RuntimeError::Device(m)) if m == "x"));
    }

    #[test]
    fn classifies_the_messages_of_cuda_and_the_cpu_allocator() {
        // As libtorch's CUDA caching allocator and the CUDA runtime word them.
        assert_eq!(
            classify("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.06 GiB is free."),
            TorchFailure::OutOfMemory
        );
        assert_eq!(
            classify("CUDA error: CUDA-capable device(s) is/are busy or unavailable"),
            TorchFailure::DeviceUnavailable
        );
        assert_eq!(
            classify("CUDA error: operation not permitted when stream is capturing"),
            TorchFailure::Other
        );
        let payload = "called `Result::unwrap()` on an `Err` value: Torch(\"CUDA out of memory. Tried to allocate 20.00 MiB. \\\"x\\\"\\nException raised from malloc at c10/cuda/CUDACachingAllocator.cpp:1 (most recent call first):\\nframe #0: ...\")";
        assert_eq!(
            torch_message(payload).unwrap(),
            "CUDA out of memory. Tried to allocate 20.00 MiB. \"x\""
        );
        assert_eq!(torch_message("index out of bounds"), None);
    }
}
