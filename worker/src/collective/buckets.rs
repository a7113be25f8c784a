//! Gradient buckets: the sum over ranks of every parameter's gradient, one collective call
//! per bucket of about `bucket_bytes` instead of one per tensor, in the precision
//! `train.grad_reduce` names; gradients are float32 before and after.
//!
//! Without overlap, [`GradBuckets::reduce`] issues every bucket after back-propagation
//! (all before waiting for the first). With overlap ([`GradBuckets::overlapped`], what
//! PyTorch DDP does), the step's last backward pass runs through
//! [`GradBuckets::backward`]: gradient-ready hooks ([`kernels::grad_hooks`]) count each
//! bucket's parameters, and a bucket whose gradients are all accumulated is issued at once
//! (deferred: on a GPU its all-reduce runs on a communication stream while the backward
//! kernels go on), so the communication can run while back-propagation computes the rest
//! of the pass. Buckets are always issued in the same order on every rank (a bucket waits for
//! the ones before it), as NCCL requires.
//!
//! Bucket order: parameters in reverse name order at first (the layers nearest the loss
//! come late in the name order of both towers); after the first overlapped step every rank
//! takes the order in which rank 0's gradients became ready (broadcast once), so the
//! first buckets are the first complete. Parameters that did not get a gradient on every
//! rank (the logit scale, whose loss term only rank 0 computes) go last, in buckets of
//! their own: in rank 0's order they would sit in a bucket that never completes on the
//! other ranks, which would then issue nothing during backward.

use std::panic::{catch_unwind, AssertUnwindSafe};

use kernels::grad_hooks::{GradHooks, GradReady};
use kernels::KernelsError;
use tch::{Kind, Tensor};

use super::{Collective, CollectiveError, GradReduce};

/// Which parameters go in which bucket, in issue order.
#[derive(Debug)]
struct Layout {
    /// Bucket `b` holds parameters `order[ranges[b].0..ranges[b].1]`.
    order: Vec<usize>,
    ranges: Vec<(usize, usize)>,
    /// The bucket of each parameter.
    bucket_of: Vec<usize>,
}

impl Layout {
    /// Buckets of about `bucket_bytes` over the parameters in `order`, with a bucket
    /// boundary at position `split` (no bucket holds parameters from both sides).
    fn new(order: Vec<usize>, split: usize, bytes: &[usize], bucket_bytes: usize) -> Layout {
        let mut ranges = Vec::new();
        let mut bucket_of = vec![0; bytes.len()];
        let mut start = 0;
        while start < order.len() {
            let (mut end, mut size) = (start, 0);
            let limit = if start < split { split } else { order.len() };
            while end < limit && (end == start || size < bucket_bytes) {
                size += bytes[order[end]];
                bucket_of[order[end]] = ranges.len();
                end += 1;
            }
            ranges.push((start, end));
            start = end;
        }
        Layout {
            order,
            ranges,
            bucket_of,
        }
    }

    fn members(&self, bucket: usize) -> &[usize] {
        let (start, end) = self.ranges[bucket];
        &self.order[start..end]
    }
}

/// One step's progress: the next bucket to issue, the issued ones awaiting their sums.
#[derive(Debug, Default)]
struct Pass {
    /// Parameters of each bucket whose gradients are not ready yet.
    waiting: Vec<usize>,
    next: usize,
    issued: Vec<(usize, Tensor)>,
    /// Parameters in the order their gradients became ready (overlapped passes).
    ready: Vec<usize>,
    error: Option<CollectiveError>,
}

/// The gradient buckets of a model's trained parameters.
#[derive(Debug)]
pub struct GradBuckets {
    params: Vec<Tensor>,
    how: GradReduce,
    /// Each parameter's bytes in a bucket (in `how`'s kind).
    bytes: Vec<usize>,
    bucket_bytes: usize,
    layout: Layout,
    hooks: Option<GradHooks>,
    /// Whether the bucket order still has to be taken from rank 0's first overlapped step.
    learn_order: bool,
    pass: Pass,
}

impl GradBuckets {
    /// Buckets of about `bucket_bytes` over `params`, summed in `how`'s precision, issued
    /// after back-propagation.
    pub fn new(params: &[Tensor], bucket_bytes: usize, how: GradReduce) -> Self {
        let bytes: Vec<usize> = params
            .iter()
            .map(|p| p.numel() * how.kind().elt_size_in_bytes())
            .collect();
        let n = params.len();
        let layout = Layout::new((0..n).rev().collect(), n, &bytes, bucket_bytes);
        GradBuckets {
            params: params.iter().map(Tensor::shallow_clone).collect(),
            how,
            bytes,
            bucket_bytes,
            layout,
            hooks: None,
            learn_order: false,
            pass: Pass::default(),
        }
    }

