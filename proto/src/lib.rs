//! Wire types of the coordinator service (gRPC, tonic + prost).
//!
//! This crate stays thin: generated message and service types plus the one module that
//! converts between wire and domain types. The service itself (registration, heartbeat,
//! rendezvous, data assignment, checkpoint registry, evaluation jobs) is defined by the
//! orchestration work; until then the crate only reserves its place in the workspace.
