#!/bin/sh
# tools/test-summary.sh LOGDIR - adds up what `make test` ran (busted specs on
# each interpreter, under valgrind and ASan; the C unit tests; each fuzz smoke
# target; the install check) and prints one closing line:
#   make test: N passed, 0 failed
set -eu
dir=${1:-build/logs}
passed=0
failed=0
# busted: "613 successes / 0 failures / 0 errors / 0 pending : 40.8 seconds"
for f in "$dir"/spec-*.log "$dir"/valgrind.log "$dir"/asan.log; do
    [ -f "$f" ] || continue
    line=$(grep -E '^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' "$f" | tail -1)
    [ -n "$line" ] || { echo "test-summary: no busted result in $f" >&2; exit 1; }
    s=$(echo "$line" | awk '{print $1}')
    fl=$(echo "$line" | awk '{print $4 + $7}')
    passed=$((passed + s))
    failed=$((failed + fl))
done
# C unit tests: "cidr: 942 passed, 0 failed" (the native run; the valgrind rerun repeats it)
if [ -f "$dir/ctest.log" ]; then
    for name in $(grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed' "$dir/ctest.log" | cut -d: -f1 | sort -u); do
        line=$(grep -E "^$name: [0-9]+ passed" "$dir/ctest.log" | head -1)
        passed=$((passed + $(echo "$line" | awk '{print $2}')))
        failed=$((failed + $(echo "$line" | awk '{print $4}')))
    done
fi
# fuzz smoke: one per target that ran clean
if [ -f "$dir/fuzz.log" ]; then
    passed=$((passed + $(grep -c '^== fuzz_[a-z]*: [0-9]*s on' "$dir/fuzz.log" || true)))
fi
# install check: one per interpreter/installer that loaded the module
if [ -f "$dir/install.log" ]; then
    passed=$((passed + $(grep -c '^  loaded cometkey' "$dir/install.log" || true)))
fi
echo "make test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
