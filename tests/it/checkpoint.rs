//! Checkpoints on the local file system and on a real S3-compatible server: save, list
//! and load round trips, retention, incomplete and damaged checkpoints (never listed or
//! never loaded), a writer process killed with SIGKILL in the middle of a large
//! checkpoint, and the refusal to resume under another configuration.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use infra::store::{RetryPolicy, StoreOptions};
use object_store::{ObjectStoreExt, PutPayload};
use worker::checkpoint::{
    dir_name, Checkpoint, CheckpointError, CheckpointStore, DataPosition, TrainState, CONFIG_FILE,
    FORMAT_VERSION, MARKER_FILE, OPTIMIZER_FILE, STATE_FILE, WEIGHTS_FILE,
};
use worker::config::Config;

use crate::s3::S3Server;
use crate::support;

const DIGEST: &str = "d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1";

/// Bytes that differ with `seed` and position.
fn bytes(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes()[..(len - v.len()).min(8)]);
    }
    Bytes::from(v)
}

fn checkpoint(step: u64, digest: &str, weights_len: usize, optimizer_len: usize) -> Checkpoint {
    Checkpoint {
        weights: bytes(step, weights_len),
        optimizer: Some(bytes(step + 1000, optimizer_len)),
        state: TrainState {
            format_version: FORMAT_VERSION,
            step,
            epoch: step / 10,
            data: DataPosition {
                epoch: step / 10,
                consumed: step * 64,
            },
            rng_state: bytes(step + 2000, 32).to_vec(),
            config_digest: digest.to_string(),
            saved_at_unix_ms: 1_700_000_000_000 + step,
        },
        config: Some(Bytes::from(format!("# the config of step {step}\n"))),
    }
}

fn small(step: u64) -> Checkpoint {
    checkpoint(step, DIGEST, 4096 + step as usize, 8192)
}

fn local_store(dir: &Path) -> CheckpointStore {
    CheckpointStore::open(dir.to_str().unwrap(), &StoreOptions::default()).unwrap()
}

async fn steps(store: &CheckpointStore) -> Vec<u64> {
    store.list().await.unwrap().iter().map(|r| r.step).collect()
}

fn dirs_on_disk(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn local_save_list_load_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local_store(&tmp.path().join("ckpts"));
    assert!(store.latest().await.unwrap().is_none());
    assert!(store.load_for_resume(DIGEST).await.unwrap().is_none());

    let saved: Vec<Checkpoint> = [20, 10].into_iter().map(small).collect();
    for ck in &saved {
        let r = store.save(ck).await.unwrap();
        assert_eq!(r.name, dir_name(ck.state.step));
        assert_eq!(r.marker.files.len(), 4);
    }
    assert_eq!(steps(&store).await, [10, 20]);
    for r in store.list().await.unwrap() {
        let ck = store.load(&r).await.unwrap();
        let original = saved.iter().find(|c| c.state.step == r.step).unwrap();
        assert_eq!(&ck, original);
    }
    let resumed = store.load_for_resume(DIGEST).await.unwrap().unwrap();
    assert_eq!(resumed, saved[0]);
    let mut expected = [
        MARKER_FILE,
        WEIGHTS_FILE,
        OPTIMIZER_FILE,
        STATE_FILE,
        CONFIG_FILE,
    ]
    .map(String::from);
    expected.sort();
    assert_eq!(
        dirs_on_disk(&tmp.path().join("ckpts/step-000000020")),
        expected
    );
}

#[tokio::test]
async fn saving_a_complete_step_again_keeps_it_and_an_incomplete_one_is_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local_store(tmp.path());
    let first = small(7);
    let saved = store.save(&first).await.unwrap();
    let marker = std::fs::read(tmp.path().join("step-000000007").join(MARKER_FILE)).unwrap();
    // The same step again (a stop right after a resume): the complete one is not touched.
    let again = store.save(&checkpoint(7, DIGEST, 10, 20)).await.unwrap();
    assert_eq!((again.step, &again.url), (saved.step, &saved.url));
    let r = store.latest().await.unwrap().unwrap();
    assert_eq!(store.list().await.unwrap().len(), 1);
    assert_eq!(store.load(&r).await.unwrap(), first);
    let after = std::fs::read(tmp.path().join("step-000000007").join(MARKER_FILE)).unwrap();
    assert_eq!(after, marker, "the marker was rewritten");
    // Another config's checkpoint at that step is an error, and stays.
    let other = checkpoint(7, &"e".repeat(64), 10, 20);
    let err = store.save(&other).await.unwrap_err();
    assert!(
        matches!(err, CheckpointError::DigestMismatch { .. }),
        "{err}"
    );
    assert_eq!(store.load(&r).await.unwrap(), first);
    // A step whose write died before its marker is cleared and written anew.
    std::fs::create_dir_all(tmp.path().join("step-000000009")).unwrap();
    std::fs::write(
        tmp.path().join("step-000000009").join(WEIGHTS_FILE),
        b"partial",
    )
    .unwrap();
    let nine = small(9);
    store.save(&nine).await.unwrap();
    let r = store.latest().await.unwrap().unwrap();
    assert_eq!(store.load(&r).await.unwrap(), nine);
}

