//! A real S3-compatible server for tests: moto from the project's Python environment,
//! started on a free port and killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use infra::store::{RetryPolicy, StoreOptions};

/// A moto S3 server process; killed (and reaped) on drop.
pub struct S3Server {
    child: Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// Starts moto on a free port; `None` (skip) when it cannot start, except under
    /// `CI=true`, where that fails the test.
    pub fn start() -> Option<S3Server> {
        match Self::try_start() {
            Ok(s) => Some(s),
            Err(why) => {
                crate::skip(&format!(
                    "cannot start the S3 test server: {why} (run scripts/setup.sh)"
                ));
                None
            }
        }
    }

    fn try_start() -> Result<S3Server, String> {
        let py = crate::venv_python();
        if !py.exists() {
            return Err(format!("{} not found", py.display()));
        }
        let mut child = Command::new(&py)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // Read the port from the banner, then keep draining the log so the server never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("Running on http://").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.trim().to_string());
                    }
                }
            }
        });
        let mut server = S3Server {
            child,
            endpoint: String::new(),
        };
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| "moto did not report its address within 60 s".to_string())?;
        server.endpoint = format!("http://{addr}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            if Instant::now() > deadline {
                return Err(format!("moto at {addr} does not accept connections"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }

    /// Creates a bucket with a plain `PUT /bucket` (moto does not check signatures).
    pub fn create_bucket(&self, bucket: &str) {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(
            resp.starts_with("HTTP/1.1 200"),
            "creating bucket {bucket}: {resp}"
        );
    }

    /// The endpoint URL (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Store options for this server, with fast retries.
    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            s3_endpoint: Some(self.endpoint.clone()),
            s3_credentials: Some(("testing".into(), "testing".into())),
            region: Some("us-east-1".into()),
            retry: RetryPolicy::fast(3),
            ..StoreOptions::default()
        }
    }
}
