//! Command-line flags that more than one binary takes: what a client of the coordinator
//! trusts and presents over TLS (`coordinator status|stop|checkpoints`, `worker join`,
//! `worker eval agent`), with the environment variables `coordinator launch` sets for the
//! processes it starts.

use std::path::PathBuf;

/// The CA file a client trusts (`--tls-ca`).
pub const TLS_CA_ENV: &str = "COORDINATOR_TLS_CA";
/// The client certificate a client presents (`--tls-cert`).
pub const TLS_CERT_ENV: &str = "COORDINATOR_TLS_CERT";
/// The client certificate's key (`--tls-key`).
pub const TLS_KEY_ENV: &str = "COORDINATOR_TLS_KEY";

/// What a client trusts and presents over TLS.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClientTlsArgs {
    /// CA that signed the coordinator's certificate, PEM (https:// URLs; default: the
    /// system's CA roots).
    #[arg(long, value_name = "FILE", env = TLS_CA_ENV)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate, PEM, for a coordinator that requires one (with --tls-key).
    #[arg(long, value_name = "FILE", env = TLS_CERT_ENV)]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key, PEM.
    #[arg(long, value_name = "FILE", env = TLS_KEY_ENV)]
    pub tls_key: Option<PathBuf>,
}
