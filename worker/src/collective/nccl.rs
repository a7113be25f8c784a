//! The GPU build's backend of [`Collective`]: NCCL (loaded at run time through cudarc)
//! over libtorch-owned device memory, enqueued on libtorch's current CUDA stream of the
//! rank's device, so no data goes through the host and the collectives are ordered with
//! the kernels around them.
//!
//! One communicator per round: rank 0's training process makes the unique id
//! ([`unique_id`]) and it reaches every rank over the CPU group,
//! then [`Nccl::init`] joins it
//! without blocking, polled up to the timeout. Every collective is enqueued and then
//! waited for (deferred all-reduces, the gradient buckets issued during backward, run on
//! a libtorch pool stream ordered after the compute stream by an event, so the backward
//! kernels still to come run beside them; all waited for once in `complete`), polling the
//! stream and NCCL's asynchronous error up to the timeout: an NCCL error or a peer that
//! never arrives aborts the communicator (`ncclCommAbort`) and comes back as a
//! [`CollectiveError`], which the training loop hands to the coordinator's recovery path
//! instead of hanging in a CUDA synchronisation.
//!
//! Kinds float32, bfloat16, float16, float64, int64, int32 and uint8. Device tensors are
//! used in place; CPU tensors (batch sizes, flags) are staged through the device.
//! `all_gather` of tensors whose first dimension differs between ranks gathers the sizes
//! first and pads.

use std::time::{Duration, Instant};

use cudarc::nccl::sys::{
    self as nccl, ncclComm_t, ncclDataType_t, ncclRedOp_t, ncclResult_t, ncclUniqueId,
};
use tch::{Kind, Tensor};

use super::{Collective, CollectiveError};

/// Bytes of an NCCL unique id.
pub const UNIQUE_ID_BYTES: usize = 128;

/// How often a wait looks at the stream and the communicator.
const POLL: Duration = Duration::from_micros(50);

fn setup(what: &str) -> CollectiveError {
    CollectiveError::Setup(what.to_string())
}

/// Whether the NCCL and CUDA driver libraries can be loaded (cudarc panics on the first
/// call into a library it cannot find); the error says what is missing.
pub fn check_libraries() -> Result<(), CollectiveError> {
    // SAFETY: these only try to dlopen the libraries.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(setup(
            "the NVIDIA driver library (libcuda.so.1) cannot be loaded: is this a GPU machine \
             with the driver installed?",
        ));
    }
    if !unsafe { nccl::is_culib_present() } {
        return Err(setup(
            "libnccl.so cannot be loaded: start the worker through torchenv (the GPU kit's \
             bin/worker), which gives the wheel's libnccl.so.2 that name, or put a folder \
             with a libnccl.so link to it on LD_LIBRARY_PATH",
        ));
    }
    Ok(())
}

/// A fresh NCCL unique id (made by the process that will be, or speaks for, rank 0).
pub fn unique_id() -> Result<Vec<u8>, CollectiveError> {
    check_libraries()?;
    let id = cudarc::nccl::result::get_uniqueid()
        .map_err(|e| setup(&format!("ncclGetUniqueId failed: {:?}", e.0)))?;
    Ok(id.internal.iter().map(|&c| c as u8).collect())
}

/// One rank's NCCL communicator.
pub struct Nccl {
    comm: ncclComm_t,
    rank: usize,
    world: usize,
    device: usize,
    timeout: Duration,
    aborted: bool,
    /// libtorch pool stream the deferred all-reduces (gradient buckets) run on, beside
    /// the compute stream.
    side: nccl::cudaStream_t,
    /// The event that orders the side stream after the compute stream (made at first use,
    /// recorded again for every bucket).
    order: cudarc::driver::sys::CUevent,
    /// Deferred operations not yet waited for ([`Collective::complete`] waits).
    pending: bool,
}

// SAFETY: the communicator is used from one thread at a time (every call takes `&mut self`);
// NCCL communicators may move between threads.
unsafe impl Send for Nccl {}

