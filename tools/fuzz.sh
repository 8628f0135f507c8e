#!/bin/sh
# tools/fuzz.sh - runs every Lua fuzz loop fuzz/fuzz_<name>.lua (lua5.4, needs
# `make build-5.4` for the CLI target) and builds every libFuzzer target fuzz/fuzz_<name>.c with clang
# (-fsanitize=fuzzer,address,undefined) into build/fuzz/ and runs each for
# SECONDS on a scratch corpus (build/fuzz/corpus-<name>, seeded from
# fuzz/corpus/<name>; nothing is written into the repository). Fails on any
# crash, leak, timeout or sanitizer report.
#
#   sh tools/fuzz.sh SECONDS [NAME...]      e.g. sh tools/fuzz.sh 10
#                                                sh tools/fuzz.sh 600 json codec
# Environment: FUZZ_CC (default clang), FUZZ_FLAGS (extra libFuzzer flags).
set -eu

seconds=${1:-10}
[ $# -gt 0 ] && shift
case $seconds in
'' | *[!0-9]*)
    echo "usage: sh tools/fuzz.sh SECONDS [NAME...]" >&2
    exit 2
    ;;
esac

cc=${FUZZ_CC:-clang}
out=build/fuzz
lua_inc=/usr/include/lua5.4
cflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="$cflags -std=c99 -D_POSIX_C_SOURCE=200809L -I$lua_inc -Isrc $(pkg-config --cflags jansson 2>/dev/null || true)"

# The sources each target links besides its own file (see each target's header).
sources_of() {
    case $1 in
    allowlist) echo "src/ck_cidr.c" ;;
    json) echo "src/ck_json.c src/ck_utf8.c" ;;
    codec) make -s --no-print-directory print-CORE_SRC ;; # the whole core (the Makefile's list)
    *) return 1 ;;
    esac
}
libs_of() {
    case $1 in
    allowlist) echo "" ;;
    *) echo "-llua5.4 -ljansson" ;;
    esac
}

if [ $# -eq 0 ]; then
    # shellcheck disable=SC2046
    set -- $(for f in fuzz/fuzz_*.c fuzz/fuzz_*.lua; do basename "$f" | sed 's/^fuzz_//; s/\.[a-z]*$//'; done)
fi

mkdir -p "$out"
failed=""
for name in "$@"; do
    # Lua targets (code libFuzzer cannot drive): a deterministic-seeded, bounded loop.
    if [ -f "fuzz/fuzz_$name.lua" ]; then
        log=$out/fuzz_$name.log
        echo "== fuzz_$name: ${seconds}s, Lua loop (log $log)"
        if CK_BUILD=${CK_BUILD:-build/5.4} lua5.4 "fuzz/fuzz_$name.lua" "$seconds" >"$log" 2>&1; then
            tail -n 1 "$log"
        else
            tail -n 20 "$log" >&2
            echo "fuzz_$name: FAILED" >&2
            failed="$failed $name"
        fi
        continue
    fi
    src=fuzz/fuzz_$name.c
    bin=$out/fuzz_$name
    [ -f "$src" ] || { echo "fuzz: no target $src" >&2; exit 2; }
    extra=$(sources_of "$name") || {
        echo "fuzz: $src has no entry in sources_of() in tools/fuzz.sh; add its sources there" >&2
        exit 2
    }
    echo "== fuzz_$name: build"
    # shellcheck disable=SC2086,SC2046
    $cc $cflags $extra "$src" $(libs_of "$name") -o "$bin"

    corpus=$out/corpus-$name
    artifacts=$out/artifacts-$name
    log=$out/fuzz_$name.log
    mkdir -p "$corpus" "$artifacts"
    if [ -d "fuzz/corpus/$name" ]; then
        cp -R "fuzz/corpus/$name/." "$corpus/"
    fi
    echo "== fuzz_$name: ${seconds}s on $corpus (log $log)"
    rc=0
    # shellcheck disable=SC2086
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:symbolize=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        "$bin" -max_total_time="$seconds" -error_exitcode=1 -detect_leaks=1 -timeout=25 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" \
        ${FUZZ_FLAGS:-} "$corpus" >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ] || grep -Eq "ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|==ERROR: libFuzzer|deadly signal" "$log"; then
        tail -n 60 "$log" >&2
        echo "fuzz_$name: FAILED (exit $rc); inputs in $artifacts/" >&2
        failed="$failed $name"
        continue
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -n 1)
    echo "fuzz_$name: ok, ${execs:-?} executions, $cov"
done

if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed" >&2
    exit 1
fi
echo "fuzz: all targets clean"
