//! Generates the gRPC code of `proto/wsgate/v1/gateway.proto` (contract 8.1).
//!
//! protox parses the proto file in pure Rust (it carries the well-known
//! types such as `google/protobuf/struct.proto`), so a build needs no
//! `protoc`. The descriptor set is also written to `OUT_DIR` for server
//! reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = proto_dir.join("wsgate/v1/gateway.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let fds = protox::compile([&file], [&proto_dir])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("gateway_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Clients connect through a Channel they build (no transport feature here).
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
