#!/usr/bin/env bash
# Builds kernels/matmul.wasm (or the path given as $1) from kernels/matmul.c with Debian's
# clang-14 and wasm-ld-14 (apt-get install -y clang lld). The .wasm is committed (the site has no
# build step) and tests/test_kernels.py checks that this script gives the same bytes: the
# compiler is pinned by name, and --strip-all drops the name and producers sections, so the
# output holds no path, date or version string.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/kernels/matmul.wasm}"
for tool in clang-14 wasm-ld-14; do
  command -v "$tool" >/dev/null || { echo "build_kernels: $tool not found (apt-get install -y clang lld)" >&2; exit 1; }
done
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
clang-14 --target=wasm32 -msimd128 -O3 -ffreestanding -Wall -Wextra -Werror \
  -c "$root/kernels/matmul.c" -o "$tmp/matmul.o"
# Linked by wasm-ld itself: no libc, no start files. Exported memory, 2 pages to start (stack and data), growable by alloc() up to 4 GiB.
wasm-ld-14 --no-entry --strip-all --max-memory=4294967296 "$tmp/matmul.o" -o "$tmp/matmul.wasm"
chmod 644 "$tmp/matmul.wasm"  # wasm-ld marks it executable
mv "$tmp/matmul.wasm" "$out"
echo "built $out ($(wc -c <"$out") bytes)"
