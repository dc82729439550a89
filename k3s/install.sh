#!/usr/bin/env bash
# Installs the pinned K3s version as a systemd service on a single Ubuntu LTS node.
# Idempotent: a re-run keeps what was configured (registry credentials included) and restarts
# K3s only when the binary, a config file or the unit changed.
#
#   sudo k3s/install.sh                     (downloads the pinned, checksum-verified binary)
#   sudo k3s/install.sh --airgap DIR        (no network: DIR holds k3s[-arm64] and
#                                            k3s-airgap-images-<arch>.tar.zst; see README)
#
# Environment (optional): REGISTRY_USERNAME/REGISTRY_PASSWORD (ghcr.io pull credentials; set them
# again only to change them), KUBECONFIG_USER (whose ~/.kube/config to write; default: the sudo
# user, else root).
set -euo pipefail
# shellcheck source=k3s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Every host path below ROOT (empty on a real host), so tests can run the script on a fake root.
ROOT=${K3S_ROOT:-}
BIN=${K3S_BIN:-$ROOT/usr/local/bin/k3s}
CONF_DIR=$ROOT/etc/rancher/k3s
UNIT=$ROOT/etc/systemd/system/k3s.service
IMAGES_DIR=$ROOT/var/lib/rancher/k3s/agent/images

installed_version() {
  [[ -x $BIN ]] || return 0
  "$BIN" --version 2>/dev/null | awk 'NR == 1 { print $3 }'
}

# Puts the K3s binary in place, from the release or from an air-gap directory, only when its
# SHA-256 equals the pin in versions.env (K3S_SHA256_AMD64 / _ARM64), never a checksum fetched
# from the same release.
install_k3s_binary() {
  local airgap=$1 arch binary work
  arch=$(host_arch)
  binary=$(k3s_asset "$arch")
  work=$(mktemp -d)
  trap 'rm -rf "$work"; trap - RETURN' RETURN
  if [[ -n $airgap ]]; then
    log "installing K3s $K3S_VERSION from $airgap/$binary"
    cp "$airgap/$binary" "$work/$binary"
    verify_sha256 "$work/$binary" "K3S_SHA256_${arch^^}"
  else
    log "downloading K3s $K3S_VERSION ($binary)"
    fetch_verified "https://github.com/k3s-io/k3s/releases/download/${K3S_VERSION//+/%2B}/$binary" \
      "$work/$binary" "K3S_SHA256_${arch^^}"
  fi
  install -D -m 0755 "$work/$binary" "$BIN"
  for tool in kubectl crictl ctr; do
    ln -sfn "$BIN" "$(dirname "$BIN")/$tool"
  done
  log "installed $BIN"
}

# Kept for the tests and for readers: the online path of install_k3s_binary.
download_k3s() {
  install_k3s_binary ""
}

# Air gap: the release's image archive where K3s imports it at start. Prints "changed" when it
# was put there.
install_airgap_images() {
  local airgap=$1 arch archive
  arch=$(host_arch)
  archive=k3s-airgap-images-$arch.tar.zst
  [[ -f $airgap/$archive ]] || die "$airgap/$archive is missing (see k3s/README.md, Air-gapped install)"
  verify_sha256 "$airgap/$archive" "K3S_AIRGAP_IMAGES_SHA256_${arch^^}"
  install_if_changed "$airgap/$archive" "$IMAGES_DIR/$archive" 0644
}

