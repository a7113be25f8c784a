//! Generates the message and service types from `coordinator.proto` with the protoc
//! shipped by `protoc-bin-vendored`, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure().compile_protos(&["coordinator.proto"], &["."])?;
    Ok(())
}
