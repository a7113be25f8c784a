//! Corrupt, truncated or missing shards, and bad URLs and manifests.

use dataloader::shard::{Compression, Dataset, SampleError, ShardError};
use infra::store::StoreOptions;

use super::{camera_photos, pack_photo_folder};

#[tokio::test]
async fn corrupt_or_truncated_shards_give_per_sample_errors() {
    let Some(photos) = camera_photos(3) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    let url = out.to_str().unwrap();
    let packed =
        pack_photo_folder(tmp.path(), &photos, url, (Compression::Zstd, 1 << 30), None).await;
    let opts = packed.opts;
    let ds = Dataset::open(url, &opts.store).await.unwrap();
    let index = ds.shard_index(0).await.unwrap();
    let shard_path = out.join(&ds.manifest().shards[0].name);

    // Flip one byte in the middle of the second sample's frame.
    let mut bytes = std::fs::read(&shard_path).unwrap();
    let original = bytes.clone();
    let mid = (index.samples[1].offset + index.samples[1].length / 2) as usize;
    bytes[mid] ^= 0xFF;
    std::fs::write(&shard_path, &bytes).unwrap();
    let ds = Dataset::open(url, &opts.store).await.unwrap();
    assert!(ds.fetch_sample(0, 0).await.is_ok());
    let err = ds.fetch_sample(0, 1).await.unwrap_err();
    assert!(err.is_sample_error(), "{err}");
    assert!(
        matches!(
            err,
            ShardError::Sample {
                source: SampleError::Decompress(_),
                ..
            }
        ),
        "{err}"
    );
    let check = ds.verify_shard(0).await.unwrap();
    assert!(!check.is_ok());
    assert_ne!(check.sha256, check.expected_sha256);
    let bad: Vec<&str> = check.bad_samples.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(bad, [index.samples[1].key.as_str()]);

    // Cut the shard inside the last sample.
    let cut = (index.samples[2].offset + 100) as usize;
    std::fs::write(&shard_path, &original[..cut]).unwrap();
    let ds = Dataset::open(url, &opts.store).await.unwrap();
    assert!(ds.fetch_sample(0, 1).await.is_ok());
    let err = ds.fetch_sample(0, 2).await.unwrap_err();
    assert!(
        matches!(
            err,
            ShardError::Sample {
                source: SampleError::Truncated { .. },
                ..
            }
        ),
        "{err}"
    );
    let check = ds.verify_shard(0).await.unwrap();
    assert_eq!(check.bytes, cut as u64);
    assert!(!check.trailer_ok);
    assert_eq!(check.bad_samples.len(), 1);
}

#[tokio::test]
async fn missing_shard_object_is_a_storage_error() {
    let Some(photos) = camera_photos(2) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    let url = out.to_str().unwrap();
    let packed = pack_photo_folder(tmp.path(), &photos, url, (Compression::None, 1), None).await;
    let (opts, m) = (packed.opts, packed.manifest);
    assert_eq!(m.shards.len(), 2);
    std::fs::remove_file(out.join(&m.shards[1].name)).unwrap();
    let ds = Dataset::open(out.to_str().unwrap(), &opts.store)
        .await
        .unwrap();
    assert!(ds.fetch_sample(0, 0).await.is_ok());
    let err = ds.fetch_sample(1, 0).await.unwrap_err();
    assert!(!err.is_sample_error(), "{err}");
    assert!(
        matches!(&err, ShardError::Storage(e) if e.is_not_found()),
        "{err}"
    );
    assert!(err.to_string().contains(&m.shards[1].name), "{err}");
    let err = ds.fetch_sample(5, 0).await.unwrap_err();
    assert!(matches!(err, ShardError::OutOfRange { .. }), "{err}");
}

#[tokio::test]
async fn bad_urls_and_manifests_give_errors_naming_them() {
    let opts = StoreOptions::default();
    let err = Dataset::open("ftp://host/data", &opts).await.unwrap_err();
    assert!(
        err.to_string().contains("ftp://host/data") && err.to_string().contains("ftp"),
        "{err}"
    );
    let err = Dataset::open("s3://", &opts).await.unwrap_err();
    assert!(err.to_string().contains("s3://"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    let url = tmp.path().to_str().unwrap();
    let err = Dataset::open(url, &opts).await.unwrap_err();
    assert!(matches!(err, ShardError::NoManifest { .. }), "{err}");
    assert!(err.to_string().contains(url), "{err}");

    std::fs::write(tmp.path().join("manifest.json"), r#"{"format_version": 2}"#).unwrap();
    let err = Dataset::open(url, &opts).await.unwrap_err();
    assert!(
        matches!(err, ShardError::UnsupportedVersion { found: 2, .. }),
        "{err}"
    );
    std::fs::write(tmp.path().join("manifest.json"), "not json").unwrap();
    let err = Dataset::open(url, &opts).await.unwrap_err();
    assert!(matches!(err, ShardError::BadManifest { .. }), "{err}");
}