# A YAML double-quoted string: backslashes and quotes escaped; control characters refused.
yaml_quoted() {
  local value=$1
  [[ $value != *[[:cntrl:]]* ]] || die "registry credentials must not contain control characters"
  value=${value//\\/\\\\}
  printf '"%s"' "${value//\"/\\\"}"
}

# registries.yaml from git, plus the ghcr.io credentials: from REGISTRY_USERNAME/PASSWORD when
# both are set, else the ones already installed (a re-run without them keeps them).
write_registries() {
  local target=$1 installed=$CONF_DIR/registries.yaml
  cp "$K3S_DIR/registries.yaml" "$target"
  if [[ -n ${REGISTRY_USERNAME:-} && -n ${REGISTRY_PASSWORD:-} ]]; then
    local username password
    username=$(yaml_quoted "$REGISTRY_USERNAME")
    password=$(yaml_quoted "$REGISTRY_PASSWORD")
    printf 'configs:\n  ghcr.io:\n    auth:\n      username: %s\n      password: %s\n' \
      "$username" "$password" >>"$target"
  elif [[ -n ${REGISTRY_USERNAME:-}${REGISTRY_PASSWORD:-} ]]; then
    die "set both REGISTRY_USERNAME and REGISTRY_PASSWORD, or neither (to keep the installed ones)"
  elif [[ -f $installed ]] && grep -q '^configs:' "$installed"; then
    log "keeping the registry credentials already in $installed"
    sed -n '/^configs:/,$p' "$installed" >>"$target"
  fi
}

write_unit() {
  cat >"$1" <<'UNIT'
[Unit]
Description=Lightweight Kubernetes (K3s server)
Documentation=https://docs.k3s.io
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
EnvironmentFile=-/etc/default/k3s
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/k3s server
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
UNIT
}

# Installs the config files and the unit; prints one "changed" per file that changed. Runs in a
# command substitution: inherit_errexit (lib.sh) makes any failure here fail the caller.
install_config() {
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"; trap - RETURN' RETURN
  write_registries "$work/registries.yaml"
  write_unit "$work/k3s.service"
  install_if_changed "$K3S_DIR/config.yaml" "$CONF_DIR/config.yaml" 0600
  install_if_changed "$K3S_DIR/pod-security.yaml" "$CONF_DIR/pod-security.yaml" 0600
  install_if_changed "$work/registries.yaml" "$CONF_DIR/registries.yaml" 0600
  install_if_changed "$work/k3s.service" "$UNIT" 0644
}

# Merges K3s's kubeconfig into the user's ~/.kube/config as the context, cluster and user "k3s":
# their other contexts and their current context stay; the k3s entries are refreshed each run
# (K3s renews its certificates). Merged by kubectl itself (`config view --flatten` over both
# files, the first file winning for a name).
setup_kubeconfig() {
  local user=${KUBECONFIG_USER:-${SUDO_USER:-root}} home config work current=""
  home=$(getent passwd "$user" | cut -d: -f6)
  [[ -n $home ]] || die "no home directory for $user"
  config=$ROOT$home/.kube/config
  work=$(mktemp -d)
  trap 'rm -rf "$work"; trap - RETURN' RETURN
  sed -E 's/^([ -]*(name|cluster|user|current-context)): default$/\1: k3s/' "$CONF_DIR/k3s.yaml" \
    >"$work/k3s.yaml"
  if [[ -s $config ]]; then
    current=$(KUBECONFIG=$config "$BIN" kubectl config current-context 2>/dev/null || true)
    KUBECONFIG=$work/k3s.yaml:$config "$BIN" kubectl config view --flatten >"$work/merged"
    if [[ -n $current ]]; then
      KUBECONFIG=$work/merged "$BIN" kubectl config use-context "$current" >/dev/null
    fi
  else
    cp "$work/k3s.yaml" "$work/merged"
  fi
  install -d -m 0700 -o "$user" "$ROOT$home/.kube"
  install -m 0600 -o "$user" "$work/merged" "$config"
  log "kubeconfig for $user: context k3s in $home/.kube/config (current: ${current:-k3s})"
}

wait_for_node() {
  log "waiting for the API server and the node"
  for _ in $(seq 1 60); do
    [[ -f $CONF_DIR/k3s.yaml ]] && "$BIN" kubectl get nodes >/dev/null 2>&1 && break
    sleep 5
  done
  "$BIN" kubectl wait --for=condition=Ready node --all --timeout=300s
}

usage() {
  echo "usage: $0 [--airgap DIR]" >&2
  exit 2
}

main() {
  local airgap="" changes="" restart=""
  case ${1:-} in
    "") ;;
    --airgap)
      [[ $# -eq 2 && -d $2 ]] || usage
      airgap=$(cd "$2" && pwd)
      ;;
    *) usage ;;
  esac
  require_root
  require_command sha256sum "apt-get install -y coreutils"
  [[ -n $airgap ]] || require_command curl "apt-get install -y curl"
  # Every pin checked before the machine is changed.
  if [[ -n $airgap ]]; then
    AIRGAP_DIR=$airgap require_pins "K3S_SHA256_$(host_arch | tr '[:lower:]' '[:upper:]')" \
      "K3S_AIRGAP_IMAGES_SHA256_$(host_arch | tr '[:lower:]' '[:upper:]')"
  else
    require_pins "K3S_SHA256_$(host_arch | tr '[:lower:]' '[:upper:]')"
  fi
  if [[ $(installed_version) == "$K3S_VERSION" ]]; then
    log "K3s $K3S_VERSION already installed"
  else
    install_k3s_binary "$airgap"
    restart=yes
  fi
  if [[ -n $airgap ]]; then
    changes=$(install_airgap_images "$airgap")
  fi
  changes+=$(install_config)
  [[ -z $changes ]] || restart=yes
  systemctl daemon-reload
  systemctl enable k3s.service >/dev/null
  if [[ -n $restart ]] || ! systemctl is-active --quiet k3s.service; then
    log "(re)starting k3s.service"
    systemctl restart k3s.service
  else
    log "nothing changed: k3s.service keeps running"
  fi
  wait_for_node
  setup_kubeconfig
  log "K3s $K3S_VERSION is up; next: k3s/bootstrap.sh"
}

# Run when executed; only define the functions when sourced (tests).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
