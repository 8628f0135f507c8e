#!/bin/sh
# tools/check-install.sh - proves the two install paths work from this checkout:
# `make install` for Lua 5.4, 5.1 and LuaJIT into temporary prefixes (the
# installed cometkey runs from there, --help and --version even without the C
# modules; man page and completions in place), and `luarocks make` with both
# rockspecs (scm-1 and 0.2.0-1) into a temporary tree, without network; each
# result is loaded by a fresh interpreter that validates a field and parses an allowlist.
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

fail() { echo "install: $*" >&2; exit 1; }

# cli PREFIX: the installed tool finds its modules relative to itself, from any
# directory, with no LUA_PATH/LUA_CPATH/CK_BUILD; --help and --version need no C.
cli() { # cli PREFIX ARGS... -> runs PREFIX/bin/cometkey in / with a clean environment
    p=$1; shift
    (cd / && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u CK_BUILD \
        -u COMETAPI_ACCESS_TOKEN "$p/bin/cometkey" "$@")
}
echo "== the installed cometkey under any PREFIX (5.4, 5.1, LuaJIT)"
for p in p54 p51 pjit; do
    out=$(cli "$tmp/$p" --help) || fail "$p: cometkey --help failed"
    echo "$out" | grep -q "usage: cometkey" || fail "$p: no usage in --help"
    cli "$tmp/$p" --version | grep -q "^cometkey 0.2.0$" || fail "$p: --version"
    # The C modules load: a closed port gives a network failure (exit 1), not a load error.
    err=$(COMETAPI_BASE_URL=http://127.0.0.1:1 cli "$tmp/$p" --timeout 2 --token-file /dev/null list 2>&1 || true)
    echo "$err" | grep -q "token file" || fail "$p: list did not get to the token file check: $err"
done
test -f "$tmp/p54/share/man/man1/cometkey.1" || fail "man page not installed"
bash -n "$tmp/p54/share/bash-completion/completions/cometkey" || fail "bash completion"
grep -q '^#compdef cometkey' "$tmp/p54/share/zsh/site-functions/_cometkey" || fail "zsh completion"
grep -q '^complete -c cometkey' "$tmp/p54/share/fish/vendor_completions.d/cometkey.fish" || fail "fish completion"
cp -R "$tmp/p54" "$tmp/noc" && rm -rf "$tmp/noc/lib"
cli "$tmp/noc" --help >/dev/null || fail "--help needs the C modules"
cli "$tmp/noc" --version | grep -q "^cometkey 0.2.0$" || fail "--version needs the C modules"
err=$(cli "$tmp/noc" list 2>&1 || true)
echo "$err" | grep -q "cometkey.core was not found" || fail "no hint without the C modules: $err"

for rockspec in cometkey-scm-1.rockspec cometkey-0.2.0-1.rockspec; do
    echo "== luarocks --lua-version=5.4 make $rockspec"
    rm -rf "$tmp/rocks"
    luarocks --lua-version=5.4 --tree="$tmp/rocks" make "$rockspec" >"$tmp/luarocks.log" 2>&1 || {
        cat "$tmp/luarocks.log" >&2
        exit 1
    }
    check lua5.4 "$tmp/rocks" 5.4
    LUA_PATH="$tmp/rocks/share/lua/5.4/?.lua;$tmp/rocks/share/lua/5.4/?/init.lua;;" lua5.4 -e 'assert(require("cometkey.health").check)
        assert(require("cometkey.cli").main)'
    (cd / && "$tmp/rocks/bin/cometkey" --version) | grep -q "^cometkey 0.2.0$" || fail "$rockspec: bin/cometkey"
done
echo "install: make install (any PREFIX) and luarocks make (both rockspecs) work"
