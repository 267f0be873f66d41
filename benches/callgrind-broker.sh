#!/usr/bin/env bash
# Instructions per operation of two benches/broker.rs groups, tannoy beside
# its peer: per message for publish_recv_one (publish then receive on one
# thread; the peer is crossbeam-channel) and per delivery for fanout/<n>
# (one publish to n subscribers, each then receiving; the peer is tokio's
# broadcast channel). callgrind counts the instructions of the bench binary
# running the group's iteration, outside criterion, for about LOW_OPS and
# for about HIGH_OPS operations, and the difference over the operations of
# the extra rounds is the cost of one operation, setup (building the
# broker, subscribing) and the process's start left out. Machine load does
# not move these counts, so they compare two versions of the code where
# wall-clock times on a busy machine cannot.
#
# Needs valgrind (Debian package `valgrind`). About a minute on 2 cores
# once the benchmark is built (building it from nothing took about five).
#
# Usage: benches/callgrind-broker.sh [publish_recv_one|fanout/<n>]...
#        (default: publish_recv_one and fanout at 1, 16, 64, 256, 1024)
set -euo pipefail
cd "$(dirname "$0")/.."

scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] &&
    scenarios=(publish_recv_one fanout/1 fanout/16 fanout/64 fanout/256 fanout/1024)

# Operations (messages or deliveries) in the shorter and the longer run.
# The shorter one is not a single round, so the first rounds' one-off
# costs (queues growing, caches of the process) fall in both runs and
# cancel.
LOW_OPS=100000
HIGH_OPS=600000

# shellcheck source=benches/bench-executable.sh
source benches/bench-executable.sh
bench=$(bench_executable broker)

# Runs the bench binary for scenario $1, side $2, $3 rounds.
run() {
    TANNOY_BROKER_COUNT=$1 TANNOY_BROKER_SIDE=$2 TANNOY_BROKER_ROUNDS=$3 "${@:4}" "$bench"
}

# Instructions executed by the bench binary running $3 rounds of scenario
# $1 on side $2.
instructions() {
    run "$1" "$2" "$3" valgrind --tool=callgrind --callgrind-out-file=/dev/null 2>&1 |
        awk '/Collected :/ { print $NF }'
}

for scenario in "${scenarios[@]}"; do
    names=()
    costs=()
    for side in tannoy peer; do
        # The binary's line names the contender, the operations one round
        # is, and what an operation is:
        # `fanout/64 tokio_broadcast: 1 rounds, 64 per round, counted per delivery`.
        read -r name per_round unit < <(run "$scenario" "$side" 1 |
            awk '{ sub(":", "", $2); print $2, $5, $NF }')
        few=$((LOW_OPS / per_round))
        many=$((HIGH_OPS / per_round))
        low=$(instructions "$scenario" "$side" "$few")
        high=$(instructions "$scenario" "$side" "$many")
        names+=("$name")
        costs+=("$(awk -v i="$((high - low))" -v o="$(((many - few) * per_round))" \
            'BEGIN { printf "%.3f", i / o }')")
    done
    awk -v s="$scenario" -v tn="${names[0]}" -v t="${costs[0]}" -v pn="${names[1]}" \
        -v p="${costs[1]}" -v u="$unit" \
        'BEGIN { printf "%s: %s %.0f, %s %.0f per %s (%.2fx)\n", s, tn, t, pn, p, u, t / p }'
done
