#!/usr/bin/env bash
# deadair side by side with two published Rust detectors on the NAB subset: deadair's default
# model (`deadair replay`), `anomaly_detection` (Twitter's S-H-ESD) and augurs (MSTL + AutoETS
# prediction intervals), each streamed row by row with no look-ahead (benches/peers, a standalone
# crate that deadair does not depend on). Scores every result dir with NAB's scorer and prints one
# markdown table: detector | standard | low FP | low FN | samples/s. Progress goes to stderr.
#
#   scripts/bench-peers.sh            (NAB=DIR to use another NAB subset; default ../shared/nab)
#
# samples/s: data rows / wall seconds. For deadair, the whole `deadair replay` process (reading
# the CSVs, scoring, writing the score files); for the peers, their scoring loops only (the bench
# times them itself, CSV I/O excluded). All single-threaded. A long run (about 13 minutes on
# 2 cores, mostly S-H-ESD's per-row refits): not part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NAB=$(cd "${NAB:-../shared/nab}" && pwd)
W=$ROOT/target/bench-peers
rm -rf "$W"; mkdir -p "$W"

echo "bench-peers: building deadair (release)" >&2
cargo build --release --locked --quiet
echo "bench-peers: building benches/peers" >&2
(cd benches/peers && CARGO_TARGET_DIR=$ROOT/target/peers cargo bench --locked --quiet --bench peers --no-run)

files=("$NAB"/data/*/*.csv)
rows=0
for f in "${files[@]}"; do rows=$(( rows + $(tail -n +2 "$f" | grep -c .) )); done
echo "bench-peers: deadair replay over ${#files[@]} files ($rows rows)" >&2
t0=$(date +%s.%N)
target/release/deadair replay -q --scores "$W/deadair" "${files[@]}" >"$W/deadair.log" 2>&1
t1=$(date +%s.%N)
deadair_rate=$(awk -v r="$rows" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", r / (b - a) }')

echo "bench-peers: peers (S-H-ESD refits every row: several minutes)" >&2
(cd benches/peers && NAB_DATA="$NAB/data" CARGO_TARGET_DIR=$ROOT/target/peers \
  cargo bench --locked --quiet --bench peers -- "$W") > "$W/peers.txt"

score() { # dir -> "standard | low FP | low FN"
  python3 "$NAB/tools/nab_score.py" "$1" | tr ' ' '\n' | awk -F= '
    $1 == "standard" { s = $2 } $1 == "reward_low_FP_rate" { p = $2 } $1 == "reward_low_FN_rate" { n = $2 }
    END { if (s == "") exit 1; printf "%.2f | %.2f | %.2f", s, p, n }'
}

echo "bench-peers: scoring" >&2
echo "| detector | standard | low FP | low FN | samples/s |"
echo "|---|---|---|---|---|"
echo "| deadair (default model) | $(score "$W/deadair") | $deadair_rate |"
while read -r name r secs rate; do
  case $name in
    shesd) label="anomaly_detection 0.4 (S-H-ESD, library defaults)" ;;
    shesd-nab) label="anomaly_detection 0.4 (S-H-ESD, NAB's max_anoms 0.002)" ;;
    augurs) label="augurs 0.10 (MSTL + AutoETS intervals)" ;;
    *) label=$name ;;
  esac
  echo "| $label | $(score "$W/$name") | $rate |"
done < "$W/peers.txt"
