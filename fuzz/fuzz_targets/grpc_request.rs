//! A gRPC API request: method byte + protobuf message, through the server's handlers.
#![no_main]

use std::sync::OnceLock;

use drover_control_plane::api::fuzz::Harness;
use libfuzzer_sys::fuzz_target;

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("drover-fuzz-grpc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Harness::new(&dir).expect("store")
    })
}

fuzz_target!(|data: &[u8]| harness().grpc(data));
