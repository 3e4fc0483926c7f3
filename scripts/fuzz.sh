#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/fuzz_targets) for N seconds (default 60):
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# A crash leaves its input in fuzz/artifacts/TARGET/; fix the code, then add
# the input to the stable regression test (control-plane/tests/request_decoding.rs
# or proto/tests/manifest_decoding.rs) as a byte literal.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(grpc_request http_request manifest)
fi
# The same dependency versions as the workspace.
[ -f Cargo.lock ] || cp ../Cargo.lock Cargo.lock
# Builds go under $CARGO_TARGET_DIR/fuzz when it is set, else fuzz/target.
target_dir="${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz}"
target_dir="${target_dir:-target}"
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    # Seeds checked in (small text files) are read, never written to.
    seeds=()
    [ -d "seeds/$target" ] && seeds=("seeds/$target")
    echo "== $target: ${seconds}s"
    # No sanitizer: panics are what we look for, and it builds much faster.
    cargo +nightly fuzz run --sanitizer none --codegen-units 16 --target-dir "$target_dir" "$target" "corpus/$target" "${seeds[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -max_len=8192
done
