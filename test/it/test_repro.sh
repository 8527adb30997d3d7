#!/usr/bin/env bash
# Same sources -> byte-identical binary: `make repro-check` builds twice in two directories.
. "$(dirname "$0")/../lib/tap.sh"
cd "$NS_ROOT"
out=$(bash scripts/repro-check.sh 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "two builds in two directories give byte-identical binaries" test "$rc" = 0
tap_done
