#!/bin/sh
# tools/check-rockspec.sh "CORE_SRC" "CURL_SRC" - fails when either rockspec's
# source lists differ from the Makefile's (called by `make lint`).
set -eu
for spec in cometkey-scm-1.rockspec cometkey-0.2.0-1.rockspec; do
# the sources = { ... } of each module, in file order: core first, then curl
lists=$(tr '\n' ' ' <"$spec" | grep -o 'sources *= *{[^}]*}' | sed 's/sources *= *{//; s/}//; s/[",]/ /g')
core=$(echo "$lists" | sed -n 1p)
norm() { echo "$*" | tr -s ' \t' '\n' | sed '/^$/d' | sort | tr '\n' ' '; }
rock_core=$(norm "$(echo "$lists" | sed -n 1p)")
rock_curl=$(norm "$(echo "$lists" | sed -n 2p)")
[ -n "$core" ] || { echo "check-rockspec: no sources list in $spec" >&2; exit 1; }
ok=1
[ "$rock_core" = "$(norm "$1")" ] || { echo "check-rockspec: $spec cometkey.core sources ($rock_core) differ from the Makefile's CORE_SRC ($(norm "$1"))" >&2; ok=0; }
[ "$rock_curl" = "$(norm "$2")" ] || { echo "check-rockspec: $spec cometkey.curl sources ($rock_curl) differ from the Makefile's CURL_SRC ($(norm "$2"))" >&2; ok=0; }
[ $ok = 1 ] && echo "check-rockspec: $spec lists the Makefile's sources"
[ $ok = 1 ]
done
