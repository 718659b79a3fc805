#!/usr/bin/env bash
# Builds and runs benches/peers: ringdb, RocksDB (rust-rocksdb), fjall and
# the raw disk side by side, in one process on one directory.
#
#   benches/peers/run.sh [DIR] [-- extra ringdb-peers options]
#
# DIR (default: a directory under the repository's target/) holds every
# engine's stores and receives the table (peers.md) and the SVG plots.
# Building RocksDB's C++ needs clang and libclang (bindgen) and takes 15
# minutes or more on two cores; it runs at the lowest priority.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-$here/../../target/peers-run}"
shift || true
[ "${1:-}" = "--" ] && shift

if ! command -v clang >/dev/null 2>&1 || ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    apt-get install -y -qq clang libclang-dev
  else
    sudo apt-get update -qq
    sudo apt-get install -y -qq clang libclang-dev
  fi
fi

cd "$here"
nice -n 19 cargo build --release
mkdir -p "$dir"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1024/1024) " GiB"}' /proc/meminfo), kernel $(uname -r), filesystem $(df -T "$dir" | awk 'NR==2 {print $2}')" >&2
"$here/target/release/ringdb-peers" --dir "$dir" --out "$dir" "$@" | tee "$dir/peers.md"
