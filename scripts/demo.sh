#!/usr/bin/env bash
# Sets up a Debian 12 machine, builds the allocation demo and runs it: STAR's allocation maps
# and per-token advantages for one prompt group, on synthetic attention.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${STAR_BUILD_DIR:-$root/build}

bash "$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" --target star-allocation-demo -j"$(nproc)"
"$build/examples/star-allocation-demo" --out "${STAR_DEMO_OUT:-$root/demo-output}" "$@"
