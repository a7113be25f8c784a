//! The `coordinator serve` configuration: a TOML file, parsed into a raw serde struct,
//! then validated into [`ServeConfig`]. Relative paths are relative to the file's folder.
//!
//! ```toml
//! listen = "127.0.0.1:50051"      # default; loopback unless told otherwise
//! health_listen = "0.0.0.0:50052" # optional: grpc.health.v1 without token or TLS (probes)
//! metrics_listen = "127.0.0.1:9464" # optional: HTTP /metrics (Prometheus), any job token
//! db_path = "coordinator.db"      # required
//! token_file = "token"            # one token for every role; else COORDINATOR_TOKEN
//! global_batch = 1024            # optional: train.batch_size; rounds close only at world
//!                                 #   sizes that split it
//! calls_per_s = 20                # default; calls a client (connection) may keep up
//! call_burst = 100                # default; calls it may make at once
//! min_nodes = 1                   # default 1
//! max_nodes = 2                   # default min_nodes
//! heartbeat_interval_ms = 2000    # default
//! heartbeat_timeout_ms = 10000    # default; more than the interval
//! rendezvous_settle_ms = 3000     # default
//! eval_lease_ms = 60000           # default; an evaluation lease without renewal runs out
//! eval_max_attempts = 3           # default; leases an evaluation may run out before it fails
//! straggler_factor = 1.5          # default; a rank whose own time per step is over this
//! straggler_min_excess_ms = 50    #   times the other ranks' median, and this much over it, straggles
//!
//! [tls]                           # optional: serve over TLS (https:// URLs)
//! cert = "coordinator.pem"        # the coordinator's certificate (chain), PEM
//! key = "coordinator.key"         # its private key, PEM
//! client_ca = "clients-ca.pem"    # optional: clients must present a certificate it signed
//!
//! [tokens]                        # instead of token_file: one token per role (roles.rs)
//! node = "node.token"             # training nodes
//! agent = "agent.token"           # evaluation agents
//! operator = "operator.token"     # status, checkpoints, stop
//! ```

use crate::limits::CallLimits;
use crate::roles::{CredentialError, Credentials};
use crate::state::stragglers::StragglerPolicy;
use crate::state::Policy;
use crate::tls::ServerTls;
use infra::FieldError;
use proto::tls::TlsError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The environment variable holding the token when no `token_file` is configured.
pub const TOKEN_ENV: &str = "COORDINATOR_TOKEN";

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the coordinator config {path}: {source}")]
    Read {
        /// Config path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("the coordinator config {path} does not parse: {source}")]
    Parse {
        /// Config path.
        path: PathBuf,
        /// The TOML error.
        source: toml::de::Error,
    },
    /// A field holds an unusable value.
    #[error("coordinator config field {0}")]
    Invalid(FieldError),
    /// The token file cannot be read.
    #[error("cannot read the token file {path}: {source}")]
    TokenFile {
        /// Token file path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Neither a token file nor the environment gives a token.
    #[error(
        "no token: set `token_file` (one token for every role) or a [tokens] section (one per role) in the config, or the environment variable {TOKEN_ENV}"
    )]
    NoToken,
    /// The tokens cannot be used (empty, one reused for two roles).
    #[error("coordinator tokens: {0}")]
    Credentials(#[from] CredentialError),
    /// A TLS file is missing, unreadable or malformed.
    #[error("coordinator config [tls]: {0}")]
    Tls(#[from] TlsError),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    health_listen: Option<String>,
    metrics_listen: Option<String>,
    db_path: Option<PathBuf>,
    token_file: Option<PathBuf>,
    min_nodes: Option<u32>,
    max_nodes: Option<u32>,
    heartbeat_interval_ms: Option<u64>,
    heartbeat_timeout_ms: Option<u64>,
    rendezvous_settle_ms: Option<u64>,
    eval_lease_ms: Option<u64>,
    eval_max_attempts: Option<u32>,
    checkpoint_root: Option<String>,
    global_batch: Option<u32>,
    calls_per_s: Option<u32>,
    call_burst: Option<u32>,
    straggler_factor: Option<f64>,
    straggler_min_excess_ms: Option<u64>,
    tokens: Option<RawTokens>,
    tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    node: PathBuf,
    agent: PathBuf,
    operator: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
}

/// A validated `serve` configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (default `127.0.0.1:50051`).
    pub listen: SocketAddr,
    /// Where to serve `grpc.health.v1.Health` in plain HTTP/2 without the token (for
    /// Kubernetes' gRPC probes); not served when `None`.
    pub health_listen: Option<SocketAddr>,
    /// Where to serve HTTP: `/metrics` (Prometheus text) and the dashboard; not served
    /// when `None` (the default).
    pub metrics_listen: Option<SocketAddr>,
    /// The tokens calls carry, and the roles each proves.
    pub credentials: Credentials,
    /// Calls per client.
    pub limits: CallLimits,
    /// The state database.
    pub db_path: PathBuf,
    /// Scheduling policy.
    pub policy: Policy,
    /// TLS material; plain HTTP/2 when `None`.
    pub tls: Option<ServerTls>,
}

