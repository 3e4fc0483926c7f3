//! A manifest as `drover apply -f` reads it, then the server's admission
//! (decode, defaults, validation) of each object in it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drover_proto::manifest::fuzz_manifest(data));
