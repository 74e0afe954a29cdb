#!/usr/bin/env bash
# Builds the service and starts it on its embedded default: one process,
# HTTP on 127.0.0.1:8080. Installs what is missing first (scripts/deps.sh).
# Extra arguments go to cartd (try --help).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/build.sh
exec build/bin/cartd "$@"
