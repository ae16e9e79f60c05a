#!/bin/bash
# The first sync of a tree by several clients, each on a Garage of its own started fresh, in turn:
# the client's wall time, CPU (user + system, /usr/bin/time) and peak RSS, the server's CPU over
# the same time (/proc/PID/stat), then a no-change sync into the same bucket.
#
# usage: vs-s3sync.sh TREE ROUNDS CLIENT...
#   CLIENT: s3sync (nidor1998/s3sync, $S3SYNC or on PATH), loop (the bench's bare PutObject loop,
#   target/release/sitesync-bench), or the path of a sitesync binary.
#   WORKERS (default 64) requests in flight for every client; PORT (default 3960) for Garage.
# Needs garage 2.5.0 on PATH (docs/benchmark.md) and ../shared/tools/start-garage.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
TREE=$(cd "$1" && pwd); ROUNDS=$2; shift 2
WORKERS=${WORKERS:-64}; PORT=${PORT:-3960}
WORK=$(mktemp -d -t vs-s3sync.XXXXXX)
trap 'kill ${S3_SERVER_PID:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT

TICKS=$(getconf CLK_TCK)
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# one sync by CLIENT into BUCKET; prints "wall cpu rss"
sync_once() {
  local client=$1 bucket=$2 out=$WORK/time
  case $client in
    s3sync) /usr/bin/time -f '%e %U %S %M' -o "$out" "${S3SYNC:-s3sync}" \
        --target-endpoint-url "$S3_ENDPOINT" --target-force-path-style --target-region us-east-1 \
        --target-access-key "$AWS_ACCESS_KEY_ID" --target-secret-access-key "$AWS_SECRET_ACCESS_KEY" \
        --worker-size "$WORKERS" "$TREE/" "s3://$bucket/site/" >/dev/null 2>"$WORK/err" ;;
    loop) /usr/bin/time -f '%e %U %S %M' -o "$out" "$ROOT/target/release/sitesync-bench" put \
        --endpoint "$S3_ENDPOINT" --bucket "$bucket" --prefix site/ --root "$TREE" \
        --workers "$WORKERS" >/dev/null 2>"$WORK/err" ;;
    *) XDG_CACHE_HOME=$WORK/cache-$bucket /usr/bin/time -f '%e %U %S %M' -o "$out" "$client" sync \
        "$TREE" "s3://$bucket/site" --endpoint-url "$S3_ENDPOINT" --path-style --region us-east-1 \
        --workers "$WORKERS" --max-delete 1000000000 --json -q >/dev/null 2>"$WORK/err" ;;
  esac || { echo "$client failed:" >&2; tail -5 "$WORK/err" >&2; exit 1; }
  awk '{printf "%.2f %.2f %.1f\n", $1, $2 + $3, $4 / 1024}' "$out"
}

printf '| round | client | first sync: wall s | client CPU s | server CPU s | peak RSS MiB | no-change: wall s | client CPU s |\n'
printf '|---|---|---:|---:|---:|---:|---:|---:|\n'
for round in $(seq 1 "$ROUNDS"); do
  for client in "$@"; do
    rm -rf "$WORK/garage"
    "$ROOT/../shared/tools/start-garage.sh" "$PORT" "$WORK/garage" >"$WORK/garage.env" 2>"$WORK/garage.err"
    # shellcheck disable=SC1091
    source "$WORK/garage.env"
    bucket=vs-$round-$(basename "$client" | tr -c 'a-z0-9\n' -)
    garage -c "$WORK/garage/garage.toml" bucket create "$bucket" >/dev/null
    garage -c "$WORK/garage/garage.toml" bucket allow --read --write --owner "$bucket" --key "$AWS_ACCESS_KEY_ID" >/dev/null
    before=$(cpu_of "$S3_SERVER_PID")
    read -r wall cpu rss < <(sync_once "$client" "$bucket")
    server=$(awk -v a="$before" -v b="$(cpu_of "$S3_SERVER_PID")" 'BEGIN {printf "%.1f", (b - a) / '"$TICKS"'}')
    wall2=-; cpu2=-  # the loop is no sync: it would put every file again
    [ "$client" = loop ] || read -r wall2 cpu2 _ < <(sync_once "$client" "$bucket")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$round" "$(basename "$client")" "$wall" "$cpu" "$server" "$rss" "$wall2" "$cpu2"
    kill "$S3_SERVER_PID"
    while kill -0 "$S3_SERVER_PID" 2>/dev/null; do sleep 0.1; done  # its port is free again
  done
done
