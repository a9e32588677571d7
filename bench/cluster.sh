#!/usr/bin/env bash
# Cluster start-up through a site mirror: N nodes (separate e2s processes)
# cold-start one package of a 256 MiB file and 50 small ones, with and
# without an s3:// mirror on moto_server, upstream served by nginx. Writes its
# section of bench/RESULTS.md (see bench/cluster.py).
#
#   bench/cluster.sh [--nodes 8,32] [--big-mib 256] [--small 50] [--no-results]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

results=(--results bench/RESULTS.md)
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-results) results=() ;;
    --nodes|--big-mib|--small) args+=("$1" "$2"); shift ;;
    *) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 2 ;;
  esac
  shift
done
sudo=""
[[ $(id -u) -eq 0 ]] || sudo=sudo
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || $sudo apt-get install -y -q nginx-light
./scripts/setup.sh --quiet --target e2s_cli
work=$(mktemp -d "${TMPDIR:-/tmp}/e2s-cluster.XXXXXX")
trap 'rm -rf "$work"' EXIT
CLUSTER_ARGS="--connections 1" /usr/bin/python3 bench/cluster.py --e2s build/e2s --work "$work" \
  "${args[@]}" "${results[@]}"
