#!/bin/sh
# bench/curl_loop.sh - the curl CLI comparator: one curl process per request,
# as a shell script calling curl in a loop would do.
#   sh bench/curl_loop.sh URL N METHOD BODY [HEADER ...]
# Prints one line: requests=N seconds=S failed=F (wall time of the whole loop).
set -u
url=$1 n=$2 method=$3 body=$4
shift 4
for h in "$@"; do # "$@" becomes -H h1 -H h2 ...
    set -- "$@" -H "$h"
    shift
done
start=$(date +%s.%N)
failed=0
i=0
while [ "$i" -lt "$n" ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X "$method" --data-binary "$body" "$@" "$url")
    [ "$code" = 200 ] || failed=$((failed + 1))
    i=$((i + 1))
done
end=$(date +%s.%N)
awk -v n="$n" -v s="$start" -v e="$end" -v f="$failed" \
    'BEGIN { printf "requests=%d seconds=%.6f failed=%d\n", n, e - s, f }'
