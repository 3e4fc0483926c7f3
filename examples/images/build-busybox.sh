#!/bin/sh
# Builds an OCI image layout of Debian's busybox-static: the test and example
# image for Drover's container runtime (`busybox httpd` serves /www on 8080).
#
# usage: build-busybox.sh OUTDIR [--tar FILE] [--name REF]
# Needs: busybox-static (/bin/busybox), tar, gzip, sha256sum. Output is
# reproducible (fixed mtimes, owners and order), so digests are stable.
set -eu

usage() { echo "usage: $0 OUTDIR [--tar FILE] [--name REF]" >&2; exit 2; }
[ $# -ge 1 ] || usage
out=$1; shift
tarball=""
name="example/busybox:1"
while [ $# -gt 0 ]; do
    case $1 in
        --tar) [ $# -ge 2 ] || usage; tarball=$2; shift 2 ;;
        --name) [ $# -ge 2 ] || usage; name=$2; shift 2 ;;
        *) usage ;;
    esac
done

busybox=${BUSYBOX:-/bin/busybox}
if ! "$busybox" --list >/dev/null 2>&1; then
    echo "error: $busybox is not a working busybox (apt-get install busybox-static)" >&2
    exit 1
fi
if ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked' && command -v file >/dev/null; then
    echo "warning: $busybox may not be statically linked" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root/bin" "$root/www" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/root"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] && continue
    ln -sf busybox "$root/bin/$applet"
done
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
printf '<!doctype html>\n<title>Drover</title>\n<h1>Hello from Drover</h1>\n' > "$root/www/index.html"

blobs=$out/blobs/sha256
mkdir -p "$blobs"

# One gzip-compressed layer; the diff_id is the digest of the uncompressed tar.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$root" -cf "$work/layer.tar" .
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -9 -c "$work/layer.tar" > "$work/layer.tar.gz"
layer_digest=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$work/layer.tar.gz")
mv "$work/layer.tar.gz" "$blobs/$layer_digest"

put_blob() { # file -> prints "digest size"
    d=$(sha256sum "$1" | cut -d' ' -f1)
    s=$(stat -c %s "$1")
    mv "$1" "$blobs/$d"
    echo "$d $s"
}

cat > "$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["busybox","httpd","-f","-p","8080","-h","/www"],"WorkingDir":"/","ExposedPorts":{"8080/tcp":{}}},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},"history":[{"created_by":"examples/images/build-busybox.sh"}]}
JSON
set -- $(put_blob "$work/config.json"); config_digest=$1; config_size=$2

cat > "$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_digest","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer_digest","size":$layer_size}]}
JSON
set -- $(put_blob "$work/manifest.json"); manifest_digest=$1; manifest_size=$2

printf '{"imageLayoutVersion":"1.0.0"}\n' > "$out/oci-layout"
cat > "$out/index.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest_digest","size":$manifest_size,"annotations":{"org.opencontainers.image.ref.name":"$name"}}]}
JSON

if [ -n "$tarball" ]; then
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$out" -cf "$tarball" oci-layout index.json blobs
fi
echo "built $name (manifest sha256:$manifest_digest) in $out"
