//! Synchronised batch norm: batch statistics over every rank of a data-parallel job instead
//! of each rank's own samples (at 32 patches per GPU, per-rank statistics are noisy).
//!
//! The autograd function is C++ (`csrc/sync_batch_norm.cpp`, compiled by the build
//! script against libtorch's headers): tch cannot define autograd functions, and the
//! backward pass must sum per-channel gradient statistics over the ranks in the middle of
//! back-propagation. The sums go through a [`StatsReducer`] (the job's collective), reached
//! from C++ through a registry of [`SyncGroup`]s: a reducer is attached to a group while a
//! forward or backward pass runs, and a pass without one gets an error instead of a
//! dangling reducer.

use std::ffi::{c_char, c_int, CStr};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use tch::nn::BatchNorm;
use tch::Tensor;
use torch_sys::C_tensor;

use crate::error::KernelsError;
use crate::scopes::Scopes;

/// Sums a tensor over every rank of the job, in place (all ranks call it in the same
/// order with the same shapes).
pub trait StatsReducer {
    /// Replaces `t` (float64, on the training device) by its sum over the ranks.
    fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), String>;
}

/// `BatchNormConfig::default()`'s momentum and epsilon, which the image tower's norms use.
const MOMENTUM: f64 = 0.1;
const EPS: f64 = 1e-5;

type ReduceFn = extern "C" fn(u64, *mut C_tensor) -> c_int;

