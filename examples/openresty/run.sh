#!/bin/sh
# examples/openresty/run.sh - starts examples/openresty/nginx.conf from this checkout
# with a resolver that works out of the box: nginx cannot read /etc/resolv.conf, so
# this script turns its nameserver lines into resolver.conf, next to a copy of
# nginx.conf in $COMETKEY_EXAMPLE_DIR (default /tmp/cometkey-example), and runs
#   nginx -p <checkout> -c $COMETKEY_EXAMPLE_DIR/nginx.conf [ARGS...]
# Environment: COMETKEY_TOKEN, COMETKEY_BASE_URL, COMETKEY_USER_ID (read by the Lua
# code), COMETKEY_EXAMPLE_PORT (default 8080), RESOLV_CONF (default /etc/resolv.conf).
# `run.sh --resolver` prints the resolver line and exits.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
resolv=${RESOLV_CONF:-/etc/resolv.conf}
out=${COMETKEY_EXAMPLE_DIR:-/tmp/cometkey-example}
port=${COMETKEY_EXAMPLE_PORT:-8080}

# "nameserver 10.0.0.1" -> 10.0.0.1; IPv6 servers in brackets; a zone (%eth0) is dropped.
servers=$(awk '$1 == "nameserver" && $2 != "" {
    a = $2; sub(/%.*/, "", a); if (a ~ /:/) a = "[" a "]"; printf "%s ", a }' "$resolv" 2>/dev/null || true)
if [ -z "$servers" ]; then
    echo "run.sh: no nameserver line in $resolv; set RESOLV_CONF or edit the resolver line" >&2
    exit 1
fi
line="resolver ${servers}ipv6=off;"
if [ "${1:-}" = "--resolver" ]; then
    echo "$line"
    exit 0
fi

mkdir -p "$out"
echo "$line" >"$out/resolver.conf"
# The copy: its include finds resolver.conf beside it; the port and pid file follow
# the settings above; $prefix (the -p directory) is the checkout.
sed -e "s|listen 127.0.0.1:8080;|listen 127.0.0.1:$port;|" \
    -e "s|pid /tmp/cometkey-example.pid;|pid $out/nginx.pid;|" \
    "$here/nginx.conf" >"$out/nginx.conf"
exec nginx -p "$repo" -c "$out/nginx.conf" "$@"
