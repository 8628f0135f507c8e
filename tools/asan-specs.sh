#!/bin/sh
# tools/asan-specs.sh - builds cometkey.core and cometkey.curl with
# AddressSanitizer + UndefinedBehaviorSanitizer into build/asan/cometkey/ and
# runs the Lua 5.4 specs against them with the sanitizer runtime preloaded into
# lua5.4 (leak detection on). Fails on any sanitizer report. The LSan
# suppressions (tools/lsan.supp) cover third-party and interpreter noise only.
#
#   sh tools/asan-specs.sh [busted args...]     (default: the whole spec/ dir)
# Environment: ASAN_CC=gcc|clang (default gcc).
set -eu

cc=${ASAN_CC:-gcc}
out=build/asan
mod=$out/cometkey
log=$out/asan
mkdir -p "$mod"
rm -f "$log".*

san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
cflags="-std=c99 -Wall -Wextra -pedantic -fPIC -fvisibility=hidden -D_POSIX_C_SOURCE=200809L -g -O1"
cflags="$cflags -I/usr/include/lua5.4 -Isrc $(pkg-config --cflags libcurl jansson)"
core_src=$(make -s --no-print-directory print-CORE_SRC) # the lists are in the Makefile
curl_src=$(make -s --no-print-directory print-CURL_SRC)

case $cc in
*clang*)
    san="$san -shared-libasan"
    runtime=$($cc -print-file-name=libclang_rt.asan-x86_64.so)
    ;;
*)
    runtime=$($cc -print-file-name=libasan.so)
    ;;
esac
[ -f "$runtime" ] || { echo "asan: no ASan runtime for $cc ($runtime)" >&2; exit 2; }
runtime=$(readlink -f "$runtime")

echo "== asan: build with $cc into $mod"
# shellcheck disable=SC2086,SC2046
$cc $cflags $san -shared -o "$mod/core.so" $core_src $(pkg-config --libs jansson)
# shellcheck disable=SC2086,SC2046
$cc $cflags $san -shared -o "$mod/curl.so" $curl_src $(pkg-config --libs libcurl)

# A small helper preloaded after the runtime: it drops LD_PRELOAD once lua5.4
# has started, so the processes the specs start (the mock's nginx, sh, mktemp)
# run without the sanitizer, and it makes dlclose a no-op, so a leak report at
# exit can still name the frames of the C modules Lua has closed.
cat >"$out/helper.c" <<'C_EOF'
/* Preloaded into lua5.4 by tools/asan-specs.sh (see there). */
#include <stdlib.h>
int dlclose(void *handle);
__attribute__((constructor)) static void ck_unpreload(void)
{
    unsetenv("LD_PRELOAD");
}
int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
C_EOF
$cc -shared -fPIC -o "$out/helper.so" "$out/helper.c"

echo "== busted on lua5.4 with $runtime preloaded"
[ $# -gt 0 ] || set -- spec
start=$(date +%s)
rc=0
# Reports go to $log.<pid> (busted's own output stays readable); read afterwards.
LD_PRELOAD="$runtime $(pwd)/$out/helper.so" \
    ASAN_OPTIONS="detect_leaks=1:log_path=$log:abort_on_error=0:halt_on_error=1:exitcode=86:detect_odr_violation=0:strict_init_order=1:allocator_may_return_null=0" \
    LSAN_OPTIONS="suppressions=$(pwd)/tools/lsan.supp:print_suppressions=0" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$log" \
    CK_BUILD=$out CK_ASAN=1 lua5.4 /usr/bin/busted --cpath="$out/?.so" --lpath='lua/?.lua;lua/?/init.lua' \
    --exclude-tags=novalgrind "$@" || rc=$?
end=$(date +%s)

reports=$(grep -l -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Leak|Undefined)" "$log".* 2>/dev/null || true)
if [ -n "$reports" ]; then
    for f in $reports; do
        echo "---- $f" >&2
        cat "$f" >&2
    done
    echo "asan: sanitizer report(s) above" >&2
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    echo "asan: busted failed (exit $rc)" >&2
    exit 1
fi
echo "asan: specs passed, no sanitizer reports ($((end - start)) s)"
