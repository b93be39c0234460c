#!/usr/bin/env bash
# Installs the Debian 12 packages star needs (only those missing). Used by test.sh and demo.sh.
# LibTorch (CPU) and Gloo build and test the star::torch adapter. OpenBLAS is included on every
# path: Debian's LibTorch otherwise runs its matrix products on the reference BLAS.
set -euo pipefail

packages=(build-essential cmake libeigen3-dev catch2 libbenchmark-dev doxygen
          nlohmann-json3-dev libopenblas0-pthread libtorch-dev libgloo-dev libsentencepiece-dev
          clang libclang-rt-14-dev libstb-dev)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "star: installing Debian packages: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
