#!/usr/bin/env bash
# Installs the Debian 12 packages simdbn needs to build, test and benchmark. Safe to re-run: it
# only calls apt-get when a package is missing.
set -euo pipefail

# ocl-icd-opencl-dev: Debian's oneDNN is built with the OpenCL GPU runtime, so its CMake
# package config calls find_package(OpenCL REQUIRED); apt-get only recommends it, and without it
# the tests and benchmarks do not configure.
packages=(cmake g++ make pkg-config libhwy-dev libgtest-dev libbenchmark-dev libdnnl-dev
          ocl-icd-opencl-dev python3 python3-matplotlib)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
