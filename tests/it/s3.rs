//! The S3 path against a real S3-compatible server (moto, from the project's Python
//! environment) started by the test on a free port and killed when the test ends: pack to
//! `s3://` with an endpoint override, read back byte-exact, verify, and get storage errors
//! (not hangs) for missing objects and unreachable endpoints.

use dataloader::shard::{Compression, Dataset, ShardError};
use infra::store::{RetryPolicy, StoreOptions};

use crate::shards::{assert_round_trip, camera_photos, pack_photo_folder};
pub(crate) use testkit::s3::S3Server;

#[tokio::test]
async fn pack_to_s3_and_read_back() {
    let Some(photos) = camera_photos(40) else {
        return;
    };
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket("datasets");
    let tmp = tempfile::tempdir().unwrap();
    let total: u64 = photos.iter().map(|p| p.metadata().unwrap().len()).sum();
    let url = "s3://datasets/cams/v1";
    // Shards larger than one 8 MiB upload part, so multipart uploads have several parts.
    let shard_bytes = (total * 3 / 4).max(9 << 20);
    let packed = pack_photo_folder(
        tmp.path(),
        &photos,
        url,
        (Compression::Zstd, shard_bytes),
        Some(server.options()),
    )
    .await;
    let (tags, m) = (packed.tags, packed.manifest);
    assert_eq!(m.samples, 40);
    assert!(m.shards.len() >= 2, "{} shards", m.shards.len());

    let ds = Dataset::open(url, &server.options()).await.unwrap();
    assert_eq!(ds.manifest(), &m);
    assert_round_trip(&ds, &photos, &tags).await;
    for shard in 0..m.shards.len() {
        let check = ds.verify_shard(shard).await.unwrap();
        assert!(check.is_ok(), "{check:?}");
    }

    // No manifest under another prefix; a missing shard object is a storage error.
    let err = Dataset::open("s3://datasets/cams/none", &server.options())
        .await
        .unwrap_err();
    assert!(matches!(err, ShardError::NoManifest { .. }), "{err}");
    let (store, prefix) = infra::store::open_url(url, &server.options()).unwrap();
    use object_store::ObjectStoreExt;
    store
        .delete(&prefix.clone().join(m.shards[1].name.as_str()))
        .await
        .unwrap();
    let ds = Dataset::open(url, &server.options()).await.unwrap();
    let err = ds.fetch_sample(1, 0).await.unwrap_err();
    assert!(!err.is_sample_error(), "{err}");
    assert!(
        matches!(&err, ShardError::Storage(e) if e.is_not_found()),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_endpoint_fails_after_bounded_retries() {
    // A port nothing listens on: connections are refused, which is transient.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = StoreOptions {
        s3_endpoint: Some(format!("http://127.0.0.1:{port}")),
        s3_credentials: Some(("k".into(), "s".into())),
        retry: RetryPolicy::fast(3),
        ..StoreOptions::default()
    };
    let err = Dataset::open("s3://bucket/data", &opts).await.unwrap_err();
    match &err {
        ShardError::Storage(e) => assert_eq!(e.attempts, 3, "{err}"),
        other => panic!("expected a storage error, got {other}"),
    }
    assert!(
        err.to_string().contains("s3://bucket/data/manifest.json"),
        "{err}"
    );
}

/// TensorBoard event files in a real S3-compatible server: rotated past 1 MiB, read back
/// whole; a training writer that resumes at step 500 takes the later steps out of the
/// training files (deleting one left empty) and leaves an evaluation agent's file alone.
#[tokio::test]
async fn tensorboard_events_in_s3_rotate_and_a_resume_takes_out_the_later_steps() {
    use worker::tensorboard::{read_folder, EventWriter, What};
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket("runs");
    let url = "s3://runs/job/tensorboard";
    let opts = server.options();
    let steps_of = |files: &[(String, Vec<worker::tensorboard::Event>)], kind: &str| -> Vec<u64> {
        let mut steps: Vec<u64> = files
            .iter()
            .filter(|(name, _)| name.contains(kind))
            .flat_map(|(_, events)| events)
            .filter(|e| matches!(e.what, Some(What::Summary(_))))
            .map(|e| e.step as u64)
            .collect();
        steps.sort();
        steps
    };
    let tags: Vec<String> = (0..20).map(|i| format!("time/phase_{i:02}_s")).collect();
    let mut train = EventWriter::open(url, &opts, "train", Some(0))
        .await
        .unwrap();
    for step in 1..=3000u64 {
        let values: Vec<(&str, f64)> = tags.iter().map(|t| (t.as_str(), step as f64)).collect();
        train.scalars(step, &values);
        if step % 250 == 0 {
            train.flush().await.unwrap();
        }
    }
    drop(train);
    let mut eval = EventWriter::open(url, &opts, "eval", None).await.unwrap();
    eval.scalars(2500, &[("eval/splice/ncut.p_map", 0.75)]);
    eval.flush().await.unwrap();

    let files = read_folder(url, &opts).await.unwrap();
    let train_files = files.iter().filter(|(n, _)| n.contains(".train.")).count();
    assert!(
        train_files >= 2,
        "rotated past 1 MiB: {:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(steps_of(&files, ".train."), (1..=3000).collect::<Vec<_>>());

    let _resumed = EventWriter::open(url, &opts, "train", Some(500))
        .await
        .unwrap();
    let files = read_folder(url, &opts).await.unwrap();
    assert_eq!(steps_of(&files, ".train."), (1..=500).collect::<Vec<_>>());
    assert_eq!(
        files.iter().filter(|(n, _)| n.contains(".train.")).count(),
        1,
        "the file holding only later steps is gone"
    );
    assert_eq!(steps_of(&files, ".eval."), [2500], "evaluation events stay");
}
