# Sourced by the callgrind scripts in this folder, from the repository
# root: bench_executable NAME builds the tannoy-benches benchmark NAME
# (without running it) and prints the path of its executable.
bench_executable() {
    cargo bench -p tannoy-benches --bench "$1" --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json, sys
name = sys.argv[1]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == name and m.get("executable"):
        print(m["executable"])' "$1"
}
