#!/usr/bin/env bash
# The test command (README): builds every product (the mount tests start the real
# curvine-fuse and curvine-cluster binaries), then runs `swift test`.
# Mount tests need root and /dev/fuse; each unmounts in its teardown.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build
# The Fluid end-to-end test plays Fluid against the real binaries (root + /dev/fuse).
export CURVINE_E2E=${CURVINE_E2E:-1}
swift test "$@"
