//! Object storage behind one URL: local paths and `file://`, `s3://bucket/prefix` (AWS or
//! any S3-compatible server), `gs://bucket/prefix` and `az://container/prefix`.
//!
//! [`open_url`] turns a URL into a store and the prefix inside it; credentials come from
//! the usual environment variables of each cloud (`AWS_*`, `GOOGLE_*`, `AZURE_*`), and
//! [`StoreOptions`] adds what a command line can override. [`retry`] holds the one
//! decision about which errors are transient and the retry loop every reader uses.

pub mod retry;

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

pub use retry::{is_retryable, retry, RetryError, RetryPolicy};

/// Settings for opening object stores, on top of what the environment provides.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// S3 endpoint of an S3-compatible server (MinIO, SeaweedFS, moto, ...). Default:
    /// `AWS_ENDPOINT_URL` from the environment, else AWS itself.
    pub s3_endpoint: Option<String>,
    /// Allow plain-HTTP endpoints. Default: allowed exactly when the endpoint is `http://`.
    pub allow_http: Option<bool>,
    /// S3 region. Default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// S3 access key id and secret. Default: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
    /// or the other credential sources of the environment.
    pub s3_credentials: Option<(String, String)>,
    /// Retries of whole operations (and, per HTTP request, inside the cloud clients).
    pub retry: RetryPolicy,
    /// Longest time one HTTP request may take, body included (whole-shard reads and
    /// uploads are long requests). Default: 10 min.
    pub request_timeout: Option<Duration>,
    /// Longest wait for the next bytes of a response, so a stalled connection fails
    /// (and is retried) instead of hanging. Default: 30 s.
    pub read_timeout: Option<Duration>,
}

/// Why a URL could not be turned into an object store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL does not parse, or lacks a bucket.
    #[error("bad storage URL '{url}': {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The scheme is none of the supported ones.
    #[error("unsupported storage URL scheme '{scheme}' in '{url}': use a local path, file://, s3://, gs:// or az://")]
    UnsupportedScheme {
        /// The URL as given.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// The cloud client could not be built (missing settings, bad endpoint, ...).
    #[error("cannot open object store for '{url}': {source}")]
    Client {
        /// The URL as given.
        url: String,
        /// The client's error.
        #[source]
        source: object_store::Error,
    },
}

/// An opened store: the client, the prefix the URL points at, and the URL for messages.
#[derive(Debug, Clone)]
pub struct StoreUrl {
    /// The object store client.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix inside the store that the URL names (may be empty).
    pub prefix: Path,
    /// The URL as given, for error messages.
    pub url: String,
    /// The directory, when the URL is a local path (writers create it).
    pub local_dir: Option<std::path::PathBuf>,
}

impl StoreUrl {
    /// The path of `name` under the prefix.
    pub fn child(&self, name: &str) -> Path {
        self.prefix.clone().join(name)
    }

    /// `name` under the URL, for messages (`s3://bucket/data/manifest.json`).
    pub fn display(&self, name: &str) -> String {
        format!("{}/{}", self.url.trim_end_matches('/'), name)
    }
}

/// Opens the object store that `url` names and returns it with the prefix inside it.
///
/// A string without `://` is a local path (relative paths are taken from the current
/// directory; the directory need not exist yet, it is created on the first write).
pub fn open_url(
    url: &str,
    opts: &StoreOptions,
) -> Result<(Arc<dyn ObjectStore>, Path), StoreError> {
    let s = open(url, opts)?;
    Ok((s.store, s.prefix))
}

/// Like [`open_url`], returning a [`StoreUrl`] that also remembers the URL for messages.
pub fn open(url: &str, opts: &StoreOptions) -> Result<StoreUrl, StoreError> {
    let bad = |reason: &str| StoreError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if url.trim().is_empty() {
        return Err(bad("empty URL"));
    }
    if !url.contains("://") {
        return local(url, std::path::Path::new(url));
    }
    let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    let client_err = |source| StoreError::Client {
        url: url.to_string(),
        source,
    };
    let bucket = || -> Result<String, StoreError> {
        match parsed.host_str() {
            Some(h) if !h.is_empty() => Ok(h.to_string()),
            _ => Err(bad("no bucket or container name after the scheme")),
        }
    };
    let prefix = || Path::from_url_path(parsed.path()).map_err(|e| bad(&e.to_string()));
    let store: Arc<dyn ObjectStore> = match parsed.scheme() {
        "file" => {
            let p = parsed
                .to_file_path()
                .map_err(|_| bad("not an absolute local file URL"))?;
            return local(url, &p);
        }
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket()?)
                .with_retry(client_retry(&opts.retry))
                .with_client_options(client_options(opts));
            let endpoint = opts
                .s3_endpoint
                .clone()
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
            if let Some(ep) = &endpoint {
                b = b.with_endpoint(ep);
            }
            let http = endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"));
            b = b.with_allow_http(opts.allow_http.unwrap_or(http));
            let region = opts.region.clone().or_else(|| {
                std::env::var("AWS_REGION")
                    .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                    .ok()
            });
            b = b.with_region(region.unwrap_or_else(|| "us-east-1".into()));
            if let Some((id, secret)) = &opts.s3_credentials {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
            } else if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() && endpoint.is_some() {
                // Without keys the client asks the cloud instance-metadata service, which an
                // S3-compatible server never backs: say so before its error does, obscurely.
                tracing::warn!(
                    url,
                    "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the server at the endpoint"
                );
            }
            Arc::new(b.build().map_err(client_err)?)
        }
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket()?)
                .with_retry(client_retry(&opts.retry))
                .with_client_options(client_options(opts))
                .build()
                .map_err(client_err)?,
        ),
        "az" | "azure" => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket()?)
                .with_retry(client_retry(&opts.retry))
                .with_client_options(client_options(opts))
                .build()
                .map_err(client_err)?,
        ),
        other => {
            return Err(StoreError::UnsupportedScheme {
                url: url.to_string(),
                scheme: other.to_string(),
            })
        }
    };
    Ok(StoreUrl {
        store,
        prefix: prefix()?,
        url: url.to_string(),
        local_dir: None,
    })
}

