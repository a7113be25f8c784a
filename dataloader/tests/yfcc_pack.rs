//! Packing a YFCC100M-style corpus from a real S3-compatible server with the real
//! binary: two parts in parallel, one SIGKILLed mid-run and rerun, merged; the manifest is
//! the one a single process writes, every listed shard verifies, and the samples are
//! exactly the photos the corpus says must be packed (videos, thin EXIF, missing and
//! truncated photos and duplicates left out and counted).

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dataloader::shard::{Dataset, Manifest};
use sha2::Digest;
use testkit::s3::S3Server;

const BIN: &str = env!("CARGO_BIN_EXE_dataloader");

fn command(server: &S3Server, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
        .env("RUST_LOG", "warn");
    c
}

fn run(server: &S3Server, args: &[&str]) -> Output {
    let out = command(server, args).output().expect("run dataloader");
    assert!(
        out.status.success(),
        "dataloader {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `dataloader pack` of the corpus into `out` (part `part`, or all of it).
fn pack(server: &S3Server, out: &str, part: Option<&str>) -> Command {
    let mut args = vec![
        "pack",
        "--out",
        out,
        "--block-size",
        "40",
        "--shard-size-mb",
        "1",
    ];
    args.extend([
        "--yfcc-dataset",
        "s3://yfcc/corpus/yfcc100m_dataset.bz2",
        "--yfcc-exif",
        "s3://yfcc/corpus/yfcc100m_exif.bz2",
        "--photos",
        "s3://yfcc/corpus/data/images",
        "--tags-from-corpus",
    ]);
    if let Some(p) = part {
        args.extend(["--part", p]);
    }
    command(server, &args)
}

async fn get(server: &S3Server, url: &str, name: &str) -> Option<bytes::Bytes> {
    let store = infra::store::open(url, &server.options()).unwrap();
    let got = object_store::ObjectStoreExt::get(&*store.store, &store.child(name)).await;
    Some(got.ok()?.bytes().await.unwrap())
}

fn wait(mut child: Child, what: &str) {
    let status = child.wait().expect("wait for dataloader");
    assert!(status.success(), "{what} failed");
}

async fn manifest(server: &S3Server, url: &str) -> (Dataset, Manifest) {
    let ds = Dataset::open(url, &server.options())
        .await
        .expect("a manifest");
    let m = ds.manifest().clone();
    (ds, m)
}

/// Every block record names shards that exist whole: their size and SHA-256 as recorded.
async fn assert_blocks_complete(server: &S3Server, url: &str) {
    for b in 0.. {
        let Some(record) = get(server, url, &format!("pack-block-{b:06}.json")).await else {
            if b > 12 {
                break;
            }
            continue;
        };
        let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
        for shard in record["shards"].as_array().unwrap() {
            let name = shard["name"].as_str().unwrap();
            let bytes = get(server, url, name)
                .await
                .expect("a recorded shard exists");
            let sha = hex::encode(sha2::Sha256::digest(&bytes));
            assert_eq!(
                bytes.len() as u64,
                shard["bytes"].as_u64().unwrap(),
                "{name}"
            );
            assert_eq!(sha, shard["sha256"].as_str().unwrap(), "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_parts_with_a_killed_one_merge_to_the_single_process_manifest() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket("yfcc");
    run(
        &server,
        &[
            "generate-yfcc",
            "--out",
            "s3://yfcc/corpus",
            "--lines",
            "330",
            "--seed",
            "3",
        ],
    );
    let truth: serde_json::Value = serde_json::from_slice(
        &get(&server, "s3://yfcc/corpus", "truth.json")
            .await
            .unwrap(),
    )
    .unwrap();

    // One process.
    let single = pack(&server, "s3://yfcc/single", None).output().unwrap();
    assert!(
        single.status.success(),
        "{}",
        String::from_utf8_lossy(&single.stderr)
    );
    let (_, one) = manifest(&server, "s3://yfcc/single").await;

    // Two parts at once; part 1 is killed once it has finished a block, then killed
    // again at random moments of reruns, then rerun to the end.
    let out = "s3://yfcc/parts";
    let part0 = pack(&server, out, Some("0/2"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut part1 = pack(&server, out, Some("1/2"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while get(&server, out, "pack-block-000001.json").await.is_none()
        && started.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    part1.kill().expect("SIGKILL part 1");
    let _ = part1.wait();
    wait(part0, "part 0/2");
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..3 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut again = pack(&server, out, Some("1/2"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50 + rng % 1500)).await;
        let _ = again.kill();
        let _ = again.wait();
        assert_blocks_complete(&server, out).await;
    }
    // Part 1 has not finished: merging refuses, naming it.
    let refused = command(&server, &["merge-manifests", out])
        .output()
        .unwrap();
    if get(&server, out, "pack-part-1-of-2.json").await.is_none() {
        assert!(!refused.status.success());
        let why = String::from_utf8_lossy(&refused.stderr);
        assert!(why.contains("1/2"), "{why}");
    }
    let rerun = pack(&server, out, Some("1/2")).output().unwrap();
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    let said = String::from_utf8_lossy(&rerun.stdout);
    assert!(said.contains("kept from an earlier run"), "{said}");
    assert!(
        !said.contains(" 0 kept"),
        "the rerun kept no finished block: {said}"
    );
    run(&server, &["merge-manifests", out]);
    let (ds, merged) = manifest(&server, out).await;

    // The manifest one process writes, but for the text naming the run.
    assert_eq!(merged.shards, one.shards);
    assert_eq!(merged.tags, one.tags);
    assert_eq!(merged.skipped, one.skipped);
    assert_eq!(merged.samples, one.samples);

    // What the corpus says must be packed, and the skips by reason.
    let skipped: BTreeMap<String, u64> = serde_json::from_value(truth["skipped"].clone()).unwrap();
    assert_eq!(merged.skipped, skipped);
    let want: Vec<String> = serde_json::from_value(truth["packed"].clone()).unwrap();
    let mut keys = Vec::new();
    for (i, _) in merged.shards.iter().enumerate() {
        let check = ds.verify_shard(i).await.unwrap();
        assert!(
            check.is_ok(),
            "shard {} does not verify: {check:?}",
            check.name
        );
        keys.extend(
            ds.shard_index(i)
                .await
                .unwrap()
                .samples
                .iter()
                .map(|e| e.key.clone()),
        );
    }
    assert_eq!(keys, want);
    assert!(
        merged.skipped["duplicate"] >= 2,
        "duplicates across blocks are dropped at merge"
    );
}
