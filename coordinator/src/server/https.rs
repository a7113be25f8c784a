//! The HTTP port over TLS when the coordinator serves TLS: the same certificate as the
//! gRPC port, so the dashboard's cookie and Prometheus' bearer token never travel in
//! clear. A listener for `axum::serve` that completes each handshake (bounded by
//! [`HANDSHAKE_TIMEOUT`]) before handing the connection over; failed handshakes are
//! dropped and logged at debug level.

use std::net::SocketAddr;
use std::sync::Arc;

use proto::tls::HANDSHAKE_TIMEOUT;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// TCP connections, each through a TLS handshake.
pub(super) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    pub(super) fn new(tcp: TcpListener, config: tokio_rustls::rustls::ServerConfig) -> Self {
        Self {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, addr) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "the HTTP port cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => return (tls, addr),
                Ok(Err(e)) => {
                    tracing::debug!(peer = %addr, error = %e, "TLS handshake failed on the HTTP port")
                }
                Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out on the HTTP port"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
