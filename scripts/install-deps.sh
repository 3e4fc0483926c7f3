#!/usr/bin/env bash
# Installs what Drover's build and tests need on a fresh Debian 12 machine.
# Idempotent; skips apt when everything is already present.
set -euo pipefail

PACKAGES=(
  protobuf-compiler   # protoc, for the gRPC code in proto/
  curl                # HTTP gateway tests
  pkg-config
  libseccomp-dev      # container runtime (libcontainer's seccomp)
  busybox-static      # test and example images (examples/images/build-busybox.sh)
  docker-registry     # a real OCI registry for image pull tests, on 127.0.0.1
  binutils            # as/ld for the VM monitor's test guests
  libc6-dev           # libc.a: drover-init is linked static (+crt-static) by the build
  iproute2            # taps, bridges, network namespaces
  nftables
  crun runc           # side-by-side container start benchmark
  qemu-system-x86     # the qemu VM engine (VM pods where KVM cannot boot Linux)
  etcd-server         # side-by-side replicated writes benchmark
  chromium chromium-driver  # the dashboard's browser tests
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# The guest kernel for VM pods, in a cache outside the repo (never committed).
if [[ $(id -u) -eq 0 ]]; then
  "$(dirname "$0")/install-vm-kernel.sh" || echo "warning: no guest kernel: VM tests will skip" >&2
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install the Rust toolchain (https://rustup.rs) first" >&2
  exit 1
fi
