#!/usr/bin/env bash
# Regenerates the README's charts, benches/charts/patterns.svg and
# benches/charts/fanout.svg: runs the broker benchmark's groups they plot
# (patterns_hot_channel, patterns_new_channel, fanout) with short
# measurement times, then draws them from criterion's output with plot.py
# (Python 3, standard library only). About five minutes on 2 cores,
# including the benchmark build. Run it on a quiet machine.
#
# Usage: benches/charts/regenerate.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
# Criterion writes here; plot.py reads the same directory.
export CRITERION_HOME="$target_dir/criterion"

cargo bench -p tannoy-benches --bench broker -- \
    --warm-up-time 1 --measurement-time 3 --noplot \
    '^(patterns_hot_channel|patterns_new_channel|fanout)/'

python3 benches/charts/plot.py --criterion "$CRITERION_HOME" --out benches/charts
