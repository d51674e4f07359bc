#!/usr/bin/env bash
# Measures the producer (records/s) and the processor (rows/s, exactly once) on N generated
# rows against a services-only appliance, with peak RSS of each. Release build.
#   scripts/measure.sh            1,005,000 rows (20 symbols x 134 days)
#   DAYS=1340 scripts/measure.sh  10,050,000 rows
set -euo pipefail
cd "$(dirname "$0")/.."

SYMBOLS="${SYMBOLS:-20}"
DAYS="${DAYS:-134}"
work="$(mktemp -d /tmp/tickpipe-measure.XXXXXX)"
trap 'kill -INT "$up_pid" 2>/dev/null; wait "$up_pid" 2>/dev/null; rm -rf "$work"' EXIT

scripts/install-mariadb.sh
scripts/fetch-kafka.sh >/dev/null
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release --locked -q
bin=target/release/tickpipe

"$bin" generate --out "$work/data" --symbols "$SYMBOLS" --days "$DAYS" --seed 1
"$bin" --state-dir "$work/state" up --services-only >"$work/up.log" 2>&1 &
up_pid=$!
until grep -q "tickpipe is up" "$work/up.log"; do
  kill -0 "$up_pid" 2>/dev/null || { cat "$work/up.log"; exit 1; }
  sleep 0.5
done
grep "tickpipe is up" "$work/up.log"

rss() { awk -F': ' '/Maximum resident/ { printf "peak RSS %.0f MB", $2 / 1024 }' "$1"; }
/usr/bin/time -v -o "$work/produce.time" "$bin" --state-dir "$work/state" produce --data "$work/data/*.csv"
echo "  produce: $(rss "$work/produce.time")"
/usr/bin/time -v -o "$work/process.time" "$bin" --state-dir "$work/state" process --drain
echo "  process: $(rss "$work/process.time")"
