#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the test tiers need (.ci/system-packages.txt, the list the
# Dagger toolchain container installs too) when they are missing and we may install packages.
# Idempotent: does nothing when every package's binary is already there.
#   --list     print the packages of the list, one a line, and install nothing
#   --missing  print the packages whose binary is missing, and install nothing
set -euo pipefail

list="$(dirname "$0")/system-packages.txt"
mode="${1:-install}"
case $mode in
  install | --list | --missing) ;;
  *) echo "usage: $0 [--list | --missing]" >&2; exit 2 ;;
esac

# A probe is a command name on PATH or an absolute path (glob allowed) to an installed file.
present() {
  if [[ $1 == /* ]]; then compgen -G "$1" >/dev/null; else command -v "$1" >/dev/null 2>&1; fi
}

missing=()
while read -r package probe _; do
  [[ -z $package || $package == \#* ]] && continue
  [[ $mode == --list ]] && { echo "$package"; continue; }
  present "${probe:?"$list: package $package has no binary to probe"}" || missing+=("$package")
done <"$list"
if [[ $mode == --missing ]]; then
  for package in "${missing[@]}"; do echo "$package"; done
  exit 0
fi
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
