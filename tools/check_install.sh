#!/usr/bin/env bash
# Installs simdbn into a scratch prefix and builds a C program against it twice: through
# find_package(simdbn) and through pkg-config. Run after tools/test.sh (it reuses build/).
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install build --prefix "$prefix" >/dev/null

cmake -S tests/consumer -B "$prefix/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer" >/dev/null
"$prefix/consumer/consumer"

PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig" \
  sh -c 'cc tests/c_abi_test.c $(pkg-config --cflags simdbn) $(pkg-config --libs simdbn) \
         -o "$0/pkgconfig_consumer"' "$prefix"
"$prefix/pkgconfig_consumer"
echo "install check passed: find_package and pkg-config consumers run"
