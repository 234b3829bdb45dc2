#!/usr/bin/env bash
# tests/run.sh: runs every suite (module self-tests, then the integration suites against real
# processes) and prints the total as `tests: N passed, N failed`.
set -u
cd "$(dirname "$0")/.."
BIN=${REPLGATE_BIN:-$PWD/bin}
export REPLGATE_BIN=$BIN ZSYS_SIGHANDLER=false
passed=0; failed=0
run() {
    local out; out=$(mktemp)
    "$@" 2>&1 | tee "$out"
    local status=${PIPESTATUS[0]}
    local line; line=$(grep -E '^[a-z_-]+: [0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
    if [ -n "$line" ]; then
        passed=$((passed + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")))
        failed=$((failed + $(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")))
    fi
    if [ "$status" != 0 ] && [ -z "$line" ]; then failed=$((failed + 1)); echo "suite crashed: $*"; fi
    rm -f "$out"
}
run "$BIN/replgate-selftest"
for suite in tests/test_*.py; do
    run timeout -s KILL 900 /usr/bin/python3 "$suite"
done
echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
