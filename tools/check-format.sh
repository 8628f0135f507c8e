#!/bin/sh
# tools/check-format.sh - fails when a C file under src/, test/c/ or fuzz/ differs
# from what clang-format makes of it with the repository's .clang-format.
set -eu
status=0
for f in src/*.c src/*.h test/c/*.c fuzz/*.c; do
    [ -f "$f" ] || continue
    if ! clang-format --style=file "$f" | cmp -s - "$f"; then
        echo "clang-format: $f is not formatted (run: clang-format -i $f)" >&2
        status=1
    fi
done
[ $status = 0 ] && echo "clang-format: C sources formatted"
exit $status
