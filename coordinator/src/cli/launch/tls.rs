//! TLS for `launch`: the coordinator's certificate (and the client CA, when clients
//! must present certificates) for the server it runs, and what this launch and its
//! local workers trust and present, handed to the workers as `COORDINATOR_TLS_*`
//! environment variables (the ones `worker join` reads).

use anyhow::{bail, Context};
use clap::Args;
use coordinator::tls::ServerTls;
use infra::cli::{TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV};
use proto::tls::ClientTls;
use std::path::PathBuf;

/// The TLS flags of `launch`.
#[derive(Args, Debug, Default)]
pub struct LaunchTlsArgs {
    /// The coordinator's certificate, PEM: serve over TLS (https://). It must name the
    /// address workers connect to (IP 127.0.0.1 for --local workers).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert, PEM.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM); needs --tls-client-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// The CA that signed --tls-cert (PEM), trusted by this launch and handed to its
    /// local workers; default: the system's CA roots.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,
    /// The client certificate (PEM) this launch and its local workers present.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_client_key",
        requires = "tls_cert"
    )]
    pub tls_client_cert: Option<PathBuf>,
    /// The private key of --tls-client-cert, PEM.
    #[arg(long, value_name = "FILE", requires = "tls_client_cert")]
    pub tls_client_key: Option<PathBuf>,
}

/// The checked TLS material of a launch.
#[derive(Debug, Clone)]
pub struct LaunchTls {
    /// The server's side.
    pub server: ServerTls,
    /// What this launch and its local workers trust and present.
    pub client: ClientTls,
    /// The client files as absolute paths, for the workers.
    files: ClientFiles,
}

#[derive(Debug, Clone, Default)]
struct ClientFiles {
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl LaunchTlsArgs {
    /// Reads and checks every file; `None` without --tls-cert.
    pub fn load(&self) -> anyhow::Result<Option<LaunchTls>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        if self.tls_client_ca.is_some() && self.tls_client_cert.is_none() {
            bail!("--tls-client-ca requires client certificates, and this launch and its local workers need one too: pass --tls-client-cert and --tls-client-key");
        }
        let absolute = |p: &Option<PathBuf>| -> anyhow::Result<Option<PathBuf>> {
            p.as_deref()
                .map(|p| {
                    std::path::absolute(p)
                        .with_context(|| format!("cannot resolve {}", p.display()))
                })
                .transpose()
        };
        let files = ClientFiles {
            ca: absolute(&self.tls_ca)?,
            cert: absolute(&self.tls_client_cert)?,
            key: absolute(&self.tls_client_key)?,
        };
        let server = ServerTls::load(cert, key, self.tls_client_ca.as_deref())?;
        let client = ClientTls::load(
            files.ca.as_deref(),
            files.cert.as_deref(),
            files.key.as_deref(),
        )?
        .unwrap_or_default();
        Ok(Some(LaunchTls {
            server,
            client,
            files,
        }))
    }
}

/// The environment of a local worker: the variables to set, and those of ours to
/// remove so that a worker never picks up TLS settings this launch does not use.
pub fn worker_env(tls: Option<&LaunchTls>) -> (Vec<(String, String)>, Vec<String>) {
    let files = tls.map(|t| t.files.clone()).unwrap_or_default();
    let mut set = Vec::new();
    let mut remove = Vec::new();
    for (name, path) in [
        (TLS_CA_ENV, files.ca),
        (TLS_CERT_ENV, files.cert),
        (TLS_KEY_ENV, files.key),
    ] {
        match path {
            Some(path) => set.push((name.to_string(), path.display().to_string())),
            None => remove.push(name.to_string()),
        }
    }
    (set, remove)
}

/// The TLS flags of the `worker join` line printed for other machines.
pub fn join_flags(tls: Option<&LaunchTls>) -> String {
    let Some(tls) = tls else {
        return String::new();
    };
    let mut flags = String::new();
    if let Some(ca) = &tls.files.ca {
        flags.push_str(&format!(" --tls-ca {}", ca.display()));
    }
    if tls.server.client_ca.is_some() {
        flags.push_str(" --tls-cert <client certificate> --tls-key <its key>");
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_tls_workers_lose_any_inherited_tls_variables() {
        let (set, remove) = worker_env(None);
        assert!(set.is_empty());
        assert_eq!(remove, [TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV]);
        assert_eq!(join_flags(None), "");
    }

    #[test]
    fn a_client_ca_without_a_client_certificate_is_refused_before_reading_files() {
        let args = LaunchTlsArgs {
            tls_cert: Some("missing.pem".into()),
            tls_key: Some("missing.key".into()),
            tls_client_ca: Some("ca.pem".into()),
            ..Default::default()
        };
        let err = args.load().unwrap_err().to_string();
        assert!(err.contains("--tls-client-cert"), "{err}");
    }
}