#[tokio::test]
async fn retention_keeps_the_last_k_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local_store(tmp.path()).keep_last(2);
    for step in 1..=5 {
        store.save(&small(step * 100)).await.unwrap();
    }
    assert_eq!(steps(&store).await, [400, 500]);
    assert_eq!(dirs_on_disk(tmp.path()), [dir_name(400), dir_name(500)]);
}

#[tokio::test]
async fn checkpoint_without_marker_is_never_listed_and_is_cleaned_later() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local_store(tmp.path());
    store.save(&small(1)).await.unwrap();
    // A writer died after its files and before the marker, at step 2 and at step 9.
    for step in [2, 9] {
        let dir = tmp.path().join(dir_name(step));
        std::fs::create_dir(&dir).unwrap();
        let ck = small(step);
        std::fs::write(dir.join(WEIGHTS_FILE), &ck.weights).unwrap();
        std::fs::write(dir.join(OPTIMIZER_FILE), ck.optimizer.unwrap()).unwrap();
        std::fs::write(dir.join(STATE_FILE), serde_json::to_vec(&ck.state).unwrap()).unwrap();
    }
    assert_eq!(steps(&store).await, [1]);
    let resumed = store.load_for_resume(DIGEST).await.unwrap().unwrap();
    assert_eq!(resumed.state.step, 1);

    // Committing step 5 removes the leftover older than it, not the newer one (which
    // may be a writer still at work).
    store.save(&small(5)).await.unwrap();
    assert_eq!(steps(&store).await, [1, 5]);
    assert_eq!(
        dirs_on_disk(tmp.path()),
        [dir_name(1), dir_name(5), dir_name(9)]
    );
}

#[tokio::test]
async fn file_truncated_after_the_marker_is_not_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local_store(tmp.path());
    store.save(&small(1)).await.unwrap();
    store.save(&small(2)).await.unwrap();
    let weights = tmp.path().join(dir_name(2)).join(WEIGHTS_FILE);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&weights)
        .unwrap();
    f.set_len(100).unwrap();
    assert_eq!(steps(&store).await, [1]);
    assert_eq!(
        store.load_for_resume(DIGEST).await.unwrap().unwrap(),
        small(1)
    );
}

#[tokio::test]
async fn same_size_corruption_is_never_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local_store(tmp.path());
    store.save(&small(1)).await.unwrap();
    store.save(&small(2)).await.unwrap();
    let opt = tmp.path().join(dir_name(2)).join(OPTIMIZER_FILE);
    let mut body = std::fs::read(&opt).unwrap();
    body[100] ^= 0xff;
    std::fs::write(&opt, body).unwrap();

    let latest = store.latest().await.unwrap().unwrap();
    assert_eq!(latest.step, 2);
    let err = store.load(&latest).await.unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(OPTIMIZER_FILE), "{err}");
    // Resuming falls back to the newest checkpoint that verifies.
    assert_eq!(
        store.load_for_resume(DIGEST).await.unwrap().unwrap(),
        small(1)
    );
}

#[tokio::test]
async fn resuming_under_another_config_is_refused_naming_both_digests() {
    let root = support::repo_root().join("configs");
    let paper = Config::load(&root.join("paper.toml")).unwrap();
    let small_cfg = Config::load(&root.join("cpu-small.toml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = local_store(tmp.path());
    store
        .save(&checkpoint(3, paper.digest.as_str(), 100, 100))
        .await
        .unwrap();

    let err = store
        .load_for_resume(small_cfg.digest.as_str())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CheckpointError::DigestMismatch { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains(paper.digest.as_str()), "{msg}");
    assert!(msg.contains(small_cfg.digest.as_str()), "{msg}");
    assert!(msg.contains(&dir_name(3)), "{msg}");
    assert!(msg.contains("checkpoint.url"), "{msg}");
    let ok = store.load_for_resume(paper.digest.as_str()).await.unwrap();
    assert_eq!(ok.unwrap().state.step, 3);
}

/// Directory the killed writer process writes into; its presence makes
/// [`killed_writer_process`] act.
const CRASH_DIR_ENV: &str = "CHECKPOINT_CRASH_WRITER_DIR";
const CRASH_WEIGHTS_BYTES: usize = 48 << 20;
const CRASH_OPTIMIZER_BYTES: usize = 160 << 20;

/// The writer process of [`writer_killed_mid_write_leaves_only_the_previous_checkpoint`]:
/// the test binary re-runs itself with this test selected and the directory in the
/// environment.
#[tokio::test]
#[ignore = "runs only as the child process of the SIGKILL test"]
async fn killed_writer_process() {
    let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
        return;
    };
    let store = local_store(Path::new(&dir));
    store.save(&small(1)).await.unwrap();
    let big = checkpoint(2, DIGEST, CRASH_WEIGHTS_BYTES, CRASH_OPTIMIZER_BYTES);
    store.save(&big).await.unwrap();
}

#[tokio::test]
async fn writer_killed_mid_write_leaves_only_the_previous_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "checkpoint::killed_writer_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR_ENV, tmp.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the large checkpoint's directory appears, then kill at once.
    let second = tmp.path().join(dir_name(2));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !second.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("writer exited ({status}) before its second checkpoint began");
        }
        assert!(Instant::now() < deadline, "writer never began step 2");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !second.join(MARKER_FILE).exists(),
        "the writer finished before it was killed; the test proves nothing"
    );

    let store = local_store(tmp.path());
    assert_eq!(steps(&store).await, [1]);
    let resumed = store.load_for_resume(DIGEST).await.unwrap().unwrap();
    assert_eq!(resumed, small(1));
    // The next commit clears what the killed writer left.
    store.save(&small(3)).await.unwrap();
    assert!(!second.exists());
    assert_eq!(steps(&store).await, [1, 3]);
}

