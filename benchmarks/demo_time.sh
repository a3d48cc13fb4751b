#!/bin/bash
# Seconds from a fresh clone to `make demo`'s service answering GET /readyz (docs/performance.md).
# Usage: benchmarks/demo_time.sh [COMMIT] [PORT]    (default: HEAD of this repository, port 8931)
# Clones this repository into a temporary directory, checks out COMMIT, runs `make demo PORT=PORT` with a
# timestamp (seconds since the start) on every output line, polls /readyz every 0.5 s, prints the time,
# then stops the demo. The timestamped output is left in demo-time-COMMIT.log in the working directory.
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
commit=${1:-HEAD}
port=${2:-8931}
dir=$(mktemp -d)
git clone -q "$repo" "$dir" && git -C "$dir" checkout -q "$commit" || exit 1
label=$(git -C "$dir" rev-parse --short HEAD)
log="$PWD/demo-time-$label.log"
start=$(date +%s.%N)
(cd "$dir" && setsid make demo PORT="$port" 2>&1 | python3 -u -c '
import sys, time
t0 = float(sys.argv[1])
for line in sys.stdin:
    sys.stdout.write(f"[{time.time() - t0:8.1f}] {line}")
' "$start" > "$log") &
until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null 2>&1; do
  sleep 0.5
  if [ "$(echo "$(date +%s.%N) - $start > 3600" | bc)" = 1 ]; then echo "not ready within an hour"; break; fi
done
echo "$label ready after $(echo "$(date +%s.%N) - $start" | bc) s (log: $log)"
pkill -f "$dir/.venv"; sleep 2; pkill -9 -f "$dir/.venv"; rm -rf "$dir"
