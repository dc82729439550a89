#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the test tiers need (PostgreSQL and Redis servers, and the
# browser and registry used by later tiers) when they are missing and we may install packages.
# Idempotent: does nothing when every binary is already there.
set -euo pipefail

# binary -> package that provides it
declare -A wanted=(
  [redis-server]=redis-server
  [postgres]=postgresql
  [chromium]=chromium
  [docker-registry]=docker-registry
)

pg_bin() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }

missing=()
for bin in "${!wanted[@]}"; do
  if [[ $bin == postgres ]]; then pg_bin && continue; fi
  command -v "$bin" >/dev/null 2>&1 || missing+=("${wanted[$bin]}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
