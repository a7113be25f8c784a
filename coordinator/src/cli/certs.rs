//! `coordinator certs --out DIR --dns NAME...`: a new certificate authority and a server
//! certificate it signed, for serving the control plane over TLS where nothing else makes
//! certificates (no cert-manager, a one-person setup). Writes, with the names of a
//! Kubernetes TLS Secret:
//! - `ca.crt`: the CA's certificate, which clients trust (`--tls-ca`);
//! - `tls.crt`, `tls.key` (0600): the coordinator's certificate and key (`--tls-cert`,
//!   `--tls-key`), naming every `--dns` name, every `--ip`, and always `localhost` and
//!   `127.0.0.1` (where `launch` and `kubectl exec ... coordinator status` connect).
//!
//! The CA's private key is not kept: nothing else can be signed with it later.

use anyhow::{bail, Context};
use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Arguments of `certs`.
#[derive(Args, Debug)]
pub struct CertsArgs {
    /// Folder to write ca.crt, tls.crt and tls.key to (made when missing; existing
    /// files are not overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// A DNS name clients reach the coordinator by (e.g. the Kubernetes Service
    /// `exiflang-coordinator` and `exiflang-coordinator.NAMESPACE.svc`); repeatable.
    #[arg(long = "dns", value_name = "NAME", required = true)]
    pub dns: Vec<String>,
    /// An IP address clients reach the coordinator at; repeatable.
    #[arg(long = "ip", value_name = "ADDR")]
    pub ips: Vec<IpAddr>,
    /// Days the certificates are valid.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
}

/// Writes the CA certificate and the server certificate and key.
pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    let files = make(&args)?;
    for file in &files {
        println!("wrote {}", file.display());
    }
    println!(
        "serve with --tls-cert {0}/tls.crt --tls-key {0}/tls.key; clients trust {0}/ca.crt (--tls-ca); on Kubernetes: kubectl create secret generic exiflang-tls --from-file={0}",
        args.out.display()
    );
    Ok(())
}

fn make(args: &CertsArgs) -> anyhow::Result<Vec<PathBuf>> {
    let paths = ["ca.crt", "tls.crt", "tls.key"].map(|name| args.out.join(name));
    if let Some(existing) = paths.iter().find(|p| p.exists()) {
        bail!(
            "{} exists: remove it or choose another --out (certificates are never overwritten)",
            existing.display()
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let now = time::OffsetDateTime::now_utc();
    let until = now + time::Duration::days(i64::from(args.days));

    let ca_key = KeyPair::generate().context("cannot make the CA's key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "exiflang coordinator CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (now, until);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut names: Vec<String> = args.dns.clone();
    names.push("localhost".into());
    let mut server = CertificateParams::new(names)?;
    let mut ips = args.ips.clone();
    ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    ips.dedup();
    server
        .subject_alt_names
        .extend(ips.into_iter().map(SanType::IpAddress));
    server
        .distinguished_name
        .push(DnType::CommonName, args.dns[0].clone());
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    (server.not_before, server.not_after) = (now, until);
    let key = KeyPair::generate().context("cannot make the coordinator's key")?;
    let cert = server.signed_by(&key, &issuer)?;

    write(&paths[0], &ca_cert.pem(), 0o644)?;
    write(&paths[1], &cert.pem(), 0o644)?;
    write(&paths[2], &key.serialize_pem(), 0o600)?;
    Ok(paths.to_vec())
}

fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
