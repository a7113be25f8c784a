//! Records which libtorch the workspace is built against (`LIBTORCH`, from
//! `.cargo/config.toml` unless exported): its folder, the build's fallback at run time, and
//! its version, the one every binary linking it needs at run time.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let dir = std::env::var("LIBTORCH").unwrap_or_default();
    let dir = std::fs::canonicalize(&dir)
        .map(|p| p.display().to_string())
        .unwrap_or(dir);
    for f in VERSION_FILES {
        println!("cargo:rerun-if-changed={dir}/{f}");
    }
    let version = version_of_dir(std::path::Path::new(&dir)).unwrap_or_default();
    println!("cargo:rustc-env=TORCHENV_BUILD_LIBTORCH={dir}");
    println!("cargo:rustc-env=TORCHENV_BUILT_FOR={version}");
}

include!("src/version_text.rs");
