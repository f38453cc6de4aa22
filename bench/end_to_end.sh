#!/usr/bin/env bash
# Scoring from the file, two builds side by side in one run: ms per image of `contrario infer`
# (decode, resize, model, a contrario test, cached maps written), the cost of a cached pass and
# of starting subtracted, as bench/families_table.py counts it. The builds alternate, ROUNDS times
# each, on the same models; the table gives each one's mean and the ratio.
#   bench/end_to_end.sh BEFORE_BIN AFTER_BIN PROJECT:MODEL:CATEGORY...
# e.g. the build of an earlier commit against this one:
#   git worktree add /tmp/before COMMIT && (cd /tmp/before && make setup && cargo build --release)
#   bench/end_to_end.sh /tmp/before/target/release/contrario target/release/contrario /tmp/p:pc:bottle
set -euo pipefail
BEFORE=$1 AFTER=$2
shift 2
ROUNDS=${ROUNDS:-3}
secs() { /usr/bin/time -f "%e" "$@" 2>&1 >/dev/null | tail -1; }
echo "| project, model, category | images | before, ms per image | after, ms per image | ratio |"
echo "|---|---|---|---|---|"
for spec in "$@"; do
  IFS=: read -r P M C <<<"$spec"
  n=$("$AFTER" infer --project "$P" --model "$M" --category "$C" | wc -l)
  declare -A sum=([before]=0 [after]=0)
  for _ in $(seq "$ROUNDS"); do
    for which in before after; do
      bin=$BEFORE
      [ $which = after ] && bin=$AFTER
      rm -rf "$P/cache/$M/$C"
      fresh=$(secs "$bin" infer --project "$P" --model "$M" --category "$C")
      cached=$(secs "$bin" infer --project "$P" --model "$M" --category "$C")
      sum[$which]=$(python3 -c "print(${sum[$which]} + ($fresh - $cached) * 1000 / $n)")
    done
  done
  python3 -c "b, a = ${sum[before]} / $ROUNDS, ${sum[after]} / $ROUNDS
print(f'| {\"$P\".split(\"/\")[-1]}, $M, $C | $n | {b:.1f} | {a:.1f} | {a / b:.2f} |')"
done
