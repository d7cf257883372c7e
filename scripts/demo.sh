#!/usr/bin/env bash
# The README's first command: install packages, build, start the embedded cluster,
# mount it, show files through the mount, then unmount and stop everything.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "demo: run as root (FUSE mounts need it)" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
if ! pkg-config --exists fuse3 numa 2>/dev/null || ! command -v fusermount3 >/dev/null; then
  apt-get update -qq && apt-get install -y -qq libfuse3-dev fuse3 libnuma-dev pkg-config >/dev/null
fi
swift build -c release
bin=.build/release
demo=/tmp/curvine-demo
mkdir -p "$demo/mnt"
fusermount3 -uz "$demo/mnt" 2>/dev/null || true
"$bin/curvine-cluster" --data-dir "$demo/data" --master-port 18995 --worker-port 18997 > "$demo/cluster.log" 2>&1 &
cluster=$!
cleanup() {
  fusermount3 -u "$demo/mnt" 2>/dev/null || true
  [ -n "${fuse:-}" ] && kill "$fuse" 2>/dev/null && wait "$fuse" 2>/dev/null || true
  kill "$cluster" 2>/dev/null && wait "$cluster" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q '^ready' "$demo/cluster.log" && break; sleep 0.1; done
grep '^ready' "$demo/cluster.log"
"$bin/cv" put --master-addrs 127.0.0.1:18995 -f README.md /demo/README.md
"$bin/curvine-fuse" --master-addrs 127.0.0.1:18995 --mnt-path "$demo/mnt" --web-port 0 > "$demo/fuse.log" 2>&1 &
fuse=$!
for _ in $(seq 100); do grep -q " $demo/mnt fuse.curvinefs" /proc/mounts && break; sleep 0.1; done
grep " $demo/mnt " /proc/mounts
echo "--- ls -l $demo/mnt/demo"
ls -l "$demo/mnt/demo"
echo "--- head -3 $demo/mnt/demo/README.md"
head -3 "$demo/mnt/demo/README.md"
cp /etc/os-release "$demo/mnt/demo/os-release"
echo "--- cv ls /demo (the same files through the protocol client)"
"$bin/cv" ls /demo --master-addrs 127.0.0.1:18995