impl std::fmt::Debug for Nccl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nccl")
            .field("rank", &self.rank)
            .field("world", &self.world)
            .field("device", &self.device)
            .finish()
    }
}

/// NCCL's default configuration (`NCCL_CONFIG_INITIALIZER` of NCCL 2.28, the torch 2.11
/// wheels' NCCL), non-blocking.
fn non_blocking_config() -> nccl::ncclConfig_t {
    const UNDEF: i32 = i32::MIN;
    nccl::ncclConfig_t {
        size: std::mem::size_of::<nccl::ncclConfig_t>(),
        magic: 0xcafe_beef,
        version: 2 * 10_000 + 28 * 100 + 9,
        blocking: 0,
        cgaClusterSize: UNDEF,
        minCTAs: UNDEF,
        maxCTAs: UNDEF,
        netName: std::ptr::null(),
        splitShare: UNDEF,
        trafficClass: UNDEF,
        commName: std::ptr::null(),
        collnetEnable: UNDEF,
        CTAPolicy: UNDEF,
        shrinkShare: UNDEF,
        nvlsCTAs: UNDEF,
        nChannelsPerNetPeer: UNDEF,
        nvlinkCentricSched: UNDEF,
    }
}

impl Nccl {
    /// Joins the communicator of `id` as `rank` of `world` on CUDA device `device`,
    /// giving up (and aborting) after `timeout`.
    pub fn init(
        id: &[u8],
        rank: usize,
        world: usize,
        device: usize,
        timeout: Duration,
    ) -> Result<Nccl, CollectiveError> {
        check_libraries()?;
        if id.len() != UNIQUE_ID_BYTES {
            return Err(setup(&format!(
                "an NCCL unique id has {UNIQUE_ID_BYTES} bytes, got {}",
                id.len()
            )));
        }
        kernels::cuda::set_device(device).map_err(|e| setup(&e.to_string()))?;
        let side = kernels::cuda::pool_stream(device).map_err(|e| setup(&e.to_string()))?
            as nccl::cudaStream_t;
        let mut unique = ncclUniqueId {
            internal: [0; UNIQUE_ID_BYTES],
        };
        for (dst, &src) in unique.internal.iter_mut().zip(id) {
            *dst = src as std::ffi::c_char;
        }
        let mut config = non_blocking_config();
        let mut comm: ncclComm_t = std::ptr::null_mut();
        // SAFETY: out-pointer to a local, config initialised as NCCL documents.
        let started = unsafe {
            nccl::ncclCommInitRankConfig(&mut comm, world as i32, unique, rank as i32, &mut config)
        };
        let mut me = Nccl {
            comm,
            rank,
            world,
            device,
            timeout,
            aborted: false,
            side,
            order: std::ptr::null_mut(),
            pending: false,
        };
        if !matches!(
            started,
            ncclResult_t::ncclSuccess | ncclResult_t::ncclInProgress
        ) {
            return Err(me.fail(&format!("ncclCommInitRankConfig: {started:?}")));
        }
        let t0 = Instant::now();
        loop {
            match me.async_error() {
                ncclResult_t::ncclSuccess => break,
                ncclResult_t::ncclInProgress if t0.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                ncclResult_t::ncclInProgress => {
                    return Err(me.timeout("forming the NCCL communicator"));
                }
                e => return Err(me.fail(&format!("forming the NCCL communicator: {e:?}"))),
            }
        }
        tracing::info!(rank, world, device, "NCCL communicator formed");
        Ok(me)
    }

    fn async_error(&self) -> ncclResult_t {
        let mut state = ncclResult_t::ncclSuccess;
        // SAFETY: a live communicator, out-pointer to a local.
        let rc = unsafe { nccl::ncclCommGetAsyncError(self.comm, &mut state) };
        if rc != ncclResult_t::ncclSuccess {
            return rc;
        }
        state
    }