extern "C" {
    fn exiflang_sync_batch_norm(
        x: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        running_mean: *const C_tensor,
        running_var: *const C_tensor,
        momentum: f64,
        eps: f64,
        reduce: ReduceFn,
        scope: u64,
        out: *mut *mut C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

/// A group's reducer while one is attached. The pointer is only dereferenced while it is
/// attached, and an attachment lives no longer than the `&mut` borrow it was made from.
struct Entry {
    reducer: Option<*mut (dyn StatsReducer + 'static)>,
    /// The reducer's error of a failed sum, kept for the caller.
    error: Option<String>,
}

// SAFETY: the reducer is used by one call at a time: the thread that attached it, or
// libtorch's backward thread while that thread waits in `backward()`.
unsafe impl Send for Entry {}

static GROUPS: Scopes<Entry> = Scopes::new();

/// The batch norms of one training step: their forward and backward passes sum over the
/// ranks through whatever reducer is attached at the time (the step uses the same
/// collective for other calls in between). A pass without an attached reducer fails.
#[derive(Debug)]
pub struct SyncGroup {
    id: u64,
}

impl Default for SyncGroup {
    fn default() -> Self {
        Self::new()
    }
}

impl SyncGroup {
    /// A new group with no reducer attached.
    pub fn new() -> Self {
        let id = GROUPS.open(Entry {
            reducer: None,
            error: None,
        });
        Self { id }
    }

    /// Attaches `reducer` until the returned guard drops.
    pub fn attach<'g>(&'g self, reducer: &'g mut dyn StatsReducer) -> Attached<'g> {
        let reducer: *mut (dyn StatsReducer + 'g) = reducer;
        // SAFETY: only the lifetime is erased; `Attached::drop` detaches the pointer
        // before the borrow `'g` ends.
        let reducer: *mut (dyn StatsReducer + 'static) = unsafe { std::mem::transmute(reducer) };
        GROUPS.with(self.id, |entry| {
            entry.reducer = Some(reducer);
            entry.error = None;
        });
        Attached {
            group: self,
            _reducer: PhantomData,
        }
    }
}

impl Drop for SyncGroup {
    fn drop(&mut self) {
        GROUPS.close(self.id);
    }
}

/// A [`SyncGroup`] with a reducer attached: its batch norms (and the backward passes of
/// graphs they built, while attached) sum over the ranks.
#[derive(Debug)]
pub struct Attached<'g> {
    group: &'g SyncGroup,
    _reducer: PhantomData<&'g mut dyn StatsReducer>,
}

impl Attached<'_> {
    /// The reducer's error if a sum failed since it was attached (cleared by the call).
    pub fn take_error(&self) -> Option<String> {
        GROUPS
            .with(self.group.id, |entry| entry.error.take())
            .flatten()
    }

    /// Synchronised batch norm of `xs` (`[N, C, ...]`) in training mode with `bn`'s
    /// weights: normalised with the statistics of every rank's batch, running statistics
    /// moved by them.
    pub fn batch_norm(&self, xs: &Tensor, bn: &BatchNorm) -> Result<Tensor, KernelsError> {
        let (Some(weight), Some(bias)) = (&bn.ws, &bn.bs) else {
            return Err(sync_error(
                "batch norm without weight and bias (affine = false)",
            ));
        };
        let mut out: *mut C_tensor = std::ptr::null_mut();
        let mut err = [0 as c_char; 512];
        // SAFETY: the tensors are valid for the call; on success `out` is a new tensor
        // that the returned `Tensor` owns.
        let rc = unsafe {
            exiflang_sync_batch_norm(
                xs.as_ptr(),
                weight.as_ptr(),
                bias.as_ptr(),
                bn.running_mean.as_ptr(),
                bn.running_var.as_ptr(),
                MOMENTUM,
                EPS,
                reduce_callback,
                self.group.id,
                &mut out,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if rc != 0 || out.is_null() {
            let message = self.take_error().unwrap_or_else(|| {
                // SAFETY: the C++ side always NUL-terminates within the buffer.
                unsafe { CStr::from_ptr(err.as_ptr()) }
                    .to_string_lossy()
                    .into_owned()
            });
            return Err(sync_error(&message));
        }
        // SAFETY: `out` came from `new at::Tensor` and is owned by nobody else.
        Ok(unsafe { Tensor::from_ptr(out) })
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        GROUPS.with(self.group.id, |entry| entry.reducer = None);
    }
}

fn sync_error(reason: &str) -> KernelsError {
    KernelsError::Input {
        what: "synchronised batch norm",
        reason: reason.to_string(),
    }
}

extern "C" fn reduce_callback(scope: u64, t: *mut C_tensor) -> c_int {
    let Some(reducer) = GROUPS.with(scope, |entry| entry.reducer).flatten() else {
        return 2;
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `t` is a live at::Tensor owned by the C++ caller; this is a shallow
        // clone of it. The reducer is registered, so its borrow is live (see `Entry`).
        let target = unsafe { Tensor::clone_from_ptr(t) };
        let mut work = target.shallow_clone();
        let r = unsafe { (*reducer).all_reduce_sum(&mut work) };
        if r.is_ok() && work.data_ptr() != target.data_ptr() {
            tch::no_grad(|| target.shallow_clone().copy_(&work));
        }
        r
    }));
    let error = match result {
        Ok(Ok(())) => return 0,
        Ok(Err(e)) => e,
        Err(_) => "the reducer panicked".to_string(),
    };
    GROUPS.with(scope, |entry| entry.error = Some(error));
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{channel, Receiver, Sender};
    use tch::{nn, Device, Kind};

    /// Two ranks in one process: each sends its tensor to the other and adds what it gets.
    struct Pair {
        to: Sender<Vec<f64>>,
        from: Receiver<Vec<f64>>,
    }

    impl StatsReducer for Pair {
        fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), String> {
            let mine = Vec::<f64>::try_from(&t.to_kind(Kind::Double)).map_err(|e| e.to_string())?;
            self.to.send(mine).map_err(|e| e.to_string())?;
            let theirs = self.from.recv().map_err(|e| e.to_string())?;
            *t += Tensor::from_slice(&theirs);
            Ok(())
        }
    }

    struct Broken;
    impl StatsReducer for Broken {
        fn all_reduce_sum(&mut self, _t: &mut Tensor) -> Result<(), String> {
            Err("rank 1 is gone".into())
        }
    }

    /// A batch norm with non-trivial weights and running statistics, the same on every call.
    fn norm(vs: &nn::VarStore) -> nn::BatchNorm {
        let bn = nn::batch_norm2d(vs.root(), 3, Default::default());
        tch::no_grad(|| {
            bn.ws
                .as_ref()
                .unwrap()
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[0.5f32, 1.5, -2.0]));
            bn.bs
                .as_ref()
                .unwrap()
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[0.1f32, -0.3, 0.0]));
            bn.running_mean
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[0.2f32, 0.0, -1.0]));
        });
        bn
    }

    /// Output, input gradient, weight and bias gradients and running statistics of a
    /// training-mode batch norm of `x` with `upstream` as the output's gradient.
    fn run(x: &Tensor, upstream: &Tensor, scope: Option<&Attached>) -> Vec<Tensor> {
        let vs = nn::VarStore::new(Device::Cpu);
        let bn = norm(&vs);
        let x = x.detach().set_requires_grad(true);
        let y = match scope {
            Some(s) => s.batch_norm(&x, &bn).unwrap(),
            None => x.apply_t(&bn, true),
        };
        (&y * upstream).sum(Kind::Float).backward();
        vec![
            y.detach(),
            x.grad(),
            bn.ws.as_ref().unwrap().grad(),
            bn.bs.as_ref().unwrap().grad(),
            bn.running_mean.copy(),
            bn.running_var.copy(),
        ]
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn two_synchronised_halves_equal_one_batch_norm_over_the_whole_batch() {
        tch::manual_seed(3);
        let x = Tensor::randn([8, 3, 5, 4], (Kind::Float, Device::Cpu)) * 2.0 + 0.7;
        let upstream = Tensor::randn([8, 3, 5, 4], (Kind::Float, Device::Cpu));
        let whole = run(&x, &upstream, None);
        let (to1, from0) = channel();
        let (to0, from1) = channel();
        let halves: Vec<Vec<Tensor>> = [(0, to1, from1), (4, to0, from0)]
            .into_iter()
            .map(|(start, to, from)| {
                let (xs, up) = (x.narrow(0, start, 4), upstream.narrow(0, start, 4));
                std::thread::spawn(move || {
                    let mut pair = Pair { to, from };
                    let group = SyncGroup::new();
                    let attached = group.attach(&mut pair);
                    run(&xs, &up, Some(&attached))
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let cat = |i: usize| Tensor::cat(&[&halves[0][i], &halves[1][i]], 0);
        assert!(max_diff(&cat(0), &whole[0]) < 1e-5, "outputs");
        assert!(max_diff(&cat(1), &whole[1]) < 1e-5, "input gradients");
        for (i, what) in [(2, "weight gradient"), (3, "bias gradient")] {
            // Local on each rank; the job sums parameter gradients over ranks.
            let summed = &halves[0][i] + &halves[1][i];
            assert!(max_diff(&summed, &whole[i]) < 1e-4, "{what}");
        }
        for (i, what) in [(4, "running mean"), (5, "running variance")] {
            for half in &halves {
                assert!(max_diff(&half[i], &whole[i]) < 1e-6, "{what}");
            }
        }
        // Per-rank statistics differ from the whole batch's: the test can tell.
        let local = run(&x.narrow(0, 0, 4), &upstream.narrow(0, 0, 4), None);
        assert!(max_diff(&local[0], &whole[0].narrow(0, 0, 4)) > 1e-3);
    }

    #[test]
    fn a_failed_sum_is_an_error_naming_the_collectives_reason() {
        let vs = nn::VarStore::new(Device::Cpu);
        let bn = norm(&vs);
        let mut broken = Broken;
        let group = SyncGroup::new();
        let scope = group.attach(&mut broken);
        let x = Tensor::randn([4, 3, 2, 2], (Kind::Float, Device::Cpu));
        let err = scope.batch_norm(&x, &bn).unwrap_err().to_string();
        assert!(err.contains("rank 1 is gone"), "{err}");
    }

    #[test]
    fn a_backward_pass_without_an_attached_reducer_fails_instead_of_using_a_dead_one() {
        let vs = nn::VarStore::new(Device::Cpu);
        let bn = norm(&vs);
        let x = Tensor::randn([4, 3, 2, 2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut solo = Pair::solo();
        let group = SyncGroup::new();
        let y = group.attach(&mut solo).batch_norm(&x, &bn).unwrap();
        let err = y.sum(Kind::Float).f_backward().unwrap_err().to_string();
        assert!(err.contains("sum over ranks failed"), "{err}");
        // Attached again, the same graph back-propagates.
        let _attached = group.attach(&mut solo);
        y.sum(Kind::Float).backward();
        assert!(x.grad().defined());
    }

    impl Pair {
        /// A one-rank group (sends to itself).
        fn solo() -> Self {
            let (to, from) = channel();
            Self { to, from }
        }
    }
}
