//! Object storage going away under a training run, for real: `worker train` reads its
//! shards from and writes its checkpoints to a real S3-compatible server (moto) through
//! its endpoint, a forwarding process (`tests/python/tcp_proxy.py`) that is SIGKILLed and
//! started again on the same port after longer than one retry cycle -- once while a
//! shard is being read, once while a checkpoint is being written. The run waits, resumes
//! and ends where an uninterrupted run ends, every listed checkpoint loads, and the
//! sample record shows nothing skipped or repeated. With the endpoint gone for good, the
//! run ends after the outage limit with an error that names the storage and the last
//! good checkpoint, and nothing incomplete looks like a checkpoint.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{free_port, WORKER};
use dataloader::shard::WriterOptions;
use testkit::s3::S3Server;
use worker::checkpoint::CheckpointStore;

const STEPS: u64 = 24;
const BATCH: u64 = 8;
const PHOTOS: u64 = 33;
const BUCKET: &str = "outage";

/// The forwarder and the request lines it prints.
struct Endpoint {
    port: u16,
    target: String,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Endpoint {
    fn start(port: u16, target: &str) -> Self {
        let script = testkit::repo_root().join("tests/python/tcp_proxy.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(target)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = forward_lines(child.stdout.take().unwrap());
        assert_eq!(
            lines.recv_timeout(Duration::from_secs(20)).ok().as_deref(),
            Some("listening")
        );
        Self {
            port,
            target: target.into(),
            child,
            lines,
        }
    }

    /// Waits for a request line that `matches`.
    fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let t = Instant::now();
        loop {
            let left = Duration::from_secs(180).saturating_sub(t.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) if matches(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("no request {what} went through the endpoint"),
            }
        }
    }

    /// Waits for a request line that `matches`; kills the forwarder at once (SIGKILL).
    fn kill_on(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let line = self.wait_for(what, matches);
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        line
    }

    /// Starts it again on the same port after `down`.
    fn restart_after(&mut self, down: Duration) {
        std::thread::sleep(down);
        *self = Endpoint::start(self.port, &self.target.clone());
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_lines(out: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The photos packed in small shards (many reads per epoch) and uploaded to the bucket.
fn data_on_s3(dir: &Path, s3: &S3Server) -> Option<String> {
    let writer = WriterOptions {
        shard_size_bytes: 1 << 20,
        ..WriterOptions::default()
    };
    let local = testkit::packed_photos(dir, 12, Some(writer))?;
    let url = format!("s3://{BUCKET}/data");
    let (store, prefix) = infra::store::open_url(&url, &s3.options()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for entry in std::fs::read_dir(&local).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let key = prefix.clone().join(name.as_str());
        rt.block_on(object_store::ObjectStoreExt::put(
            &store,
            &key,
            bytes.into(),
        ))
        .unwrap();
    }
    Some(url)
}

fn train(dir: &Path, cfg: &Path, endpoint: u16, limit_s: u64) -> Child {
    Command::new(WORKER)
        .args(["train", "--config"])
        .arg(cfg)
        .args(["--s3-endpoint", &format!("http://127.0.0.1:{endpoint}")])
        .args(["--storage-outage-limit-s", &limit_s.to_string()])
        .arg("--sample-record")
        .arg(dir.join("samples"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(common::log_file(dir, "train.log"))
        .spawn()
        .unwrap()
}

fn checkpoints(
    s3: &S3Server,
    url: &str,
) -> (CheckpointStore, Vec<worker::checkpoint::CheckpointRef>) {
    let store = CheckpointStore::open(url, &s3.options()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let list = rt.block_on(store.list()).unwrap();
    (store, list)
}

/// Every listed checkpoint loads, at its own step.
fn all_load(store: &CheckpointStore, list: &[worker::checkpoint::CheckpointRef]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for r in list {
        let ck = rt.block_on(store.load(r)).unwrap();
        assert_eq!(ck.state.step, r.step, "{}", r.url);
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(t.elapsed() < limit, "the run did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Moto with the photos in the bucket, the training config (checkpoints in the bucket,
/// all kept) in `dir`, the checkpoint URL, and the endpoint in front of moto; `None`
/// (skip) without moto or the photos.
fn setup(dir: &Path) -> Option<(S3Server, std::path::PathBuf, String, Endpoint)> {
    let s3 = S3Server::start()?;
    s3.create_bucket(BUCKET);
    let data = data_on_s3(dir, &s3)?;
    let ckpt = format!("s3://{BUCKET}/ckpt");
    let cfg = dir.join("config.toml");
    let text = testkit::tiny_config(&data, Path::new("CKPT"), STEPS)
        .replace("\"CKPT\"", &format!("\"{ckpt}\""))
        .replace("keep_last = 3", "keep_last = 1000");
    std::fs::write(&cfg, text).unwrap();
    let target = s3.endpoint().trim_start_matches("http://").to_string();
    let endpoint = Endpoint::start(free_port(), &target);
    Some((s3, cfg, ckpt, endpoint))
}

#[test]
fn training_waits_out_storage_outages_during_reads_and_checkpoint_writes() {
    let dir = tempfile::tempdir().unwrap();
    let Some((s3, cfg, ckpt, mut endpoint)) = setup(dir.path()) else {
        return;
    };
    let mut run = train(dir.path(), &cfg, endpoint.port, 120);

    // A shard read once training is under way (a checkpoint exists), then a checkpoint
    // file being uploaded; each outage outlasts a whole retry cycle (about 2 s).
    let down = Duration::from_secs(5);
    endpoint.wait_for("writing step 4", |l| {
        l.starts_with("PUT") && l.contains("step-000000004")
    });
    let read = endpoint.kill_on("reading a shard", |l| {
        l.starts_with("GET") && l.contains("/data/shard-")
    });
    endpoint.restart_after(down);
    let write = endpoint.kill_on("writing a later checkpoint", |l| {
        l.starts_with("PUT") && l.contains("/ckpt/step-0000000") && !l.contains("step-000000004")
    });
    endpoint.restart_after(down);
    let status = wait_exit(&mut run, Duration::from_secs(300));
    let log = std::fs::read_to_string(dir.path().join("train.log")).unwrap();
    assert!(status.success(), "{log}");
    eprintln!("outages while: {read} / {write}");
    let retried = |part: &str| {
        log.lines()
            .any(|l| l.contains("transient storage error, retrying") && l.contains(part))
    };
    assert!(retried("shard-"), "a shard read was retried: {log}");
    assert!(retried("step-"), "a checkpoint write was retried: {log}");

    // Where an uninterrupted run ends, every checkpoint loads, nothing lost or repeated.
    let (store, list) = checkpoints(&s3, &ckpt);
    assert_eq!(list.last().map(|r| r.step), Some(STEPS));
    all_load(&store, &list);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let last = rt.block_on(store.load(list.last().unwrap())).unwrap();
    assert_eq!(
        (last.state.data.epoch, last.state.data.consumed),
        common::uninterrupted_end(STEPS, BATCH, PHOTOS)
    );
    common::assert_each_sample_once(&dir.path().join("samples"), STEPS, BATCH, PHOTOS);
}

#[test]
fn storage_down_past_the_limit_ends_the_run_naming_it_and_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let Some((s3, cfg, ckpt, mut endpoint)) = setup(dir.path()) else {
        return;
    };
    let mut run = train(dir.path(), &cfg, endpoint.port, 4);
    // Gone in the middle of writing the checkpoint of step 6, for good.
    endpoint.kill_on("writing step 6", |l| {
        l.starts_with("PUT") && l.contains("step-000000006")
    });
    let started = Instant::now();
    let status = wait_exit(&mut run, Duration::from_secs(120));
    let waited = started.elapsed();
    let log = std::fs::read_to_string(dir.path().join("train.log")).unwrap();
    assert!(!status.success());
    assert!(
        waited >= Duration::from_secs(4),
        "gave up after {waited:?}, before the limit"
    );
    assert!(
        log.contains("storage unreachable past the outage limit"),
        "{log}"
    );
    assert!(
        log.contains(&format!("{BUCKET}/")),
        "the error names the storage: {log}"
    );
    assert!(
        log.contains(&format!(
            "the last good checkpoint is {ckpt}/step-000000004"
        )),
        "{log}"
    );
    // Back up: the checkpoint cut off mid-upload is not listed; the named one loads.
    endpoint.restart_after(Duration::ZERO);
    let (store, list) = checkpoints(&s3, &ckpt);
    assert_eq!(list.iter().map(|r| r.step).collect::<Vec<_>>(), [2, 4]);
    all_load(&store, &list);
}
