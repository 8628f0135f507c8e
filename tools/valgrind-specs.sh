#!/bin/sh
# tools/valgrind-specs.sh - runs the Lua 5.4 specs under valgrind memcheck and
# fails on any memory error or definitely-lost block.
set -eu
log=build/valgrind-specs.log
mkdir -p build
echo "== busted on lua5.4 under valgrind memcheck"
CK_BUILD=build/5.4 CK_VALGRIND=1 valgrind --quiet --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-origins=no \
    --suppressions=tools/valgrind.supp --log-file="$log" \
    lua5.4 /usr/bin/busted --cpath='build/5.4/?.so' --lpath='lua/?.lua;lua/?/init.lua' \
    --exclude-tags=novalgrind spec || {
    rc=$?
    cat "$log" >&2
    echo "valgrind: failed (exit $rc)" >&2
    exit 1
}
if grep -q "definitely lost: [1-9]" "$log" || grep -q "ERROR SUMMARY: [1-9]" "$log"; then
    cat "$log" >&2
    exit 1
fi
echo "valgrind: 0 errors, 0 definitely lost"
