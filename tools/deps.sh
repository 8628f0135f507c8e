#!/bin/sh
# tools/deps.sh PROFILE - make sure the Debian packages a make target needs are
# installed. As root, installs the missing ones with apt-get; otherwise prints
# the exact command and fails. PROFILE: build | demo | test | bench | fuzz.
set -eu
profile=${1:-test}

build="gcc make pkg-config lua5.4 liblua5.4-dev libcurl4-openssl-dev libjansson-dev"
runtime="lua-cjson lua-socket nginx-light libnginx-mod-http-lua openssl ca-certificates"
test="lua5.1 liblua5.1-0-dev luajit2 libluajit2-5.1-dev lua-busted lua-check valgrind
      clang libclang-rt-14-dev clang-format neovim curl lua-resty-core minetest-server minetest-data strace luarocks"
bench="gnuplot-nox wrk grepcidr python3-requests curl"

case "$profile" in
build) want="$build" ;;
demo) want="$build $runtime" ;;
test) want="$build $runtime $test" ;;
fuzz) want="$build clang libclang-rt-14-dev liblua5.4-dev" ;;
bench) want="$build $runtime $test $bench" ;;
*) echo "deps.sh: unknown profile $profile" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine has no package lists yet; refresh them once if needed.
    if ! apt-get install -y --no-install-recommends $missing >/tmp/cometkey-apt.log 2>&1; then
        apt-get update >/tmp/cometkey-apt-update.log 2>&1 || true
        apt-get install -y --no-install-recommends $missing >/tmp/cometkey-apt.log 2>&1 || {
            tail -20 /tmp/cometkey-apt.log >&2
            echo "deps: apt-get failed; run: $cmd" >&2
            exit 1
        }
    fi
    # Debian starts nginx on install where it can; the tests run their own.
    if command -v service >/dev/null 2>&1; then service nginx stop >/dev/null 2>&1 || true; fi
else
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: run as root:  $cmd" >&2
    exit 1
fi
