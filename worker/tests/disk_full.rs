//! Full and read-only file systems under the coordinator's database and a local
//! checkpoint store, on small tmpfs mounts (this needs root, or CAP_SYS_ADMIN, to mount:
//! without it the tests say so and skip). A tmpfs cannot be remounted read-only under
//! files open for writing, so "read-only" is a process starting on one. Each write that cannot be made fails with an
//! error naming the path and what to do, changes nothing, and once the disk has room
//! (or is writable) again the work carries on from a state that is intact: the
//! coordinator restarted on its database has every change it acknowledged, the run
//! resumes from its last complete checkpoint.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, status, wait_for, TOKEN, WORKER};
use infra::store::StoreOptions;
use worker::checkpoint::CheckpointStore;

/// A tmpfs mounted for the test; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts `size` (e.g. "1m") at `path`; `None` when mounting is not allowed here.
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(path.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs (root or CAP_SYS_ADMIN needed): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {mode}");
    }

    /// Fills it to the last byte with `filler`.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }

    fn unfill(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn serve(dir: &Path, db: &Path, port: u16) -> Child {
    let config = dir.join("coordinator.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndb_path = \"{}\"\nmin_nodes = 2\nmax_nodes = 2\n",
            db.display()
        ),
    )
    .unwrap();
    Command::new(common::coordinator_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .env("COORDINATOR_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(common::log_file(dir, "coordinator.log"))
        .spawn()
        .unwrap()
}

async fn register(port: u16, name: &str) -> Result<u64, tonic::Status> {
    let mut c = proto::client::connect(&format!("http://127.0.0.1:{port}"), TOKEN)
        .await
        .unwrap();
    let spec = proto::domain::NodeSpec {
        name: name.into(),
        procs: 1,
        config_digest: "cfg".into(),
        ..Default::default()
    };
    c.register_node(proto::wire::RegisterNodeRequest::from(spec))
        .await
        .map(|r| r.into_inner().node_id)
}

#[test]
fn the_coordinator_database_on_a_full_or_read_only_disk_refuses_changes_and_keeps_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("fs"), "1m") else {
        return;
    };
    let db = fs.0.join("coordinator.db");
    let port = free_port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut server = serve(dir.path(), &db, port);
    rt.block_on(wait_for(
        port,
        "the coordinator",
        Duration::from_secs(30),
        |_| true,
    ));
    rt.block_on(register(port, "a")).unwrap();

    let refused = |name: &str, why: &str| {
        let e = rt.block_on(register(port, name)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
        assert!(
            e.message().contains(&db.display().to_string()),
            "names the file: {e}"
        );
        assert!(e.message().contains(why), "{e}");
        // Nothing changed, and reads still work.
        let s = rt.block_on(status(port)).unwrap();
        assert!(s.members.iter().all(|m| m.spec.name != name), "{s:?}");
    };
    fs.fill();
    refused("b", "full");
    fs.unfill();
    rt.block_on(register(port, "b")).unwrap();

    // Killed and restarted on the same file: every acknowledged change is there.
    server.kill().unwrap();
    server.wait().unwrap();
    let mut server = serve(dir.path(), &db, port);
    let s = rt.block_on(wait_for(
        port,
        "the restarted coordinator",
        Duration::from_secs(30),
        |_| true,
    ));
    let mut names: Vec<_> = s.members.iter().map(|m| m.spec.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    server.kill().unwrap();
    server.wait().unwrap();

    // Read-only (a file system cannot turn read-only under open files here: the
    // coordinator starts on one): it stops at once, naming the file, with or without a
    // database there; the database is unchanged once writable again.
    let starts_refused = |why: &str| {
        let log_before = std::fs::read_to_string(dir.path().join("coordinator.log")).unwrap();
        let mut server = serve(dir.path(), &db, port);
        let exit = (0..100).find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            server.try_wait().unwrap()
        });
        let _ = server.kill();
        let _ = server.wait();
        assert!(exit.is_some_and(|s| !s.success()), "{why}: {exit:?}");
        let log = std::fs::read_to_string(dir.path().join("coordinator.log")).unwrap();
        let new = &log[log_before.len()..];
        assert!(new.contains(&db.display().to_string()), "{why}: {new}");
    };
    fs.remount("ro");
    starts_refused("a read-only disk holding the database");
    fs.remount("rw");
    let mut server = serve(dir.path(), &db, port);
    let s = rt.block_on(wait_for(
        port,
        "the coordinator",
        Duration::from_secs(30),
        |_| true,
    ));
    assert_eq!(s.members.len(), 2, "the database is intact");
    server.kill().unwrap();
    server.wait().unwrap();
    std::fs::remove_file(&db).unwrap();
    for extra in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{extra}", db.display()));
    }
    fs.remount("ro");
    starts_refused("a read-only disk without a database");
    fs.remount("rw");
}

/// `worker train` (resuming, or a fresh run stopping at step 4).
fn train(dir: &Path, cfg: &Path, resume: bool) -> (bool, String) {
    let out = Command::new(WORKER)
        .args(["train", "--config"])
        .arg(cfg)
        .args(if resume {
            vec!["--resume"]
        } else {
            vec!["--stop-at-step", "4"]
        })
        .env("OMP_NUM_THREADS", "1")
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_checkpoint_store_on_a_full_or_read_only_disk_fails_naming_it_and_resume_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = common::packed_photos(dir.path()) else {
        return;
    };
    let Some(fs) = Tmpfs::mount(&dir.path().join("fs"), "64m") else {
        return;
    };
    let ckpt = fs.0.join("ckpt");
    let cfg = dir.path().join("config.toml");
    let text = testkit::tiny_config(&data, &ckpt, 8).replace("keep_last = 3", "keep_last = 100");
    std::fs::write(&cfg, text).unwrap();
    // Steps 1-4 on the small disk, then it fills up: the checkpoint of step 6 fails.
    let (ok, log) = train(dir.path(), &cfg, false);
    assert!(ok, "{log}");
    fs.fill();
    let (ok, log) = train(dir.path(), &cfg, true);
    assert!(!ok, "a run whose checkpoint cannot be written fails");
    assert!(
        log.contains(&ckpt.display().to_string()),
        "names the store: {log}"
    );
    assert!(log.contains("No space left on device"), "{log}");
    let listed = |store: &CheckpointStore| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let list = rt.block_on(store.list()).unwrap();
        for r in &list {
            rt.block_on(store.load(r)).unwrap();
        }
        list.iter().map(|r| r.step).collect::<Vec<_>>()
    };
    let store =
        CheckpointStore::open(&ckpt.display().to_string(), &StoreOptions::default()).unwrap();
    assert_eq!(
        listed(&store),
        [2, 4],
        "the cut-off checkpoint does not look complete"
    );

    // Read-only: the same, with its own reason.
    fs.unfill();
    fs.remount("ro");
    let (ok, log) = train(dir.path(), &cfg, true);
    assert!(!ok);
    assert!(
        log.contains(&ckpt.display().to_string()),
        "names the store: {log}"
    );
    assert!(log.contains("Read-only file system"), "{log}");
    // Writable again: the run resumes from step 4 and finishes.
    fs.remount("rw");
    let (ok, log) = train(dir.path(), &cfg, true);
    assert!(ok, "{log}");
    assert_eq!(listed(&store), [2, 4, 6, 8]);
}
