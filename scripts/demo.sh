#!/usr/bin/env bash
# The ZTOS demo: a 4-host encrypted mesh on this machine, built from profiles
# alone (zero-touch enrolment), then every pair checked over the overlay.
set -euo pipefail
cd "$(dirname "$0")/.."
ZTOS=.venv/bin/ztos
LAB=demo
[ "$(id -u)" -eq 0 ] || { echo "make demo needs root (network namespaces)" >&2; exit 1; }
$ZTOS lab down --name "$LAB" >/dev/null 2>&1 || true
$ZTOS lab up --nodes 4 --name "$LAB"
$ZTOS lab verify --name "$LAB"
$ZTOS lab status --name "$LAB"
cat <<MSG

The lab keeps running. Next steps:
  $ZTOS lab verify --name $LAB     # check every pair again
  $ZTOS lab add-host --name $LAB   # enrol a 5th host while it runs
  $ZTOS lab down --name $LAB       # remove every namespace, process and socket
MSG
