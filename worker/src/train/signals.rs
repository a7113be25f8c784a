//! The stop flag: SIGTERM (what Kubernetes and Slurm send before stopping a job) or
//! SIGINT raise it, and the trainer checkpoints and leaves at the next step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A flag raised by SIGTERM or SIGINT, watched on `runtime`.
pub(super) fn stop_on_signals(runtime: &tokio::runtime::Runtime) -> Arc<AtomicBool> {
    use tokio::signal::unix::{signal, SignalKind};
    let flag = Arc::new(AtomicBool::new(false));
    for kind in [SignalKind::terminate(), SignalKind::interrupt()] {
        let flag = Arc::clone(&flag);
        let _guard = runtime.enter();
        match signal(kind) {
            Ok(mut s) => {
                runtime.spawn(async move {
                    if s.recv().await.is_some() {
                        tracing::warn!(signal = ?kind, "signal received: checkpointing and stopping after this step");
                        flag.store(true, Ordering::Relaxed);
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch for signals; a signal will end the process without a checkpoint")
            }
        }
    }
    flag
}