    /// Issues each bucket during [`GradBuckets::backward`] as soon as its gradients are
    /// ready, when `armed` (there is a sum to overlap: more than one rank, or a one-rank
    /// NCCL group formed to exercise the path).
    pub fn overlapped(mut self, armed: bool) -> Result<Self, KernelsError> {
        if armed {
            self.hooks = Some(GradHooks::new(&self.params)?);
            self.learn_order = true;
        }
        Ok(self)
    }

    /// Whether buckets are issued during [`GradBuckets::backward`].
    pub fn overlaps(&self) -> bool {
        self.hooks.is_some()
    }

    /// Back-propagates `loss`, the step's last backward pass, issuing each bucket as its
    /// gradients become ready when overlapped. [`GradBuckets::reduce`] finishes the step.
    pub fn backward(
        &mut self,
        loss: &Tensor,
        coll: &mut dyn Collective,
    ) -> Result<(), CollectiveError> {
        let Some(hooks) = &self.hooks else {
            loss.backward();
            return Ok(());
        };
        self.pass.waiting = (0..self.layout.ranges.len())
            .map(|b| self.layout.members(b).len())
            .collect();
        let mut issuer = Issuer {
            params: &self.params,
            layout: &self.layout,
            how: self.how,
            pass: &mut self.pass,
            coll,
        };
        let armed = hooks.armed(&mut issuer, || loss.backward());
        if let Err(e) = armed {
            return Err(CollectiveError::Failed(e.to_string()));
        }
        match self.pass.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sums the gradients over the ranks: issues the buckets not yet issued (parameters
    /// without a gradient on this rank, such as the logit scale off rank 0 or everything on
    /// a rank whose local batch was empty, get a zero one first, so every rank sends the
    /// same buckets), waits for all, and writes the sums back.
    pub fn reduce(&mut self, coll: &mut dyn Collective) -> Result<(), CollectiveError> {
        if coll.world() == 1 && self.pass.issued.is_empty() {
            return Ok(());
        }
        let mut pass = std::mem::take(&mut self.pass);
        for p in &self.params {
            if !p.grad().defined() {
                (p.sum(p.kind()) * 0.0).backward();
            }
        }
        while pass.next < self.layout.ranges.len() {
            issue(&self.params, &self.layout, self.how, &mut pass, coll)?;
        }
        coll.complete()?;
        for (bucket, joined) in pass.issued {
            let joined = joined.to_kind(Kind::Float);
            let mut offset = 0;
            tch::no_grad(|| {
                for &i in self.layout.members(bucket) {
                    let g = self.params[i].grad();
                    let n = g.numel() as i64;
                    g.shallow_clone()
                        .copy_(&joined.narrow(0, offset, n).view_as(&g));
                    offset += n;
                }
            });
        }
        if self.learn_order {
            self.learn_order = false;
            self.take_rank0_order(&pass.ready, coll)?;
        }
        Ok(())
    }

    /// Every rank's bucket order becomes the order in which rank 0's gradients became
    /// ready (`ready`) among the parameters that got a gradient on every rank, then the
    /// others in reverse name order, in buckets of their own.
    fn take_rank0_order(
        &mut self,
        ready: &[usize],
        coll: &mut dyn Collective,
    ) -> Result<(), CollectiveError> {
        let n = self.params.len();
        let mut seen = vec![false; n];
        let mut first_seen = Vec::with_capacity(n);
        for &i in ready {
            if !std::mem::replace(&mut seen[i], true) {
                first_seen.push(i);
            }
        }
        // How many ranks saw each parameter's gradient during backward.
        let mine: Vec<f32> = seen.iter().map(|&s| if s { 1.0 } else { 0.0 }).collect();
        let mut ranks_seen = Tensor::from_slice(&mine);
        coll.all_reduce_sum(&mut ranks_seen)?;
        let ranks_seen = Vec::<f32>::try_from(&ranks_seen)
            .map_err(|e| CollectiveError::Mismatch(format!("gradients seen: {e}")))?;
        let everywhere = |i: usize| ranks_seen.get(i).copied() == Some(coll.world() as f32);
        let mut order: Vec<i64> = first_seen
            .iter()
            .filter(|&&i| everywhere(i))
            .map(|&i| i as i64)
            .collect();
        let split = order.len() as i64;
        order.extend((0..n).rev().filter(|&i| !everywhere(i)).map(|i| i as i64));
        order.push(split);
        let mut shared = Tensor::from_slice(&order);
        coll.broadcast(&mut shared, 0)?;
        let mut order: Vec<usize> = Vec::<i64>::try_from(&shared)
            .map_err(|e| CollectiveError::Mismatch(format!("bucket order: {e}")))?
            .into_iter()
            .map(|i| i as usize)
            .collect();
        let split = order.pop().unwrap_or(0);
        let mut check = order.clone();
        check.sort_unstable();
        if check != (0..n).collect::<Vec<_>>() {
            return Err(CollectiveError::Mismatch(
                "rank 0's bucket order is not an order of this rank's parameters".into(),
            ));
        }
        self.layout = Layout::new(order, split.min(n), &self.bytes, self.bucket_bytes);
        tracing::debug!(
            buckets = self.layout.ranges.len(),
            not_on_every_rank = n - split.min(n),
            "gradient buckets ordered as rank 0's gradients became ready"
        );
        Ok(())
    }
}

/// Issues bucket `pass.next` (flattened into one tensor of `how`'s kind) as a deferred
/// all-reduce.
fn issue(
    params: &[Tensor],
    layout: &Layout,
    how: GradReduce,
    pass: &mut Pass,
    coll: &mut dyn Collective,
) -> Result<(), CollectiveError> {
    let bucket = pass.next;
    let flat: Vec<Tensor> = layout
        .members(bucket)
        .iter()
        .map(|&i| params[i].grad().reshape([-1]))
        .collect();
    let mut joined = Tensor::cat(&flat, 0).to_kind(how.kind());
    coll.all_reduce_sum_deferred(&mut joined)?;
    pass.issued.push((bucket, joined));
    pass.next += 1;
    Ok(())
}

/// The gradient-ready handler of an overlapped backward pass.
struct Issuer<'a> {
    params: &'a [Tensor],
    layout: &'a Layout,
    how: GradReduce,
    pass: &'a mut Pass,
    coll: &'a mut dyn Collective,
}

// SAFETY: the parameters' tensors are only read (their gradients), by the one thread
// libtorch runs the hooks on while the owner waits in `backward()`.
unsafe impl Send for Issuer<'_> {}

impl GradReady for Issuer<'_> {
    fn ready(&mut self, index: usize) {
        if self.pass.error.is_some() {
            return;
        }
        self.pass.ready.push(index);
        let bucket = self.layout.bucket_of[index];
        self.pass.waiting[bucket] = self.pass.waiting[bucket].saturating_sub(1);
        let (params, layout, how) = (self.params, self.layout, self.how);
        let (pass, coll) = (&mut *self.pass, &mut *self.coll);
        let result = catch_unwind(AssertUnwindSafe(|| -> Result<(), CollectiveError> {
            while pass.next < layout.ranges.len() && pass.waiting[pass.next] == 0 {
                issue(params, layout, how, pass, coll)?;
            }
            Ok(())
        }));
        self.pass.error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(CollectiveError::Failed(
                "preparing a gradient bucket failed inside backward()".into(),
            )),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn param(n: i64) -> Tensor {
        Tensor::zeros([n], (Kind::Float, Device::Cpu)).set_requires_grad(true)
    }

    #[test]
    fn buckets_fill_to_their_size_in_order_and_every_parameter_has_one() {
        // 4-byte floats: 10, 3, 300 and 2 elements, buckets of about 64 bytes.
        let bytes = [40, 12, 1200, 8];
        let layout = Layout::new(vec![3, 2, 1, 0], 4, &bytes, 64);
        assert_eq!(layout.members(0), [3, 2]);
        assert_eq!(layout.members(1), [1, 0]);
        assert_eq!(layout.bucket_of, [1, 1, 0, 0]);
        let one_each = Layout::new(vec![0, 1, 2], 3, &[100, 100, 100], 64);
        assert_eq!(one_each.ranges.len(), 3);
        // A split starts a bucket even where the size would have gone on.
        let split = Layout::new(vec![0, 1, 2, 3], 3, &[4, 4, 4, 4], 64);
        assert_eq!(split.members(0), [0, 1, 2]);
        assert_eq!(split.members(1), [3]);
    }

    /// Two ranks in one process over the TCP backend: each rank's gradient of
    /// `sum(w_k * x_k)` is its `x_k`, so the reduced gradients are `x` of both ranks summed.
    #[test]
    fn overlapped_buckets_sum_like_buckets_issued_after_backward() {
        let out = super::super::tcp::tests::on_group(2, |rank, c| {
            let r = rank as f32 + 1.0;
            let xs = [
                Tensor::from_slice(&[r; 5]),
                Tensor::from_slice(&[2.0 * r; 3]),
                Tensor::from_slice(&[3.0 * r; 7]),
            ];
            let ps: Vec<Tensor> = xs.iter().map(|x| param(x.numel() as i64)).collect();
            let loss = || {
                ps.iter()
                    .zip(&xs)
                    .map(|(p, x)| (p * x).sum(Kind::Float))
                    .fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |a, b| a + b)
            };
            let mut results = Vec::new();
            for overlap in [false, true] {
                // Buckets of one or two parameters (8 floats = 32 bytes).
                let mut buckets = GradBuckets::new(&ps, 32, GradReduce::Fp32);
                if overlap {
                    buckets = buckets.overlapped(true).unwrap();
                }
                for step in 0..2 {
                    for p in &ps {
                        let mut g = p.grad();
                        if g.defined() {
                            let _ = g.zero_();
                        }
                    }
                    buckets.backward(&loss(), c).unwrap();
                    if overlap {
                        // Issued inside backward(): every bucket, in order.
                        assert_eq!(
                            buckets.pass.next,
                            buckets.layout.ranges.len(),
                            "step {step}"
                        );
                    }
                    buckets.reduce(c).unwrap();
                    results.push(
                        ps.iter()
                            .map(|p| Vec::<f32>::try_from(&p.grad()).unwrap())
                            .collect::<Vec<_>>(),
                    );
                }
                // After the first overlapped step the order is rank 0's ready order.
                assert!(!buckets.learn_order);
            }
            results
        });
        for results in out {
            for grads in &results {
                assert_eq!(grads[0], [3.0; 5]);
                assert_eq!(grads[1], [6.0; 3]);
                assert_eq!(grads[2], [9.0; 7]);
            }
        }
    }

