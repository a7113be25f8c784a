//! The `torchenv` binary as a GPU node runs it: under another name it starts
//! `../libexec/<name>` with every argument and libtorch on the loader's path; a libtorch of
//! another release is refused before anything runs.

use std::path::{Path, PathBuf};
use std::process::Command;

const TORCHENV: &str = env!("CARGO_BIN_EXE_torchenv");

fn fake_torch(root: &Path, version: &str) -> PathBuf {
    let dir = root.join("torch");
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(dir.join("lib/libtorch_cpu.so"), b"").unwrap();
    std::fs::write(
        dir.join("version.py"),
        format!("__version__ = '{version}'\n"),
    )
    .unwrap();
    dir
}

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

#[test]
fn under_another_name_it_runs_the_program_of_that_name_on_the_libtorch_found() {
    let root = tempfile::tempdir().unwrap();
    let torch = fake_torch(root.path(), torchenv::BUILT_FOR);
    std::fs::create_dir_all(root.path().join("kit/bin")).unwrap();
    std::fs::create_dir_all(root.path().join("kit/libexec")).unwrap();
    let launcher = root.path().join("kit/bin/worker");
    std::fs::copy(TORCHENV, &launcher).unwrap();
    executable(
        &root.path().join("kit/libexec/worker"),
        "#!/bin/sh\necho \"path=$LD_LIBRARY_PATH\"\necho \"libtorch=$LIBTORCH\"\necho \"args=$*\"\n",
    );
    let out = Command::new(&launcher)
        .args(["train", "--config", "a b.toml"])
        .env("LIBTORCH", &torch)
        .env("LD_LIBRARY_PATH", "/already/there")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("path={}/lib:/already/there", torch.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("libtorch={}", torch.display())),
        "{stdout}"
    );
    assert!(stdout.contains("args=train --config a b.toml"), "{stdout}");
}

#[test]
fn a_libtorch_of_another_release_is_refused_naming_both() {
    let root = tempfile::tempdir().unwrap();
    let torch = fake_torch(root.path(), "2.10.0+cu128");
    let marker = root.path().join("ran");
    let out = Command::new(TORCHENV)
        .arg("--libtorch")
        .arg(&torch)
        .args(["exec", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!marker.exists(), "the program ran");
    assert!(stderr.contains("libtorch 2.10.0+cu128"), "{stderr}");
    assert!(
        stderr.contains(&format!("built against libtorch {}", torchenv::BUILT_FOR)),
        "{stderr}"
    );
}

#[test]
fn a_launcher_without_its_program_says_where_it_looked() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("bin")).unwrap();
    let launcher = root.path().join("bin/worker");
    std::fs::copy(TORCHENV, &launcher).unwrap();
    let out = Command::new(&launcher).arg("env").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("libexec/worker is missing"), "{stderr}");
}
