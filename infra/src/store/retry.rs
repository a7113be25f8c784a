//! Which object-store errors are worth retrying, and an async retry loop with capped
//! exponential backoff and jitter.
//!
//! [`is_retryable`] is the only place that classifies errors; [`retry`] is the only retry
//! loop. The object-store clients keep a small retry loop of their own for single HTTP
//! requests (configured from the same [`RetryPolicy`] in [`super::open_url`]); this loop
//! sits above it and retries whole operations.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

/// How often and how patiently an operation is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (at least 1). Default: 4.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles with each further retry. Default: 200 ms.
    pub initial_backoff: Duration,
    /// Upper bound of one delay. Default: 10 s.
    pub max_backoff: Duration,
    /// Keep retrying transient errors, past `max_attempts`, until this long has passed
    /// since the operation's first failure: an outage of the storage service shorter
    /// than this is waited out. `None` (default): `max_attempts` alone decides.
    pub outage_limit: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            outage_limit: None,
        }
    }
}

impl RetryPolicy {
    /// A policy for tests and tools that must fail fast: `attempts` tries, 1 ms apart.
    pub fn fast(attempts: u32) -> Self {
        Self {
            max_attempts: attempts.max(1),
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            outage_limit: None,
        }
    }

    /// The delay before retry number `retry` (0 for the first retry): the capped
    /// exponential backoff, of which a random half is kept ("equal jitter"), so that many
    /// readers failing together do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.initial_backoff.saturating_mul(1u32 << retry.min(20));
        let capped = exp.min(self.max_backoff);
        let half = capped / 2;
        let jitter_ns = rand::rng().random_range(0..=half.as_nanos().min(u64::MAX as u128) as u64);
        half + Duration::from_nanos(jitter_ns)
    }
}

/// Whether an object-store error may go away if the operation is tried again.
///
/// Transient: network failures, timeouts, throttling and server errors, all of which the
/// cloud clients report as `Generic` once their own request retries are spent. Permanent:
/// a missing object, bad paths, denied or missing credentials, unsupported operations,
/// precondition failures, and every error of the local file system (disk errors do not
/// heal by waiting).
pub fn is_retryable(err: &object_store::Error) -> bool {
    use object_store::Error as E;
    match err {
        E::Generic { store, .. } => *store != "LocalFileSystem",
        E::JoinError { .. } => false,
        E::NotFound { .. }
        | E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. }
        | E::NotImplemented { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::UnknownConfigurationKey { .. } => false,
        _ => false,
    }
}

/// An operation that failed for good: its last error and how many attempts were made.
#[derive(Debug, thiserror::Error)]
#[error("{what} failed after {attempts} attempt(s): {source}")]
pub struct RetryError {
    /// What was attempted, e.g. `GET s3://bucket/data/shard-000001.tar bytes 0..4096`.
    pub what: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    #[source]
    pub source: object_store::Error,
}

impl RetryError {
    /// Whether the last error says the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self.source, object_store::Error::NotFound { .. })
    }
}

/// Retries made by this process so far (every [`retry`] loop), for the figures a rank
/// reports.
static RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Storage requests this process retried after a transient error, so far.
pub fn retries_so_far() -> u64 {
    RETRIES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs `op` until it succeeds, fails with an error that [`is_retryable`] rejects, or
/// `policy.max_attempts` attempts are spent and `policy.outage_limit` (if any) has passed
/// since the first failure, sleeping [`RetryPolicy::backoff`] between attempts and
/// logging each retry with `what`.
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, what: &str, mut op: F) -> Result<T, RetryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, object_store::Error>>,
{
    let max = policy.max_attempts.max(1);
    let mut attempt = 1;
    let mut first_failure = None;
    loop {
        let result = op().await;
        let failing_for = first_failure
            .get_or_insert_with(std::time::Instant::now)
            .elapsed();
        let patient = policy.outage_limit.is_some_and(|limit| failing_for < limit);
        match result {
            Ok(v) => return Ok(v),
            Err(e) if (attempt < max || patient) && is_retryable(&e) => {
                let delay = policy.backoff(attempt - 1);
                tracing::warn!(
                    what,
                    attempt,
                    max_attempts = max,
                    failing_for_s = failing_for.as_secs(),
                    delay_ms = delay.as_millis() as u64,
                    error = %e,
                    "transient storage error, retrying"
                );
                RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(source) => {
                return Err(RetryError {
                    what: what.to_string(),
                    attempts: attempt,
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn generic(store: &'static str) -> object_store::Error {
        object_store::Error::Generic {
            store,
            source: "connection reset".into(),
        }
    }

    #[test]
    fn classification_separates_transient_from_permanent() {
        assert!(is_retryable(&generic("S3")));
        assert!(!is_retryable(&generic("LocalFileSystem")));
        let nf = object_store::Error::NotFound {
            path: "x".into(),
            source: "gone".into(),
        };
        assert!(!is_retryable(&nf));
    }

    #[test]
    fn backoff_is_capped_and_jittered_within_bounds() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            outage_limit: None,
        };
        for retry in 0..12 {
            let full = (Duration::from_millis(100) * 2u32.pow(retry.min(20)))
                .min(Duration::from_millis(1000));
            let d = p.backoff(retry);
            assert!(
                d >= full / 2 && d <= full,
                "retry {retry}: {d:?} outside [{:?}, {full:?}]",
                full / 2
            );
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let before = retries_so_far();
        let calls = AtomicU32::new(0);
        let out = retry(&RetryPolicy::fast(5), "op", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(generic("S3"))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(out, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // Counted for the figures a rank reports (other tests may retry at the same time).
        assert!(retries_so_far() >= before + 2);
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_reported() {
        let calls = AtomicU32::new(0);
        let err = retry(&RetryPolicy::fast(3), "GET x", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(generic("S3")) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(err.attempts, 3);
        assert!(err.to_string().contains("GET x"), "{err}");
    }

    #[tokio::test]
    async fn an_outage_shorter_than_the_limit_is_waited_out_and_a_longer_one_is_not() {
        let patient = RetryPolicy {
            outage_limit: Some(Duration::from_millis(300)),
            ..RetryPolicy::fast(2)
        };
        // Down for about 100 ms: many more attempts than max_attempts, then success.
        let started = std::time::Instant::now();
        let calls = AtomicU32::new(0);
        let out = retry(&patient, "GET up-again", || {
            calls.fetch_add(1, Ordering::SeqCst);
            let up = started.elapsed() > Duration::from_millis(100);
            async move {
                if up {
                    Ok(())
                } else {
                    Err(generic("S3"))
                }
            }
        })
        .await;
        assert!(out.is_ok());
        assert!(calls.load(Ordering::SeqCst) > 2);
        // Down for good: it gives up once the limit has passed, not before.
        let started = std::time::Instant::now();
        let err = retry(&patient, "GET down", || async {
            Err::<(), _>(generic("S3"))
        })
        .await
        .unwrap_err();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        assert!(err.attempts > 2, "{err}");
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let err = retry(&RetryPolicy::fast(5), "GET y", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err::<(), _>(object_store::Error::NotFound {
                    path: "y".into(),
                    source: "no such key".into(),
                })
            }
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(err.is_not_found());
    }
}
