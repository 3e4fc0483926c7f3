#!/usr/bin/env bash
# Installs the guest kernel for VM pods into a cache outside the repo
# (default /var/cache/drover/kernel: vmlinuz, version, modules/*.ko), as
# `drover vm install-kernel` does, but without needing drover built first.
# Idempotent: does nothing when the current kernel is already there.
set -euo pipefail

dir=${1:-/var/cache/drover/kernel}
meta=linux-image-cloud-amd64
modules=(virtio_ring virtio virtio_mmio failover net_failover virtio_net virtio_blk)

image=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [[ -z $image ]]; then
  echo "install-vm-kernel: cannot resolve $meta (apt-get update?)" >&2
  exit 1
fi
version=${image#linux-image-}
if [[ -f $dir/vmlinuz && $(cat "$dir/version" 2>/dev/null) == "$version" ]]; then
  echo "guest kernel $version already in $dir"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "$image" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
deb=$(ls "$work"/"$image"_*.deb)
dpkg-deb -x "$deb" "$work/root"
mkdir -p "$dir/modules"
for m in "${modules[@]}"; do
  ko=$(find "$work/root/lib/modules" -name "$m.ko" | head -1)
  # Absent: built into this kernel.
  [[ -n $ko ]] && cp "$ko" "$dir/modules/"
done
cp "$work/root/boot/vmlinuz-$version" "$dir/vmlinuz.tmp"
mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
echo "$version" > "$dir/version"
echo "guest kernel $version installed in $dir"
