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
        .include(libtorch.join("include"))
        .include(libtorch.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .warnings(false)
        .compile("kernels_csrc");
}
