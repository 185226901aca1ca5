#!/usr/bin/env bash
# Lays out the root filesystem of the hostledger image: the binary at /usr/local/bin/hostledger,
# every shared library it links (as `ldd` lists them, the dynamic loader included) at its
# path, the CA bundle, and /etc/passwd and /etc/group with the user the image runs as
# (nonroot, 65532). The Containerfile's build stage runs it; so does `scripts/image --binary`.
#
# usage: scripts/lib/image-rootfs.sh BINARY OUT_DIR
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 BINARY OUT_DIR" >&2; exit 2; }
bin=$1 out=$2
[ -x "$bin" ] || { echo "error: $bin is not an executable" >&2; exit 1; }
command -v ldd >/dev/null || { echo "error: ldd not found (Debian's libc-bin)" >&2; exit 1; }

mkdir -p "$out/usr/local/bin" "$out/etc/ssl/certs" "$out/tmp"
chmod 1777 "$out/tmp"
install -m 755 "$bin" "$out/usr/local/bin/hostledger"
# `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`.
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
[ -n "$libs" ] || { echo "error: ldd lists no libraries for $bin (a static binary needs none: remove this step)" >&2; exit 1; }
for lib in $libs; do
  mkdir -p "$out$(dirname "$lib")"
  cp -L "$lib" "$out$lib"
done
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "error: $ca not found (Debian's ca-certificates)" >&2; exit 1; }
cp -L "$ca" "$out$ca"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$out/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$out/etc/group"
