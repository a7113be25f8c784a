//! Build script of `kernels`: compiles the C++ autograd functions in `csrc/` against
//! libtorch's headers and puts libtorch's library directory on the rpath (as
//! `scripts/libtorch_rpath.rs` does for the other crates that link libtorch). `LIBTORCH`
//! comes from `.cargo/config.toml` (the wheel in `.venv`) unless exported.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-changed=csrc");
    let libtorch = PathBuf::from(std::env::var("LIBTORCH").expect(
        "LIBTORCH is not set: run scripts/setup.sh (it installs libtorch into .venv, which \
         .cargo/config.toml points at) or export LIBTORCH",
    ));
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}/lib", libtorch.display());
    // The PyPI wheels use the C++11 ABI; a libtorch built otherwise says so here.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .file("csrc/sync_batch_norm.cpp")
        .file("csrc/autocast.cpp")
        .file("csrc/grad_hooks.cpp")
        .include(libtorch.join("include"))
        .include(libtorch.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .warnings(false)
        .compile("kernels_csrc");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        cuda_shim(&libtorch, &abi);
    }
}

/// The GPU build: the CUDA stream shim against the CUDA headers of the wheel's `nvidia`
/// packages (`nvidia/cu13/include`, with `crt/` from `nvidia-cuda-crt`), and libtorch's
/// CUDA libraries linked (their symbols are used, so `--as-needed` keeps them).
fn cuda_shim(libtorch: &std::path::Path, abi: &str) {
    let cuda_include = libtorch.join("../nvidia/cu13/include");
    if !cuda_include.join("crt/host_defines.h").is_file() {
        panic!(
            "the GPU build needs CUDA headers at {} (with crt/ from the PyPI wheel \
             nvidia-cuda-crt==13.0.88): run scripts/setup.sh",
            cuda_include.display()
        );
    }
    cc::Build::new()
        .cpp(true)
        .file("csrc/cuda_stream.cpp")
        .include(libtorch.join("include"))
        .include(libtorch.join("include/torch/csrc/api/include"))
        .include(&cuda_include)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .warnings(false)
        .compile("kernels_cuda");
    println!("cargo:rustc-link-search=native={}/lib", libtorch.display());
    println!("cargo:rustc-link-lib=dylib=c10_cuda");
    println!("cargo:rustc-link-lib=dylib=torch_cuda");
}