#[tokio::test]
async fn s3_round_trip_retention_and_damaged_checkpoints() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket("ckpts");
    let mut opts = server.options();
    opts.retry = RetryPolicy::fast(2);
    let url = "s3://ckpts/runs/a";
    let store = CheckpointStore::open(url, &opts).unwrap().keep_last(2);
    assert!(store.latest().await.unwrap().is_none());

    for step in [10, 20, 30] {
        store.save(&small(step)).await.unwrap();
    }
    assert_eq!(steps(&store).await, [20, 30]);
    let r = store.latest().await.unwrap().unwrap();
    assert_eq!(r.url, "s3://ckpts/runs/a/step-000000030");
    assert_eq!(store.load(&r).await.unwrap(), small(30));

    // Step 10 was pruned object by object.
    let (raw, prefix) = infra::store::open_url(url, &opts).unwrap();
    let left = raw.list_with_delimiter(Some(&prefix)).await.unwrap();
    let names: Vec<_> = left
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename())
        .collect();
    assert_eq!(names, [dir_name(20), dir_name(30)]);
    // A multipart upload loads back byte-exact.
    let big = checkpoint(40, DIGEST, (64 << 20) + 12345, 1000);
    let r = store.save(&big).await.unwrap();
    assert_eq!(store.load(&r).await.unwrap(), big);
    assert_eq!(steps(&store).await, [30, 40]);

    // Files without a marker at step 50: not listed.
    let p50 = prefix.clone().join(dir_name(50).as_str());
    raw.put(
        &p50.clone().join(WEIGHTS_FILE),
        PutPayload::from(small(50).weights),
    )
    .await
    .unwrap();
    assert_eq!(steps(&store).await, [30, 40]);
    // Step 40's weights replaced by a shorter object after its marker: not listed.
    let w40 = prefix
        .clone()
        .join(dir_name(40).as_str())
        .join(WEIGHTS_FILE);
    raw.put(&w40, PutPayload::from(Bytes::from_static(b"short")))
        .await
        .unwrap();
    assert_eq!(steps(&store).await, [30]);
    assert_eq!(
        store.load_for_resume(DIGEST).await.unwrap().unwrap(),
        small(30)
    );
    let err = store.load_for_resume("0ther").await.unwrap_err();
    assert!(
        err.to_string().contains("0ther") && err.to_string().contains(DIGEST),
        "{err}"
    );
}

#[tokio::test]
async fn model_only_and_config_less_checkpoints_load_what_they_have() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local_store(tmp.path());
    // Written before checkpoints kept their config: no config file, and none loaded.
    let old = Checkpoint {
        config: None,
        ..small(1)
    };
    let r = store.save(&old).await.unwrap();
    assert!(r.marker.files.iter().all(|f| f.name != CONFIG_FILE));
    assert_eq!(store.load(&r).await.unwrap(), old);
    // A model-only checkpoint (exported): no optimiser state; it loads without one and
    // cannot be resumed.
    let model_only = Checkpoint {
        optimizer: None,
        ..small(2)
    };
    let r = store.save(&model_only).await.unwrap();
    assert!(r.marker.files.iter().all(|f| f.name != OPTIMIZER_FILE));
    assert_eq!(store.load(&r).await.unwrap(), model_only);
    // The model alone of a full checkpoint: weights, state and config, no optimiser.
    let full = small(3);
    let r = store.save(&full).await.unwrap();
    let model = store.load_model(&r).await.unwrap();
    assert_eq!(
        model,
        Checkpoint {
            optimizer: None,
            ..full.clone()
        }
    );
    // A config changed after the commit is refused like any other file.
    std::fs::write(
        tmp.path().join(dir_name(3)).join(CONFIG_FILE),
        b"# the config of step 9\n",
    )
    .unwrap();
    let err = store.load_model(&r).await.unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(CONFIG_FILE), "{err}");
}
