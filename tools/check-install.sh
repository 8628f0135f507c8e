#!/bin/sh
# tools/check-install.sh - proves the two install paths work from this checkout:
# `make install` for Lua 5.4, 5.1 and LuaJIT into temporary prefixes, and
# `luarocks make` into a temporary tree; each result is loaded by a fresh
# interpreter that validates a field and parses an allowlist.
set -eu
tmp=$(mktemp -d /tmp/cometkey-install.XXXXXX)
trap 'rm -rf "$tmp"; rm -rf cometkey src/*.o' EXIT

probe='local c = require "cometkey"
assert(c.validate{ id = 1, name = "ok" })
assert(c.allowlist.format("10.1.2.3/8") == "10.0.0.0/8")
assert(require("cometkey.curl").version())
print("  loaded " .. c._VERSION .. " on " .. (jit and jit.version or _VERSION))'

check() { # check LUA PREFIX LUAVER
    LUA_PATH="$2/share/lua/$3/?.lua;;" LUA_CPATH="$2/lib/lua/$3/?.so;;" "$1" -e "$probe"
}

echo "== make install (5.4, 5.1, LuaJIT)"
make -s install PREFIX="$tmp/p54" LUA_VERSION=5.4 BUILD="$tmp/b54" >/dev/null
check lua5.4 "$tmp/p54" 5.4
make -s install PREFIX="$tmp/p51" LUA_VERSION=5.1 BUILD="$tmp/b51" >/dev/null
check lua5.1 "$tmp/p51" 5.1
make -s install PREFIX="$tmp/pjit" LUA_VERSION=5.1 LUA_INCDIR=/usr/include/luajit-2.1 BUILD="$tmp/bjit" >/dev/null
check luajit "$tmp/pjit" 5.1
test -x "$tmp/p54/bin/cometkey"
head -1 "$tmp/pjit/bin/cometkey" | grep -q luajit

echo "== luarocks --lua-version=5.4 make"
luarocks --lua-version=5.4 --tree="$tmp/rocks" make cometkey-scm-1.rockspec >"$tmp/luarocks.log" 2>&1 || {
    cat "$tmp/luarocks.log" >&2
    exit 1
}
check lua5.4 "$tmp/rocks" 5.4
echo "install: make install and luarocks make work"
