#!/usr/bin/env bash
# Prepares what the test suite needs beyond Go modules: the node `pg` client
# for the end-to-end tests. Idempotent; safe to run before every `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v npm >/dev/null && [ ! -d test/node/node_modules/pg ]; then
  (cd test/node && npm install --no-audit --no-fund --loglevel=error)
fi
