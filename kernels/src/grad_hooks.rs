//! Gradient-ready hooks: a [`GradReady`] handler hears, during `backward()`, each time
//! libtorch has accumulated one of a set of parameters' gradients, so a data-parallel step
//! can start summing a bucket of gradients over the ranks while back-propagation still
//! computes the others (what PyTorch DDP's reducer does; tch has no hooks, so the hook is
//! C++ in `csrc/grad_hooks.cpp`).
//!
//! [`GradHooks::new`] sets the hooks once; they stay on the parameters until the
//! `GradHooks` drops and do nothing unless a handler is armed. [`GradHooks::armed`] arms a
//! handler for the length of one closure (the backward call): the handler runs on the
//! thread libtorch accumulates gradients on (the caller's on the CPU, the device's autograd
//! thread on a GPU) while the caller waits in `backward()`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use tch::Tensor;
use torch_sys::C_tensor;

use crate::error::KernelsError;
use crate::scopes::Scopes;

/// Hears that parameter `index` (its position in [`GradHooks::new`]'s list) has its
/// gradient for this backward pass.
pub trait GradReady: Send {
    /// Called once per parameter per backward pass, in libtorch's order.
    fn ready(&mut self, index: usize);
}

type ReadyFn = extern "C" fn(u64, u64);

extern "C" {
    fn exiflang_grad_ready_hook_set(t: *const C_tensor, f: ReadyFn, scope: u64, index: u64) -> i32;
    fn exiflang_grad_ready_hook_clear(t: *const C_tensor);
}

/// The armed handler of a set of hooks. The pointer is dereferenced only while armed, and
/// an arming lasts no longer than the `&mut` borrow it was made from.
#[derive(Default)]
struct Entry {
    handler: Option<*mut (dyn GradReady + 'static)>,
    panicked: bool,
}

// SAFETY: the handler is used by one thread at a time: libtorch's accumulating thread while
// the arming thread waits in `backward()`; `GradReady: Send`.
unsafe impl Send for Entry {}

static HOOKS: Scopes<Entry> = Scopes::new();

/// Hooks on a list of parameters (leaf tensors that require a gradient).
#[derive(Debug)]
pub struct GradHooks {
    scope: u64,
    params: Vec<Tensor>,
}

impl GradHooks {
    /// Sets a hook on each of `params` (replacing any other post-accumulate-grad hook).
    pub fn new(params: &[Tensor]) -> Result<Self, KernelsError> {
        let scope = HOOKS.open(Entry::default());
        let hooks = GradHooks {
            scope,
            params: params.iter().map(Tensor::shallow_clone).collect(),
        };
        for (i, p) in hooks.params.iter().enumerate() {
            // SAFETY: a live tensor; the C++ side copies nothing but the scalars.
            if unsafe { exiflang_grad_ready_hook_set(p.as_ptr(), on_ready, scope, i as u64) } != 0 {
                return Err(KernelsError::Input {
                    what: "gradient hook",
                    reason: format!("parameter {i} is not a leaf tensor that requires a gradient"),
                });
            }
        }
        Ok(hooks)
    }