    /// Like the logit scale: a parameter only rank 0's loss uses. Rank 0's gradients
    /// get ready with it first; the other ranks must still issue their buckets of the
    /// other parameters inside backward.
    #[test]
    fn a_parameter_only_rank_0_has_a_gradient_for_does_not_hold_back_the_others_buckets() {
        let out = super::super::tcp::tests::on_group(2, |rank, c| {
            let (w, scale) = (param(5), param(1));
            let x = Tensor::from_slice(&[rank as f32 + 1.0; 5]);
            let params = [w.shallow_clone(), scale.shallow_clone()];
            // One bucket would hold both.
            let mut buckets = GradBuckets::new(&params, 1 << 10, GradReduce::Fp32)
                .overlapped(true)
                .unwrap();
            let mut issued_in_backward = Vec::new();
            for _ in 0..3 {
                for p in &params {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.zero_();
                    }
                }
                let mut loss = (&w * &x).sum(Kind::Float);
                if rank == 0 {
                    loss += (&scale * 4.0).sum(Kind::Float);
                }
                buckets.backward(&loss, c).unwrap();
                issued_in_backward.push(buckets.pass.next);
                buckets.reduce(c).unwrap();
            }
            let last = buckets.layout.ranges.len() - 1;
            let grads = [w.grad(), scale.grad()].map(|g| Vec::<f32>::try_from(&g).unwrap());
            (
                issued_in_backward,
                buckets.layout.members(last).to_vec(),
                grads,
            )
        });
        for (rank, (issued, last_bucket, grads)) in out.into_iter().enumerate() {
            assert_eq!(
                last_bucket,
                [1],
                "rank {rank}: the scale in a bucket of its own"
            );
            assert!(
                issued[1..].iter().all(|&n| n >= 1),
                "rank {rank} issued {issued:?} buckets inside backward"
            );
            assert_eq!(grads[0], [3.0; 5]);
            assert_eq!(grads[1], [4.0]);
        }
    }

    #[test]
    fn a_peer_that_is_gone_during_an_overlapped_backward_is_its_error() {
        let out = super::super::tcp::tests::on_group(2, |rank, c| {
            if rank == 1 {
                return None; // leaves before the step
            }
            let p = param(4);
            let mut buckets = GradBuckets::new(std::slice::from_ref(&p), 1 << 10, GradReduce::Fp32)
                .overlapped(true)
                .unwrap();
            let loss = (&p * 2.0).sum(Kind::Float);
            Some(buckets.backward(&loss, c).unwrap_err())
        });
        let err = out[0].as_ref().unwrap();
        assert!(
            matches!(err, CollectiveError::PeerGone { rank: 1, .. }),
            "{err}"
        );
    }
}