    /// Aborts the communicator (every later call fails at once).
    fn abort(&mut self) {
        if !self.aborted && !self.comm.is_null() {
            // SAFETY: a communicator not yet aborted or destroyed.
            unsafe { nccl::ncclCommAbort(self.comm) };
            self.aborted = true;
        }
    }

    fn fail(&mut self, what: &str) -> CollectiveError {
        self.abort();
        CollectiveError::Failed(format!(
            "NCCL on cuda:{} (rank {} of {}): {what}; the communicator was aborted",
            self.device, self.rank, self.world
        ))
    }

    fn timeout(&mut self, what: &str) -> CollectiveError {
        let secs = self.timeout.as_secs();
        self.fail(&format!(
            "{what} did not complete within {secs} s (a peer died or hangs)"
        ))
    }

    fn stream(&mut self) -> Result<nccl::cudaStream_t, CollectiveError> {
        if self.aborted {
            return Err(setup(
                "the NCCL communicator was aborted after an earlier failure",
            ));
        }
        kernels::cuda::current_stream(self.device)
            .map(|s| s as nccl::cudaStream_t)
            .map_err(|e| setup(&e.to_string()))
    }

    /// Waits until NCCL has enqueued what it was given (a non-blocking communicator may
    /// still be busy: `ncclInProgress`) and `stream` has run everything enqueued so far,
    /// watching the communicator's asynchronous error; aborts it on an error or after the
    /// timeout.
    fn wait(&mut self, stream: nccl::cudaStream_t, what: &str) -> Result<(), CollectiveError> {
        let t0 = Instant::now();
        loop {
            match self.async_error() {
                ncclResult_t::ncclSuccess => {
                    // SAFETY: libtorch's live stream of this device.
                    let state = unsafe { cudarc::driver::sys::cuStreamQuery(stream as _) };
                    match state {
                        cudarc::driver::sys::CUresult::CUDA_SUCCESS => return Ok(()),
                        cudarc::driver::sys::CUresult::CUDA_ERROR_NOT_READY => {}
                        e => return Err(self.fail(&format!("{what}: CUDA {e:?}"))),
                    }
                }
                // Not enqueued yet: the stream must not be asked before it is.
                ncclResult_t::ncclInProgress => {}
                e => return Err(self.fail(&format!("{what}: {e:?}"))),
            }
            if t0.elapsed() > self.timeout {
                return Err(self.timeout(what));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until NCCL has taken the last call (a non-blocking communicator answers
    /// `ncclInProgress` until then, and takes no other call meanwhile).
    fn enqueued(&mut self, what: &str) -> Result<(), CollectiveError> {
        let t0 = Instant::now();
        loop {
            match self.async_error() {
                ncclResult_t::ncclSuccess => return Ok(()),
                ncclResult_t::ncclInProgress if t0.elapsed() <= self.timeout => {
                    std::thread::sleep(POLL)
                }
                ncclResult_t::ncclInProgress => return Err(self.timeout(what)),
                e => return Err(self.fail(&format!("{what}: {e:?}"))),
            }
        }
    }

    fn check(&mut self, rc: ncclResult_t, what: &str) -> Result<(), CollectiveError> {
        match rc {
            ncclResult_t::ncclSuccess | ncclResult_t::ncclInProgress => Ok(()),
            e => Err(self.fail(&format!("{what}: {e:?}"))),
        }
    }

    fn checked(&self, t: &Tensor) -> Result<ncclDataType_t, CollectiveError> {
        if t.device() != tch::Device::Cuda(self.device) {
            return Err(CollectiveError::Unsupported(format!(
                "a tensor on {:?}; this rank's NCCL device is cuda:{}",
                t.device(),
                self.device
            )));
        }
        if !t.is_contiguous() {
            return Err(CollectiveError::Unsupported(
                "a non-contiguous tensor".into(),
            ));
        }
        Ok(match t.kind() {
            Kind::Float => ncclDataType_t::ncclFloat32,
            Kind::BFloat16 => ncclDataType_t::ncclBfloat16,
            Kind::Half => ncclDataType_t::ncclFloat16,
            Kind::Double => ncclDataType_t::ncclFloat64,
            Kind::Int64 => ncclDataType_t::ncclInt64,
            Kind::Int => ncclDataType_t::ncclInt32,
            Kind::Uint8 => ncclDataType_t::ncclUint8,
            k => return Err(CollectiveError::Unsupported(format!("kind {k:?}"))),
        })
    }
}

impl Drop for Nccl {
    fn drop(&mut self) {
        if !self.order.is_null() {
            // SAFETY: an event this communicator made; CUDA frees it once it has fired.
            unsafe { cudarc::driver::sys::cuEventDestroy_v2(self.order) };
        }
        if !self.aborted && !self.comm.is_null() {
            // SAFETY: a communicator not aborted; nothing uses it after this.
            unsafe { nccl::ncclCommDestroy(self.comm) };
        }
    }
}

impl Nccl {
    fn on_device(&self, t: &Tensor) -> Tensor {
        t.to_device(tch::Device::Cuda(self.device)).contiguous()
    }

    fn all_reduce_on_device(&mut self, t: &mut Tensor) -> Result<(), CollectiveError> {
        let stream = self.stream()?;
        self.enqueue_all_reduce(t, stream)?;
        self.wait(stream, "all-reduce")
    }

    /// Enqueues an in-place all-reduce of the device tensor `t` on `stream`.
    fn enqueue_all_reduce(
        &mut self,
        t: &Tensor,
        stream: nccl::cudaStream_t,
    ) -> Result<(), CollectiveError> {
        let kind = self.checked(t)?;
        let n = t.numel();
        let ptr = t.data_ptr();
        // SAFETY: in-place on a contiguous device tensor of `n` elements; the caller keeps it
        // until the wait (and libtorch's caching allocator reuses device memory only in
        // stream order, after the reduction).
        let rc = unsafe {
            nccl::ncclAllReduce(ptr, ptr, n, kind, ncclRedOp_t::ncclSum, self.comm, stream)
        };
        self.check(rc, "all-reduce")?;
        self.enqueued("all-reduce")
    }

    /// Makes the side stream wait for what `compute` has been given so far (the bucket's
    /// gradients and their copy into it), without blocking the host.
    fn side_after(&mut self, compute: nccl::cudaStream_t) -> Result<(), CollectiveError> {
        use cudarc::driver::sys::{self as cu, CUresult};
        // SAFETY: out-pointer to a field; the streams are libtorch's live streams of this
        // device; a wait on the event takes the work recorded so far, so recording it again
        // for the next bucket is safe; it is destroyed with the communicator.
        let rc = unsafe {
            let mut rc = CUresult::CUDA_SUCCESS;
            if self.order.is_null() {
                rc = cu::cuEventCreate(
                    &mut self.order,
                    cu::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32,
                );
            }
            if rc == CUresult::CUDA_SUCCESS {
                rc = cu::cuEventRecord(self.order, compute as _);
            }
            if rc == CUresult::CUDA_SUCCESS {
                rc = cu::cuStreamWaitEvent(self.side as _, self.order, 0);
            }
            rc
        };
        match rc {
            CUresult::CUDA_SUCCESS => Ok(()),
            e => Err(self.fail(&format!(
                "ordering the communication stream after the compute stream: CUDA {e:?}"
            ))),
        }
    }
}

/// Tensors on the CPU (control values such as batch sizes and flags) go through the
/// device and come back; device tensors are used in place.
impl Collective for Nccl {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), CollectiveError> {
        if t.device() == tch::Device::Cuda(self.device) && t.is_contiguous() {
            return self.all_reduce_on_device(t);
        }
        let mut staged = self.on_device(t);
        self.all_reduce_on_device(&mut staged)?;
        t.copy_(&staged);
        Ok(())
    }

    fn all_gather(&mut self, t: &Tensor) -> Result<Vec<Tensor>, CollectiveError> {
        let home = t.device();
        let t = self.on_device(t);
        self.checked(&t)?;
        let dev = t.device();
        // The first dimensions of every rank, then the rows padded to the largest.
        let mut sizes = Tensor::zeros([self.world as i64], (Kind::Int64, dev));
        let _ = sizes.narrow(0, self.rank as i64, 1).fill_(t.size()[0]);
        self.all_reduce_on_device(&mut sizes)?;
        let sizes: Vec<i64> = Vec::<i64>::try_from(sizes.to_device(tch::Device::Cpu))
            .map_err(|e| CollectiveError::Unsupported(e.to_string()))?;
        let rows = sizes.iter().copied().max().unwrap_or(0);
        let mut shape = t.size();
        shape[0] = rows;
        let padded = Tensor::zeros(shape.as_slice(), (t.kind(), dev));
        if t.size()[0] > 0 {
            padded.narrow(0, 0, t.size()[0]).copy_(&t);
        }
        let mut all_shape = shape.clone();
        all_shape[0] = rows * self.world as i64;
        let out = Tensor::empty(all_shape.as_slice(), (t.kind(), dev));
        let kind = self.checked(&padded)?;
        let stream = self.stream()?;
        // SAFETY: contiguous device tensors: `padded` of n elements, `out` of world * n.
        let rc = unsafe {
            nccl::ncclAllGather(
                padded.data_ptr(),
                out.data_ptr(),
                padded.numel(),
                kind,
                self.comm,
                stream,
            )
        };
        self.check(rc, "all-gather")?;
        self.wait(stream, "all-gather")?;
        Ok(sizes
            .iter()
            .enumerate()
            .map(|(r, &n)| out.narrow(0, r as i64 * rows, n).to_device(home))
            .collect())
    }

    fn broadcast(&mut self, t: &mut Tensor, root: usize) -> Result<(), CollectiveError> {
        let staged = self.on_device(t);
        let kind = self.checked(&staged)?;
        let stream = self.stream()?;
        let ptr = staged.data_ptr();
        // SAFETY: in-place on a contiguous device tensor that outlives the wait.
        let rc = unsafe {
            nccl::ncclBroadcast(
                ptr,
                ptr,
                staged.numel(),
                kind,
                root as i32,
                self.comm,
                stream,
            )
        };
        self.check(rc, "broadcast")?;
        self.wait(stream, "broadcast")?;
        if staged.data_ptr() != t.data_ptr() {
            t.copy_(&staged);
        }
        Ok(())
    }

    fn barrier(&mut self) -> Result<(), CollectiveError> {
        let mut one = Tensor::ones([1], (Kind::Float, tch::Device::Cuda(self.device)));
        self.all_reduce_sum(&mut one)
    }

    fn reduces_beside_compute(&self) -> bool {
        true
    }

    /// On the side stream, after everything the calling thread's current stream has been
    /// given: the backward kernels still to come run beside the reduction.
    fn all_reduce_sum_deferred(&mut self, t: &mut Tensor) -> Result<(), CollectiveError> {
        if t.device() != tch::Device::Cuda(self.device) || !t.is_contiguous() {
            return self.all_reduce_sum(t);
        }
        let compute = self.stream()?;
        self.side_after(compute)?;
        self.enqueue_all_reduce(t, self.side)?;
        self.pending = true;
        Ok(())
    }

    /// Waits (host side, with the timeout) until the side stream has run every deferred
    /// reduction: the sums are there for any stream, and the tensors the caller holds
    /// were not freed before (they were made on the compute stream, which reuses their
    /// memory only for its own later work).
    fn complete(&mut self) -> Result<(), CollectiveError> {
        if !self.pending {
            return Ok(());
        }
        if self.aborted {
            return Err(setup(
                "the NCCL communicator was aborted after an earlier failure",
            ));
        }
        self.pending = false;
        self.wait(self.side, "deferred all-reduces")
    }
}
