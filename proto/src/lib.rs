//! Wire types of the coordinator service (gRPC, tonic + prost).
//!
//! This crate stays thin: [`wire`] holds the message and service types generated from
//! `coordinator.proto` (package `exiflang.coordinator.v1`, where the call sequence a
//! worker follows is documented), [`domain`] the plain types the coordinator and the
//! workers reason with, [`convert`] the one place that maps between the two (a missing
//! field is a [`convert::ConvertError`], never a panic), and [`auth`] the shared-token
//! metadata both sides agree on, [`client`] the connection with the token attached, and
//! [`tls`] the PEM files of TLS connections, checked when they are loaded.

pub mod auth;
pub mod client;
pub mod convert;
pub mod domain;
pub mod tls;

/// Generated prost messages, the `Coordinator` client and server of
/// `exiflang.coordinator.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod wire {
    tonic::include_proto!("exiflang.coordinator.v1");
}