impl ServeConfig {
    /// Reads and validates the file at `path`; `env_token` is the value of
    /// [`TOKEN_ENV`], used when the file names no token file.
    pub fn load(path: &Path, env_token: Option<String>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: RawConfig = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::validate(raw, base, env_token)
    }

    fn validate(
        raw: RawConfig,
        base: &Path,
        env_token: Option<String>,
    ) -> Result<Self, ConfigError> {
        let invalid =
            |field: &str, reason: &str| ConfigError::Invalid(FieldError::new(field, reason));
        let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:50051".into());
        let listen = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                &format!("{listen_text:?} is not an address such as 127.0.0.1:50051"),
            )
        })?;
        let address = |field: &str, text: Option<String>, example: &str| {
            text.map(|text| {
                text.parse().map_err(|_| {
                    invalid(
                        field,
                        &format!("{text:?} is not an address such as {example}"),
                    )
                })
            })
            .transpose()
        };
        let health_listen = address("health_listen", raw.health_listen, "0.0.0.0:50052")?;
        let metrics_listen = address("metrics_listen", raw.metrics_listen, "127.0.0.1:9464")?;
        let db_path = base.join(
            raw.db_path
                .ok_or_else(|| invalid("db_path", "missing: name the state database file"))?,
        );
        let min_nodes = raw.min_nodes.unwrap_or(1);
        let max_nodes = raw.max_nodes.unwrap_or(min_nodes);
        if min_nodes == 0 {
            return Err(invalid("min_nodes", "must be at least 1"));
        }
        if max_nodes < min_nodes {
            return Err(invalid(
                "max_nodes",
                &format!("{max_nodes} is below min_nodes {min_nodes}"),
            ));
        }
        let heartbeat_interval_ms = raw.heartbeat_interval_ms.unwrap_or(2_000);
        let heartbeat_timeout_ms = raw.heartbeat_timeout_ms.unwrap_or(10_000);
        let rendezvous_settle_ms = raw.rendezvous_settle_ms.unwrap_or(3_000);
        if heartbeat_interval_ms == 0 {
            return Err(invalid("heartbeat_interval_ms", "must be above 0"));
        }
        if heartbeat_timeout_ms <= heartbeat_interval_ms {
            return Err(invalid(
                "heartbeat_timeout_ms",
                &format!("{heartbeat_timeout_ms} must exceed heartbeat_interval_ms {heartbeat_interval_ms} (a few intervals is usual)"),
            ));
        }
        let eval_lease_ms = raw.eval_lease_ms.unwrap_or(Policy::EVAL_LEASE_MS);
        if eval_lease_ms < 1_000 {
            return Err(invalid(
                "eval_lease_ms",
                &format!("{eval_lease_ms} is below 1000: agents renew every third of it, over the network"),
            ));
        }
        let eval_max_attempts = raw.eval_max_attempts.unwrap_or(Policy::EVAL_MAX_ATTEMPTS);
        if raw.global_batch == Some(0) {
            return Err(invalid(
                "global_batch",
                "must be at least 1 (train.batch_size)",
            ));
        }
        if eval_max_attempts == 0 {
            return Err(invalid("eval_max_attempts", "must be at least 1"));
        }
        let default = StragglerPolicy::DEFAULT;
        let stragglers = StragglerPolicy {
            factor: raw.straggler_factor.unwrap_or(default.factor),
            min_excess_s: raw
                .straggler_min_excess_ms
                .map_or(default.min_excess_s, |ms| ms as f64 / 1e3),
        };
        if !(stragglers.factor > 1.0 && stragglers.factor.is_finite()) {
            return Err(invalid(
                "straggler_factor",
                &format!(
                    "{} must be a number above 1 (1.5: half again the other ranks' median step)",
                    stragglers.factor
                ),
            ));
        }
        let credentials = credentials(raw.token_file, raw.tokens, base, env_token)?;
        let limits = CallLimits {
            per_s: raw.calls_per_s.unwrap_or(CallLimits::DEFAULT.per_s),
            burst: raw.call_burst.unwrap_or(CallLimits::DEFAULT.burst),
        };
        if limits.per_s == 0 || limits.burst == 0 {
            return Err(invalid(
                if limits.per_s == 0 {
                    "calls_per_s"
                } else {
                    "call_burst"
                },
                "must be at least 1 (every client needs some calls)",
            ));
        }
        let tls = match raw.tls {
            None => None,
            Some(tls) => {
                let cert = tls.cert.ok_or_else(|| {
                    invalid(
                        "tls.cert",
                        "missing: name the coordinator's certificate (PEM)",
                    )
                })?;
                let key = tls.key.ok_or_else(|| {
                    invalid(
                        "tls.key",
                        "missing: name the certificate's private key (PEM)",
                    )
                })?;
                let client_ca = tls.client_ca.map(|p| base.join(p));
                Some(ServerTls::load(
                    &base.join(cert),
                    &base.join(key),
                    client_ca.as_deref(),
                )?)
            }
        };
        Ok(Self {
            listen,
            health_listen,
            metrics_listen,
            credentials,
            limits,
            db_path,
            policy: Policy {
                min_nodes,
                max_nodes,
                heartbeat_interval_ms,
                heartbeat_timeout_ms,
                rendezvous_settle_ms,
                eval_lease_ms,
                eval_max_attempts,
                checkpoint_root: raw
                    .checkpoint_root
                    .map(|r| r.trim_end_matches('/').to_string()),
                global_batch: raw.global_batch,
                stragglers,
            },
            tls,
        })
    }
}

