//! [`Timed`]: a collective that counts the host time its caller spends inside collective
//! calls: on a rank that waits for a slower one, that time grows; on the slow rank it
//! does not. The step's own time (its time less this) is what names a straggler.

use std::time::{Duration, Instant};

use tch::Tensor;

use super::{Collective, CollectiveError};

/// Wraps a rank's collective and adds up the time spent in its calls.
pub struct Timed<'a> {
    inner: &'a mut dyn Collective,
    spent: Duration,
}

impl<'a> Timed<'a> {
    /// Times `inner`'s calls from now on.
    pub fn new(inner: &'a mut dyn Collective) -> Self {
        Self {
            inner,
            spent: Duration::ZERO,
        }
    }

    /// Time spent in collective calls since the previous call of this (or since made).
    pub fn take_spent(&mut self) -> Duration {
        std::mem::take(&mut self.spent)
    }

    fn timed<T>(&mut self, call: impl FnOnce(&mut dyn Collective) -> T) -> T {
        let t0 = Instant::now();
        let out = call(&mut *self.inner);
        self.spent += t0.elapsed();
        out
    }
}

impl Collective for Timed<'_> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn world(&self) -> usize {
        self.inner.world()
    }
    fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), CollectiveError> {
        self.timed(|c| c.all_reduce_sum(t))
    }
    fn all_gather(&mut self, t: &Tensor) -> Result<Vec<Tensor>, CollectiveError> {
        self.timed(|c| c.all_gather(t))
    }
    fn broadcast(&mut self, t: &mut Tensor, root: usize) -> Result<(), CollectiveError> {
        self.timed(|c| c.broadcast(t, root))
    }
    fn barrier(&mut self) -> Result<(), CollectiveError> {
        self.timed(|c| c.barrier())
    }
    fn all_reduce_sum_deferred(&mut self, t: &mut Tensor) -> Result<(), CollectiveError> {
        self.timed(|c| c.all_reduce_sum_deferred(t))
    }
    fn complete(&mut self) -> Result<(), CollectiveError> {
        self.timed(|c| c.complete())
    }
    fn reduces_beside_compute(&self) -> bool {
        self.inner.reduces_beside_compute()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A collective whose every call takes 10 ms (a slower peer).
    struct Slow;
    impl Collective for Slow {
        fn rank(&self) -> usize {
            0
        }
        fn world(&self) -> usize {
            2
        }
        fn all_reduce_sum(&mut self, _t: &mut Tensor) -> Result<(), CollectiveError> {
            std::thread::sleep(Duration::from_millis(10));
            Ok(())
        }
        fn all_gather(&mut self, t: &Tensor) -> Result<Vec<Tensor>, CollectiveError> {
            std::thread::sleep(Duration::from_millis(10));
            Ok(vec![t.shallow_clone(), t.shallow_clone()])
        }
        fn broadcast(&mut self, _t: &mut Tensor, _root: usize) -> Result<(), CollectiveError> {
            Ok(())
        }
        fn barrier(&mut self) -> Result<(), CollectiveError> {
            Ok(())
        }
    }

    #[test]
    fn time_inside_calls_is_counted_and_taken_once() {
        let mut slow = Slow;
        let mut timed = Timed::new(&mut slow);
        let mut t = Tensor::from_slice(&[1.0f32]);
        timed.all_reduce_sum(&mut t).unwrap();
        assert_eq!(timed.all_gather(&t).unwrap().len(), 2);
        assert_eq!(timed.world(), 2);
        assert!(timed.take_spent() >= Duration::from_millis(20));
        assert_eq!(timed.take_spent(), Duration::ZERO);
    }
}
