#!/usr/bin/env bash
# The main job: builds drover and starts a local cluster with the example
# web service applied. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec cargo run --release --locked --bin drover -- dev --apply examples/web "$@"
