//! Build script shared by the crates whose binaries link libtorch (`worker`, `tests`;
//! `kernels/build.rs` does the same): puts libtorch's library directory on their rpath, so
//! test binaries and tools run without `LD_LIBRARY_PATH`. `LIBTORCH` comes from
//! `.cargo/config.toml` (the wheel in `.venv`) unless exported.
//!
//! With the crate's `cuda` feature (the GPU build) it also links libtorch's CUDA library
//! for real: rustc links with `--as-needed`, which would drop `libtorch_cuda.so` (nothing
//! calls it by name; its static initialisers register the CUDA kernels), leaving a binary
//! that never sees a GPU. The wheel's NVIDIA libraries are named for the linker to check
//! against (`-rpath-link`); at run time `libtorch_cuda.so` finds them through its own rpath.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch}/lib");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        for dir in ["cu13", "cudnn", "nccl", "nvshmem", "cusparselt"] {
            println!("cargo:rustc-link-arg=-Wl,-rpath-link,{libtorch}/../nvidia/{dir}/lib");
        }
        // cudarc dlopens libnccl.so (a link scripts/setup.sh makes next to libnccl.so.2).
        println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch}/../nvidia/nccl/lib");
        println!("cargo:rustc-link-arg=-L{libtorch}/lib");
        println!(
            "cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,-lc10_cuda,-ltorch,--as-needed"
        );
    }
}
