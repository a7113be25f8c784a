use super::*;

/// A fake libtorch folder: `lib/libtorch_cpu.so` (and `libtorch_cuda.so`), `version.py`.
fn fake_torch(root: &Path, version: &str, cuda: bool) -> PathBuf {
    let dir = root.join("site-packages/torch");
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(dir.join("lib/libtorch_cpu.so"), b"").unwrap();
    if cuda {
        std::fs::write(dir.join("lib/libtorch_cuda.so"), b"").unwrap();
    }
    std::fs::write(
        dir.join("version.py"),
        format!("from typing import Optional\n\n__all__ = ['__version__']\n__version__ = '{version}'\ndebug = False\n"),
    )
    .unwrap();
    dir
}

fn found(source: Source, dir: &str, version: &str) -> Candidate {
    Candidate {
        source,
        dir: Some(PathBuf::from(dir)),
        probe: Ok(Probe {
            version: version.into(),
            cuda: true,
        }),
    }
}

#[test]
fn versions_are_read_from_version_py_and_build_version() {
    let py = "__all__ = ['__version__']\n__version__ = '2.11.0+cu130'\ngit_version = 'abc'\n";
    assert_eq!(version_in(py).as_deref(), Some("2.11.0+cu130"));
    assert_eq!(version_in("2.11.0+cpu\n").as_deref(), Some("2.11.0+cpu"));
    assert_eq!(version_in("not a version\n"), None);
    assert_eq!(version_in(""), None);
}

#[test]
fn a_release_matches_whatever_its_build_variant() {
    assert!(compatible("2.11.0+cu130", "2.11.0+cu130"));
    assert!(compatible("2.11.0", "2.11.0+cu130"));
    assert!(!compatible("2.13.0+cu130", "2.11.0+cu130"));
    assert!(!compatible("2.11.1", "2.11.0"));
}

#[test]
fn python_torch_comes_before_the_build_and_mismatches_are_passed_over() {
    let c = vec![
        Candidate::absent(Source::Setting("LIBTORCH"), "not set"),
        found(
            Source::Python("python3".into()),
            "/node/torch",
            "2.11.0+cu130",
        ),
        found(Source::Build, "/build/torch", "2.11.0+cu130"),
    ];
    let lib = choose(c, "2.11.0+cu130").unwrap();
    assert_eq!(lib.dir, Path::new("/node/torch"));

    let c = vec![
        Candidate::absent(Source::Setting("LIBTORCH"), "not set"),
        found(Source::Python("python3".into()), "/node/torch", "2.10.0"),
        found(Source::Build, "/build/torch", "2.11.0"),
    ];
    assert_eq!(choose(c, "2.11.0").unwrap().source, Source::Build);
}

#[test]
fn an_explicit_setting_that_does_not_match_is_an_error_naming_both_versions() {
    let c = vec![
        found(Source::Setting("LIBTORCH"), "/opt/libtorch", "2.13.0+cu130"),
        found(
            Source::Python("python3".into()),
            "/node/torch",
            "2.11.0+cu130",
        ),
    ];
    let err = choose(c, "2.11.0+cu130").unwrap_err().to_string();
    assert!(err.contains("built against libtorch 2.11.0+cu130"), "{err}");
    assert!(
        err.contains("LIBTORCH (/opt/libtorch): libtorch 2.13.0+cu130"),
        "{err}"
    );
    assert!(err.contains("torch==2.11.0"), "{err}");
}

#[test]
fn when_nothing_matches_every_place_looked_is_listed() {
    let c = vec![
        Candidate::absent(Source::Setting("LIBTORCH"), "not set"),
        Candidate::absent(Source::Python("python3".into()), "no torch package"),
        Candidate {
            source: Source::Build,
            dir: Some("/gone/torch".into()),
            probe: Err("missing".into()),
        },
    ];
    let err = choose(c, "2.11.0").unwrap_err().to_string();
    for line in [
        "LIBTORCH: not set",
        "the PyTorch of python3: no torch package",
        "the build's libtorch (/gone/torch): missing",
    ] {
        assert!(err.contains(line), "{line:?} not in {err}");
    }
}

#[test]
fn a_folder_is_probed_for_its_libraries_and_version() {
    let root = tempfile::tempdir().unwrap();
    let dir = fake_torch(root.path(), "2.11.0+cu130", true);
    assert_eq!(
        probe_dir(&dir),
        Ok(Probe {
            version: "2.11.0+cu130".into(),
            cuda: true
        })
    );
    std::fs::remove_file(dir.join("version.py")).unwrap();
    std::fs::write(dir.join("build-version"), "2.11.0+cpu\n").unwrap();
    assert_eq!(probe_dir(&dir).unwrap().version, "2.11.0+cpu");
    std::fs::remove_file(dir.join("lib/libtorch_cpu.so")).unwrap();
    assert!(probe_dir(&dir).unwrap_err().contains("libtorch_cpu.so"));
    assert_eq!(probe_dir(&root.path().join("nope")).unwrap_err(), "missing");
}

#[test]
fn python_is_asked_where_its_torch_is_without_importing_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = fake_torch(root.path(), "2.11.0", false);
    // A torch package whose import would fail: find_spec must not import it.
    std::fs::write(dir.join("__init__.py"), "raise SystemExit(3)\n").unwrap();
    let python = root.path().join("python3");
    std::fs::write(
        &python,
        format!(
            "#!/bin/sh\nexec python3 -c \"import sys; sys.path.append('{}'); exec(sys.argv[1])\" \"$2\"\n",
            root.path().join("site-packages").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&python, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert_eq!(python_torch_dir(&python).unwrap(), dir);
    let err = python_torch_dir(&root.path().join("no-python")).unwrap_err();
    assert!(err.contains("cannot run it"), "{err}");
}

#[test]
fn nccl_gets_the_name_cudarc_loads_without_touching_the_package() {
    let root = tempfile::tempdir().unwrap();
    let dir = fake_torch(root.path(), "2.11.0", true);
    let nccl = root.path().join("site-packages/nvidia/nccl/lib");
    std::fs::create_dir_all(&nccl).unwrap();
    std::fs::write(nccl.join("libnccl.so.2"), b"").unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::env::set_var("XDG_CACHE_HOME", cache.path());
    let lib = Libtorch {
        source: Source::Build,
        dir: dir.clone(),
        probe: probe_dir(&dir).unwrap(),
    };
    let env = environment(&lib).unwrap();
    let path = &env.iter().find(|(k, _)| *k == "LD_LIBRARY_PATH").unwrap().1;
    let dirs: Vec<PathBuf> = std::env::split_paths(path).collect();
    assert_eq!(dirs[0], dir.join("lib"));
    assert!(dirs[1].starts_with(cache.path()), "{dirs:?}");
    let link = dirs[1].join("libnccl.so");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        nccl.join("libnccl.so.2").canonicalize().unwrap()
    );
    assert!(!nccl.join("libnccl.so").exists());
    // A second start reuses the link.
    environment(&lib).unwrap();
    // A package that has the name already is used as it is.
    std::os::unix::fs::symlink("libnccl.so.2", nccl.join("libnccl.so")).unwrap();
    let env = environment(&lib).unwrap();
    let path = &env.iter().find(|(k, _)| *k == "LD_LIBRARY_PATH").unwrap().1;
    assert_eq!(
        std::env::split_paths(path).nth(1).unwrap(),
        dir.join("../nvidia/nccl/lib")
    );
}

#[test]
fn this_test_program_has_no_libtorch_loaded() {
    assert_eq!(loaded(), None);
    assert!(check_loaded().unwrap().is_none());
}
