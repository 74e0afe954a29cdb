#!/usr/bin/env bash
# Installs what is missing (scripts/deps.sh) and builds every program into
# build/bin/. The one build of scripts/run.sh, scripts/test.sh and the
# Dockerfile. Run as root on Debian 12.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
