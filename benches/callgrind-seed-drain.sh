#!/usr/bin/env bash
# Instructions per delivery of the seed_drain step (benches/seed.rs), for
# tannoy and for the peer: callgrind counts the instructions of one and of
# three windows (publish one window of the seed plan from one thread, then
# drain all 20,000 subscribers), and the difference over the deliveries of
# two windows is the cost of one delivery, publishes included, setup left
# out. Machine load does not move these counts, so they compare two
# versions of the code where wall-clock times on a busy machine cannot.
#
# Needs valgrind (Debian package `valgrind`). About four minutes on 2 cores,
# including the benchmark build.
#
# Usage: benches/callgrind-seed-drain.sh [tannoy|peer]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."

sides=("$@")
[ ${#sides[@]} -eq 0 ] && sides=(tannoy peer)

# shellcheck source=benches/bench-executable.sh
source benches/bench-executable.sh
bench=$(bench_executable seed)

# Instructions executed by the bench binary running $2 windows of side $1.
instructions() {
    TANNOY_SEED_DRAIN_SIDE=$1 TANNOY_SEED_DRAIN_ROUNDS=$2 \
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bench" 2>&1 |
        awk '/Collected :/ { print $NF }'
}

for side in "${sides[@]}"; do
    deliveries=$(TANNOY_SEED_DRAIN_SIDE=$side TANNOY_SEED_DRAIN_ROUNDS=1 "$bench" |
        awk '{ print $(NF-2) }')
    one=$(instructions "$side" 1)
    three=$(instructions "$side" 3)
    echo "$side: $(( (three - one) / (2 * deliveries) )) instructions per delivery ($deliveries deliveries per window)"
done
