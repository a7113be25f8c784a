//! Build script shared by the crates whose binaries link libtorch (`kernels`, `worker`,
//! `tests`): puts libtorch's library directory on their rpath, so test binaries and tools
//! run without `LD_LIBRARY_PATH`. `LIBTORCH` comes from `.cargo/config.toml` (the wheel in
//! `.venv`) unless exported.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch}/lib");
    }
}
