//! `worker env`: what this worker runs on, for checking a node before a job: the libtorch
//! loaded (folder and version, against the one it was built for), the CUDA devices libtorch
//! sees, and in the GPU build whether NCCL loads and which version it is.

/// Prints the report; fails when the GPU build finds no usable NCCL library.
pub fn run() -> anyhow::Result<()> {
    let built = torchenv::BUILT_FOR;
    match torchenv::loaded() {
        Some((dir, version)) => println!(
            "libtorch: {version} from {} (built against {built})",
            dir.display()
        ),
        None => println!("libtorch: not found among the loaded libraries (built against {built})"),
    }
    let devices = tch::Cuda::device_count();
    if tch::Cuda::is_available() {
        println!("CUDA: available, {devices} device(s)");
    } else {
        println!("CUDA: not available ({devices} devices visible to libtorch)");
    }
    gpu_build()
}

#[cfg(feature = "cuda")]
fn gpu_build() -> anyhow::Result<()> {
    println!("build: GPU (--features cuda)");
    // SAFETY: only tries to dlopen the library.
    if !unsafe { cudarc::nccl::sys::is_culib_present() } {
        println!("NCCL: libnccl.so does not load");
        anyhow::bail!(
            "libnccl.so does not load: start the worker through torchenv (the GPU kit's \
             bin/worker), which gives the NCCL beside the torch package that name"
        );
    }
    let v = cudarc::nccl::result::get_nccl_version()
        .map_err(|e| anyhow::anyhow!("ncclGetVersion failed: {:?}", e.0))?;
    println!(
        "NCCL: {}.{}.{} (libnccl.so loads)",
        v / 10000,
        v / 100 % 100,
        v % 100
    );
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn gpu_build() -> anyhow::Result<()> {
    println!("build: CPU only (no CUDA, no NCCL)");
    Ok(())
}
