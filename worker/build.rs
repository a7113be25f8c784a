//! Puts libtorch's library directory on the rpath of this crate's binaries (the model
//! code it links needs libtorch), so they run without `LD_LIBRARY_PATH`. `LIBTORCH`
//! comes from `.cargo/config.toml` (the wheel in `.venv`) unless exported.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch}/lib");
    }
}
