//! Integration tests: one binary, a module per area, shared helpers in `support`.

mod architecture;
mod checkpoint;
mod config;
mod default_model;
mod deploy;
mod detect;
mod exif;
mod flops;
mod jpeg;
mod kernels;
mod metrics;
mod probe;
mod s3;
mod shards;
mod splice_bench;
mod stream;
mod support;
mod synth;
mod train;