fn local(url: &str, p: &std::path::Path) -> Result<StoreUrl, StoreError> {
    let bad = |reason: String| StoreError::BadUrl {
        url: url.to_string(),
        reason,
    };
    let abs = std::path::absolute(p).map_err(|e| bad(format!("cannot resolve local path: {e}")))?;
    let abs = without_dot_dot(&abs);
    let prefix = Path::from_absolute_path(&abs).map_err(|e| bad(e.to_string()))?;
    Ok(StoreUrl {
        store: Arc::new(LocalFileSystem::new()),
        prefix,
        url: url.to_string(),
        local_dir: Some(abs),
    })
}

/// `p` with its `..` components applied to the components before them (object store paths
/// refuse `..`): `/a/b/../c` is `/a/c`, as the shell reads it when `b` is a folder.
fn without_dot_dot(p: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// Per-request retries inside the cloud clients: few, and bounded in time, since
/// [`retry::retry`] retries whole operations above them.
fn client_retry(policy: &RetryPolicy) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: policy.initial_backoff,
            max_backoff: policy.max_backoff,
            base: 2.0,
        },
        max_retries: policy.max_attempts.saturating_sub(1).min(3) as usize,
        retry_timeout: policy
            .max_backoff
            .saturating_mul(4)
            .max(Duration::from_millis(50)),
    }
}

fn client_options(opts: &StoreOptions) -> ClientOptions {
    ClientOptions::new()
        .with_timeout(opts.request_timeout.unwrap_or(Duration::from_secs(600)))
        .with_read_timeout(opts.read_timeout.unwrap_or(Duration::from_secs(30)))
        .with_connect_timeout(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_and_file_urls_resolve_to_the_same_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let as_path = open(dir.path().to_str().unwrap(), &StoreOptions::default()).unwrap();
        let url = format!("file://{}", dir.path().display());
        let as_url = open(&url, &StoreOptions::default()).unwrap();
        assert_eq!(as_path.prefix, as_url.prefix);
        assert!(as_path
            .prefix
            .as_ref()
            .ends_with(dir.path().file_name().unwrap().to_str().unwrap()));
    }

    #[test]
    fn local_paths_with_dot_dot_and_dot_resolve_like_the_shell() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        let plain = open(
            dir.path().join("b").to_str().unwrap(),
            &StoreOptions::default(),
        )
        .unwrap();
        let dotted = dir.path().join("a/../a/./../b");
        let dotted = open(dotted.to_str().unwrap(), &StoreOptions::default()).unwrap();
        assert_eq!(dotted.prefix, plain.prefix);
        assert_eq!(dotted.local_dir, plain.local_dir);
    }

    #[test]
    fn unsupported_scheme_is_named() {
        let err = open("ftp://host/x", &StoreOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::UnsupportedScheme { ref scheme, .. } if scheme == "ftp"));
        assert!(err.to_string().contains("ftp://host/x"), "{err}");
    }

    #[test]
    fn s3_url_without_bucket_is_rejected() {
        let err = open("s3:///prefix", &StoreOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::BadUrl { .. }), "{err}");
        assert!(err.to_string().contains("s3:///prefix"), "{err}");
    }

    #[test]
    fn s3_url_gives_bucket_prefix() {
        let opts = StoreOptions {
            s3_endpoint: Some("http://127.0.0.1:9".into()),
            s3_credentials: Some(("k".into(), "s".into())),
            ..Default::default()
        };
        let s = open("s3://bucket/some/prefix", &opts).unwrap();
        assert_eq!(s.prefix.as_ref(), "some/prefix");
        assert_eq!(
            s.display("manifest.json"),
            "s3://bucket/some/prefix/manifest.json"
        );
    }
}