/// The shared token (`token_file`, else the environment) or the per-role `[tokens]`.
fn credentials(
    token_file: Option<PathBuf>,
    tokens: Option<RawTokens>,
    base: &Path,
    env_token: Option<String>,
) -> Result<Credentials, ConfigError> {
    let read = |file: &Path| {
        let path = base.join(file);
        std::fs::read_to_string(&path).map_err(|source| ConfigError::TokenFile { path, source })
    };
    match (token_file, tokens) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid(FieldError::new(
            "tokens",
            "give either token_file (one token for every role) or [tokens] (one per role), not both",
        ))),
        (None, Some(t)) => Ok(Credentials::per_role(
            &read(&t.node)?,
            &read(&t.agent)?,
            &read(&t.operator)?,
        )?),
        (Some(file), None) => Ok(Credentials::shared(&read(&file)?)?),
        (None, None) => match env_token.filter(|t| !t.trim().is_empty()) {
            Some(token) => Ok(Credentials::shared(&token)?),
            None => Err(ConfigError::NoToken),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::Role;

    fn load(text: &str, env: Option<&str>) -> Result<ServeConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "from-file\n").unwrap();
        let path = dir.path().join("coordinator.toml");
        std::fs::write(&path, text).unwrap();
        ServeConfig::load(&path, env.map(String::from)).map(|mut c| {
            c.db_path = c.db_path.strip_prefix(dir.path()).unwrap().to_path_buf();
            c
        })
    }

    #[test]
    fn defaults_listen_on_loopback_and_take_the_token_from_the_environment() {
        let config = load("db_path = \"state.db\"", Some("env-token")).unwrap();
        assert!(config.listen.ip().is_loopback());
        assert_eq!(
            config.credentials,
            Credentials::shared("env-token").unwrap()
        );
        assert_eq!(config.limits, CallLimits::DEFAULT);
        assert_eq!(
            config.db_path,
            PathBuf::from("state.db"),
            "relative to the config folder"
        );
        assert_eq!((config.policy.min_nodes, config.policy.max_nodes), (1, 1));
        assert_eq!(config.health_listen, None);
        assert_eq!(config.policy.eval_lease_ms, Policy::EVAL_LEASE_MS);
        let config = load(
            "db_path = \"s.db\"\nhealth_listen = \"0.0.0.0:50052\"",
            Some("t"),
        );
        assert_eq!(config.unwrap().health_listen.unwrap().port(), 50052);
    }

    #[test]
    fn a_token_file_wins_over_the_environment_and_is_trimmed() {
        let config = load("db_path = \"s.db\"\ntoken_file = \"token\"", Some("env")).unwrap();
        assert_eq!(
            config.credentials,
            Credentials::shared("from-file").unwrap()
        );
    }

    #[test]
    fn a_tokens_section_gives_each_role_its_own_token() {
        let dir = tempfile::tempdir().unwrap();
        for role in Role::ALL {
            std::fs::write(
                dir.path().join(role.token_file_name()),
                format!("{role}-t\n"),
            )
            .unwrap();
        }
        let path = dir.path().join("coordinator.toml");
        let tokens = "[tokens]\nnode = \"node.token\"\nagent = \"agent.token\"\noperator = \"operator.token\"\n";
        std::fs::write(
            &path,
            format!("db_path = \"s.db\"\ncalls_per_s = 5\n{tokens}"),
        )
        .unwrap();
        let config = ServeConfig::load(&path, Some("env".into())).unwrap();
        assert_eq!(
            config.credentials,
            Credentials::per_role("node-t", "agent-t", "operator-t").unwrap()
        );
        assert_eq!(config.limits.per_s, 5);

        std::fs::write(dir.path().join("agent.token"), "node-t").unwrap();
        let err = ServeConfig::load(&path, None).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Credentials(CredentialError::Reused(Role::Node, Role::Agent))
            ),
            "{err}"
        );
        std::fs::write(
            &path,
            format!("db_path = \"s.db\"\ntoken_file = \"node.token\"\n{tokens}"),
        )
        .unwrap();
        let err = ServeConfig::load(&path, None).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid(e) if e.field == "tokens"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("operator.token")).unwrap();
        std::fs::write(&path, format!("db_path = \"s.db\"\n{tokens}")).unwrap();
        let err = ServeConfig::load(&path, None).unwrap_err();
        assert!(err.to_string().contains("operator.token"), "{err}");
    }

    #[test]
    fn invalid_fields_are_named() {
        let cases = [
            (
                "db_path = \"s.db\"\nmin_nodes = 3\nmax_nodes = 2",
                "max_nodes",
            ),
            (
                "db_path = \"s.db\"\nheartbeat_interval_ms = 500\nheartbeat_timeout_ms = 500",
                "heartbeat_timeout_ms",
            ),
            ("db_path = \"s.db\"\nlisten = \"nowhere\"", "listen"),
            (
                "db_path = \"s.db\"\nhealth_listen = \":50052\"",
                "health_listen",
            ),
            ("db_path = \"s.db\"\neval_lease_ms = 10", "eval_lease_ms"),
            (
                "db_path = \"s.db\"\neval_max_attempts = 0",
                "eval_max_attempts",
            ),
            ("min_nodes = 1", "db_path"),
            ("db_path = \"s.db\"\ncalls_per_s = 0", "calls_per_s"),
        ];
        for (text, field) in cases {
            match load(text, Some("t")) {
                Err(ConfigError::Invalid(e)) => assert_eq!(e.field, field, "{text}"),
                other => panic!("{text}: expected an invalid {field}, got {other:?}"),
            }
        }
        assert!(matches!(
            load("db_path = \"s.db\"", None),
            Err(ConfigError::NoToken)
        ));
        assert!(matches!(
            load("db_path = \"s.db\"\nport = 1", Some("t")),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn a_tls_section_loads_its_files_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::create_dir(dir.path().join("tls")).unwrap();
        std::fs::write(dir.path().join("tls/c.pem"), generated.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("tls/c.key"),
            generated.signing_key.serialize_pem(),
        )
        .unwrap();
        let path = dir.path().join("coordinator.toml");
        let base = "db_path = \"s.db\"\n[tls]\ncert = \"tls/c.pem\"\nkey = \"tls/c.key\"\n";
        std::fs::write(&path, format!("{base}client_ca = \"tls/c.pem\"\n")).unwrap();
        let config = ServeConfig::load(&path, Some("t".into())).unwrap();
        let tls = config.tls.expect("TLS configured");
        assert_eq!(tls.cert.path(), dir.path().join("tls/c.pem"));
        assert_eq!(tls.key.path(), dir.path().join("tls/c.key"));
        assert!(tls.client_ca.is_some());

        std::fs::write(&path, format!("{base}client_ca = \"tls/missing.pem\"\n")).unwrap();
        let err = ServeConfig::load(&path, Some("t".into())).unwrap_err();
        assert!(matches!(err, ConfigError::Tls(_)), "{err}");
        assert!(err.to_string().contains("missing.pem"), "{err}");

        std::fs::write(&path, "db_path = \"s.db\"\n[tls]\ncert = \"tls/c.pem\"\n").unwrap();
        let err = ServeConfig::load(&path, Some("t".into())).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid(e) if e.field == "tls.key"),
            "{err}"
        );
        std::fs::write(
            &path,
            "db_path = \"s.db\"\n[tls]\ncert = \"tls/c.key\"\nkey = \"tls/c.key\"\n",
        )
        .unwrap();
        let err = ServeConfig::load(&path, Some("t".into())).unwrap_err();
        assert!(
            err.to_string().contains("c.key"),
            "a key is not a certificate: {err}"
        );
    }
}
