#!/bin/sh
# tools/check-bench-symbols.sh - fails when a C function that bench/symbols.lua
# names (INTERNAL: functions no Lua value points at) is no longer defined in
# src/, so renaming one cannot blank a figure of bench/RESULTS.md (called by
# `make lint`). Lua-callable functions are resolved by address and need no check.
set -eu
names=$(lua5.4 -e 'for _, v in pairs(dofile("bench/symbols.lua").INTERNAL) do print(v) end')
missing=""
for name in $names; do
    grep -Eq "^[A-Za-z].*[^A-Za-z0-9_]$name\(" src/*.c || missing="$missing $name"
done
if [ -n "$missing" ]; then
    echo "check-bench-symbols: bench/symbols.lua names C functions not defined in src/:$missing" >&2
    echo "  (renamed? update INTERNAL in bench/symbols.lua)" >&2
    exit 1
fi
echo "check-bench-symbols: bench/symbols.lua names only functions defined in src/"