    /// Runs `f` with `handler` hearing every gradient accumulated meanwhile. A handler that
    /// panicked is an error (after `f` returned).
    pub fn armed<'h, R>(
        &self,
        handler: &'h mut (dyn GradReady + 'h),
        f: impl FnOnce() -> R,
    ) -> Result<R, KernelsError> {
        let handler: *mut (dyn GradReady + 'h) = handler;
        // SAFETY: only the lifetime is erased; `Disarm` removes the pointer before `'h`
        // ends, also when `f` panics.
        let handler: *mut (dyn GradReady + 'static) = unsafe { std::mem::transmute(handler) };
        HOOKS.with(self.scope, |entry| {
            entry.handler = Some(handler);
            entry.panicked = false;
        });
        struct Disarm(u64);
        impl Drop for Disarm {
            fn drop(&mut self) {
                HOOKS.with(self.0, |entry| entry.handler = None);
            }
        }
        let disarm = Disarm(self.scope);
        let out = f();
        drop(disarm);
        let panicked = HOOKS.with(self.scope, |entry| entry.panicked) == Some(true);
        if panicked {
            return Err(KernelsError::Input {
                what: "gradient hook",
                reason: "the gradient-ready handler panicked".into(),
            });
        }
        Ok(out)
    }
}

impl Drop for GradHooks {
    fn drop(&mut self) {
        for p in &self.params {
            // SAFETY: a live tensor.
            unsafe { exiflang_grad_ready_hook_clear(p.as_ptr()) };
        }
        HOOKS.close(self.scope);
    }
}

extern "C" fn on_ready(scope: u64, index: u64) {
    // The lock is not held while the handler runs.
    let Some(handler) = HOOKS.with(scope, |entry| entry.handler).flatten() else {
        return;
    };
    // SAFETY: armed, so the borrow the pointer came from is live and its owner waits in
    // `backward()`.
    let result = catch_unwind(AssertUnwindSafe(|| unsafe {
        (*handler).ready(index as usize)
    }));
    if result.is_err() {
        HOOKS.with(scope, |entry| entry.panicked = true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    struct Record(Vec<usize>);
    impl GradReady for Record {
        fn ready(&mut self, index: usize) {
            self.0.push(index);
        }
    }

    #[test]
    fn an_armed_handler_hears_each_gradient_once_per_pass_after_it_is_accumulated() {
        let opts = (Kind::Float, Device::Cpu);
        let w1 = Tensor::ones([3], opts).set_requires_grad(true);
        let w2 = Tensor::ones([3], opts).set_requires_grad(true);
        let unused = Tensor::ones([1], opts).set_requires_grad(true);
        let hooks = GradHooks::new(&[w1.shallow_clone(), w2.shallow_clone(), unused]).unwrap();
        // Not armed: nothing is heard.
        (&w1 * 2.0 + &w2).sum(Kind::Float).backward();
        let mut seen = Record(Vec::new());
        hooks
            .armed(&mut seen, || {
                ((&w1 * 2.0).exp() * &w2).sum(Kind::Float).backward()
            })
            .unwrap();
        let mut order = seen.0.clone();
        order.sort();
        assert_eq!(order, [0, 1], "each used parameter once: {:?}", seen.0);
        // Disarmed again.
        (&w1 * 3.0).sum(Kind::Float).backward();
        assert_eq!(seen.0.len(), 2);
        let scope = hooks.scope;
        drop(hooks);
        assert!(HOOKS.with(scope, |_| ()).is_none());
    }

    #[test]
    fn the_gradient_is_in_place_when_the_handler_hears_of_it() {
        struct Check(Tensor, Vec<f64>);
        impl GradReady for Check {
            fn ready(&mut self, _: usize) {
                self.1
                    .push(self.0.grad().sum(Kind::Double).double_value(&[]));
            }
        }
        let w = Tensor::ones([4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let hooks = GradHooks::new(&[w.shallow_clone()]).unwrap();
        let mut check = Check(w.shallow_clone(), Vec::new());
        hooks
            .armed(&mut check, || (&w * 5.0).sum(Kind::Float).backward())
            .unwrap();
        hooks
            .armed(&mut check, || (&w * 1.0).sum(Kind::Float).backward())
            .unwrap();
        // 4 * 5 after the first pass, plus 4 * 1 accumulated in the second.
        assert_eq!(check.1, [20.0, 24.0]);
    }

    #[test]
    fn a_handler_that_panics_is_an_error_and_a_non_leaf_is_refused() {
        struct Boom;
        impl GradReady for Boom {
            fn ready(&mut self, _: usize) {
                panic!("boom");
            }
        }
        let w = Tensor::ones([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let hooks = GradHooks::new(&[w.shallow_clone()]).unwrap();
        let err = hooks
            .armed(&mut Boom, || (&w * 2.0).sum(Kind::Float).backward())
            .unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        let derived = &w * 2.0;
        assert!(GradHooks::new(&[derived]).is_err());
        assert!(GradHooks::new(&[Tensor::ones([1], (Kind::Float, Device::Cpu))]).is_err());
    }
}
