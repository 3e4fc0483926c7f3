//! Generates the gRPC code for the API and the Raft transport from `proto/`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().compile_protos(
        &["proto/drover/api.proto", "proto/drover/raft.proto"],
        &["proto"],
    )?;
    Ok(())
}
