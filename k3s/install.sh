#!/usr/bin/env bash
# Installs the pinned K3s version as a systemd service on an Ubuntu LTS node: a single node
# (default) or one node of a multi-server cluster (--role; k3s/README.md, "Adding a node").
# Idempotent: a re-run keeps what was configured (registry credentials and cluster token
# included) and restarts K3s only when the binary, a config file or the unit changed.
#
#   sudo k3s/install.sh                     (downloads the pinned, checksum-verified binary)
#   sudo k3s/install.sh --airgap DIR        (no network: DIR holds k3s[-arm64] and
#                                            k3s-airgap-images-<arch>.tar.zst; see README)
#   sudo k3s/install.sh --role server-init --address HOST       (first server: embedded etcd;
#                                            converts an existing single node in place)
#   sudo K3S_TOKEN_FILE=F k3s/install.sh --role server --server https://HOST:6443 --servers N
#   sudo K3S_TOKEN_FILE=F k3s/install.sh --role agent --server https://HOST:6443
#
# Environment (optional): REGISTRY_USERNAME/REGISTRY_PASSWORD (ghcr.io pull credentials; set them
# again only to change them), KUBECONFIG_USER (whose ~/.kube/config to write; default: the sudo
# user, else root), K3S_TOKEN_FILE (a file, mode 0600, holding the cluster token: required to
# join, never an argument; a re-run keeps the installed token).
set -euo pipefail
# shellcheck source=k3s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Every host path below ROOT (empty on a real host), so tests can run the script on a fake root.
ROOT=${K3S_ROOT:-}
BIN=${K3S_BIN:-$ROOT/usr/local/bin/k3s}
CONF_DIR=$ROOT/etc/rancher/k3s
UNIT_DIR=$ROOT/etc/systemd/system
DATA_DIR=$ROOT/var/lib/rancher/k3s
IMAGES_DIR=$DATA_DIR/agent/images
# The node's part of a multi-server cluster (servers only), read by K3s after config.yaml.
CLUSTER_CONFIG=$CONF_DIR/config.yaml.d/50-cluster.yaml
# Paths as K3s sees them on the host (they are written into its config).
TOKEN_PATH=/etc/rancher/k3s/cluster-token
# etcd snapshots and the token a restore needs, in one directory to back up together.
BACKUP_PATH=/var/lib/rancher/k3s/backup
SNAPSHOT_PATH=$BACKUP_PATH/etcd-snapshots
# Settings every server of a cluster must share (K3s refuses a joining server whose critical
# ones differ): they come from config.yaml in git, never from a node's own drop-in.
CLUSTER_WIDE_KEYS="cluster-cidr service-cidr cluster-dns cluster-domain disable flannel-backend
  secrets-encryption egress-selector-mode disable-network-policy kube-apiserver-arg"

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

# The unit of a server (k3s.service, Type=notify: ready once the API serves) or of an agent
# (k3s-agent.service, started as soon as it runs, as the upstream installer does).
write_unit() {
  local command=server type=notify
  if [[ $ROLE == agent ]]; then
    command=agent type=exec
  fi
  cat >"$1" <<UNIT
[Unit]
Description=Lightweight Kubernetes (K3s $command)
Documentation=https://docs.k3s.io
Wants=network-online.target
After=network-online.target

[Service]
Type=$type
EnvironmentFile=-/etc/default/$SERVICE
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/k3s $command
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

# What this node already runs: etcd (a server of a multi-server cluster), sqlite (a single
# node), agent, or none.
node_state() {
  if [[ -d $DATA_DIR/server/db/etcd || -f $CLUSTER_CONFIG ]]; then
    echo etcd
  elif [[ -f $DATA_DIR/server/db/state.db ]]; then
    echo sqlite
  elif [[ -f $UNIT_DIR/k3s-agent.service ]]; then
    echo agent
  else
    echo none
  fi
}

# Refuses a role that does not fit what the node runs: nothing is converted silently but a
# single node turned into the first server (K3s moves its SQLite data into etcd).
check_role_fits() {
  local state
  state=$(node_state)
  case $ROLE:$state in
    single:etcd)
      die "this node is a server of a multi-server cluster: re-run with its --role (server-init or server)"
      ;;
    single:agent | server-init:agent | server:agent)
      die "this node is an agent (k3s-agent.service): run k3s/uninstall.sh --yes before making it a server"
      ;;
    server:sqlite)
      die "this node holds a single-node datastore ($DATA_DIR/server/db/state.db) that joining would discard: convert it with --role server-init, or run k3s/uninstall.sh --yes first"
      ;;
    agent:sqlite | agent:etcd)
      die "this node is a K3s server: run k3s/uninstall.sh --yes before making it an agent"
      ;;
  esac
}

# The first server started on a single node's SQLite datastore: K3s converts it to embedded
# etcd when restarted with cluster-init.
converting_sqlite() {
  [[ $ROLE == server-init && -f $DATA_DIR/server/db/state.db && ! -d $DATA_DIR/server/db/etcd ]]
}

# A copy of the SQLite datastore, taken with K3s stopped (a consistent file), before the
# conversion: the way back is this copy and the single-node config.
back_up_sqlite() {
  local target=$ROOT$BACKUP_PATH/sqlite-before-etcd file
  log "converting the single node's SQLite datastore to embedded etcd (copy in $BACKUP_PATH/sqlite-before-etcd)"
  systemctl stop k3s.service
  install -d -m 0700 "$target"
  for file in "$DATA_DIR"/server/db/state.db*; do
    cp -p "$file" "$target/"
  done
}

# Settings every server must share come from config.yaml in git; a drop-in of this node that
# sets one of them would make this server differ from the others (K3s refuses a joining server
# whose critical settings differ, and the others would not follow).
check_drop_ins() {
  local file key
  for file in "$CONF_DIR"/config.yaml.d/*.yaml; do
    [[ -f $file && $file != "$CLUSTER_CONFIG" ]] || continue
    for key in $CLUSTER_WIDE_KEYS; do
      if grep -Eq "^${key}\+?:" "$file"; then
        die "$file sets $key, which every server must share: set it in k3s/config.yaml (all servers) instead"
      fi
    done
  done
}

# A token file must be readable by root only and hold one token (never printed).
check_token_file() {
  local file=$1 mode
  [[ -f $file ]] || die "K3S_TOKEN_FILE $file does not exist"
  mode=$(stat -c %a "$file")
  (((8#$mode & 8#077) == 0)) || die "K3S_TOKEN_FILE $file is readable by others (mode $mode): chmod 600 it"
  [[ $(wc -l <"$file") -le 1 && $(tr -d '\n' <"$file") =~ ^[[:graph:]]+$ ]] ||
    die "K3S_TOKEN_FILE $file must hold one token on one line"
}

# Where this node's cluster token comes from, checked before anything changes: K3S_TOKEN_FILE,
# else the installed one; the first server may also take its own (an existing single node's)
# or make one.
check_token_source() {
  local installed=$ROOT$TOKEN_PATH
  if [[ -n ${K3S_TOKEN_FILE:-} ]]; then
    check_token_file "$K3S_TOKEN_FILE"
    if [[ -f $installed ]] && ! cmp -s <(tr -d '\n' <"$K3S_TOKEN_FILE") <(tr -d '\n' <"$installed"); then
      die "K3S_TOKEN_FILE differs from the installed $TOKEN_PATH: changing a cluster's token is 'k3s token rotate', not a re-install"
    fi
  elif [[ ! -f $installed && $ROLE != server-init ]]; then
    usage "--role $ROLE needs the cluster token: K3S_TOKEN_FILE=<file, mode 0600> (on the first server: $TOKEN_PATH)"
  fi
}

# Installs the cluster token (0600) at TOKEN_PATH, which the config names (token-file): it is
# never on a command line, in the unit or in a log. Prints "changed" when it changed.
install_token() {
  local work=$1 existing=$DATA_DIR/server/token
  if [[ -n ${K3S_TOKEN_FILE:-} ]]; then
    tr -d '\n' <"$K3S_TOKEN_FILE" >"$work/token"
  elif [[ -f $ROOT$TOKEN_PATH ]]; then
    return 0
  elif [[ -f $existing ]]; then
    # A single node being converted keeps its token: its datastore is encrypted with it.
    tr -d '\n' <"$existing" >"$work/token"
  else
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"
  fi
  install_if_changed "$work/token" "$ROOT$TOKEN_PATH" 0600
}

# A server's part of the cluster, after config.yaml (the settings shared by every server).
write_cluster_config() {
  {
    echo "# Written by k3s/install.sh --role $ROLE (k3s/README.md, \"Adding a node\")."
    if [[ $ROLE == server-init ]]; then
      echo "cluster-init: true"
    else
      echo "server: $SERVER_URL"
    fi
    echo "token-file: $TOKEN_PATH"
    echo "# The fixed registration address (DNS name or virtual IP) in every server's certificate."
    printf 'tls-san+:\n  - %s\n' "$ADDRESS"
    printf 'node-label:\n  - chat-platform/role=server\n'
    echo "# etcd snapshots every 6 hours, 28 kept (a week), beside the token a restore needs."
    echo "etcd-snapshot-dir: $SNAPSHOT_PATH"
    echo 'etcd-snapshot-schedule-cron: "0 */6 * * *"'
    echo "etcd-snapshot-retention: 28"
  } >"$1"
}

# An agent's whole config: where to register and how to prove it may.
write_agent_config() {
  {
    echo "# Written by k3s/install.sh --role agent (k3s/README.md, \"Adding a node\")."
    echo "server: $SERVER_URL"
    echo "token-file: $TOKEN_PATH"
    printf 'node-label:\n  - chat-platform/role=agent\n'
  } >"$1"
}

# Installs the config files, the unit and (in a cluster) the token; prints one "changed" per
# file that changed. Runs in a command substitution: inherit_errexit (lib.sh) makes any failure
# here fail the caller.
install_config() {
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"; trap - RETURN' RETURN
  write_registries "$work/registries.yaml"
  write_unit "$work/$SERVICE.service"
  if [[ $ROLE == agent ]]; then
    write_agent_config "$work/config.yaml"
    install_if_changed "$work/config.yaml" "$CONF_DIR/config.yaml" 0600
  else
    install_if_changed "$K3S_DIR/config.yaml" "$CONF_DIR/config.yaml" 0600
    install_if_changed "$K3S_DIR/pod-security.yaml" "$CONF_DIR/pod-security.yaml" 0600
  fi
  if [[ $ROLE != single ]]; then
    install_token "$work"
  fi
  if [[ $ROLE == server-init || $ROLE == server ]]; then
    write_cluster_config "$work/cluster.yaml"
    install_if_changed "$work/cluster.yaml" "$CLUSTER_CONFIG" 0600
    install -d -m 0700 "$ROOT$SNAPSHOT_PATH"
    # Not a restart reason: a copy for the backup of the snapshots' directory.
    install_if_changed "$ROOT$TOKEN_PATH" "$ROOT$BACKUP_PATH/cluster-token" 0600 >/dev/null
  fi
  install_if_changed "$work/registries.yaml" "$CONF_DIR/registries.yaml" 0600
  install_if_changed "$work/$SERVICE.service" "$UNIT_DIR/$SERVICE.service" 0644
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

# Every node of a single-node cluster; only this one in a multi-server cluster, where other
# nodes may be down (K3s names a node after its lower-cased host name).
wait_for_node() {
  local node=(node --all)
  [[ $ROLE == single ]] || node=("node/$(hostname | tr '[:upper:]' '[:lower:]')")
  log "waiting for the API server and the node"
  for _ in $(seq 1 60); do
    [[ -f $CONF_DIR/k3s.yaml ]] && "$BIN" kubectl get nodes >/dev/null 2>&1 && break
    sleep 5
  done
  "$BIN" kubectl wait --for=condition=Ready "${node[@]}" --timeout=300s
}

usage() {
  [[ -z ${1:-} ]] || echo "$0: $1" >&2
  cat >&2 <<USAGE
usage: $0 [--airgap DIR]                           a single node
       $0 --role server-init --address HOST [--airgap DIR]
       $0 --role server --server https://HOST:6443 --servers N [--airgap DIR]
       $0 --role agent --server https://HOST:6443 [--airgap DIR]
  HOST: the cluster's fixed registration address (DNS name or virtual IP); N: the odd number
  of servers (3, 5, 7) the cluster will have; joining nodes read the token from K3S_TOKEN_FILE.
USAGE
  exit 2
}

ROLE=single
SERVICE=k3s
AIRGAP=""
SERVER_URL=""
ADDRESS=""
SERVERS=""

parse_args() {
  while [[ $# -gt 0 ]]; do
    [[ $# -ge 2 ]] || usage "$1 needs a value"
    case $1 in
      --airgap)
        [[ -d $2 ]] || usage "--airgap $2 is not a directory"
        AIRGAP=$(cd "$2" && pwd)
        ;;
      --role) ROLE=$2 ;;
      --server) SERVER_URL=$2 ;;
      --address) ADDRESS=$2 ;;
      --servers) SERVERS=$2 ;;
      *) usage "unknown argument $1" ;;
    esac
    shift 2
  done
  check_args
}

# An etcd cluster keeps working while a majority of its members does: 3 servers survive the
# loss of 1, 5 of 2. An even count adds a member that can fail without adding tolerance (2
# servers stop when either fails: worse than 1), so a joining server states the odd total.
check_server_count() {
  [[ $SERVERS =~ ^[0-9]+$ ]] || usage "--role server needs --servers N: the number of servers the cluster will have (3, 5 or 7)"
  ((SERVERS >= 3 && SERVERS % 2 == 1)) ||
    usage "--servers $SERVERS: etcd needs an odd number of servers, at least 3 (2 stop when either fails, 4 tolerate no more failures than 3); add servers until the count is odd before relying on them"
}

check_args() {
  local host='[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?'
  case $ROLE in
    single)
      [[ -z $SERVER_URL$ADDRESS$SERVERS ]] || usage "--server, --address and --servers need a --role"
      ;;
    server-init)
      [[ -z $SERVER_URL$SERVERS ]] || usage "the first server (server-init) takes no --server or --servers"
      [[ $ADDRESS =~ ^$host$ ]] || usage "--role server-init needs --address HOST: the fixed registration address (DNS name or virtual IP)"
      ;;
    server | agent)
      [[ -z $ADDRESS ]] || usage "--address is the first server's; a joining node takes it from --server"
      [[ $SERVER_URL =~ ^https://($host):[0-9]{1,5}$ ]] ||
        usage "--role $ROLE needs --server https://HOST:6443 (the fixed registration address)"
      ADDRESS=${BASH_REMATCH[1]}
      if [[ $ROLE == server ]]; then
        check_server_count
      else
        [[ -z $SERVERS ]] || usage "--servers is for --role server"
        SERVICE=k3s-agent
      fi
      ;;
    *) usage "--role $ROLE: one of server-init, server, agent (none: a single node)" ;;
  esac
}

main() {
  local changes="" restart=""
  parse_args "$@"
  require_root
  require_command sha256sum "apt-get install -y coreutils"
  [[ -n $AIRGAP ]] || require_command curl "apt-get install -y curl"
  # Every pin, the role and the token checked before the machine is changed.
  check_role_fits
  if [[ $ROLE != single ]]; then
    check_token_source
  fi
  if [[ $ROLE == server-init || $ROLE == server ]]; then
    check_drop_ins
  fi
  if [[ -n $AIRGAP ]]; then
    AIRGAP_DIR=$AIRGAP require_pins "K3S_SHA256_$(host_arch | tr '[:lower:]' '[:upper:]')" \
      "K3S_AIRGAP_IMAGES_SHA256_$(host_arch | tr '[:lower:]' '[:upper:]')"
  else
    require_pins "K3S_SHA256_$(host_arch | tr '[:lower:]' '[:upper:]')"
  fi
  if [[ $(installed_version) == "$K3S_VERSION" ]]; then
    log "K3s $K3S_VERSION already installed"
  else
    install_k3s_binary "$AIRGAP"
    restart=yes
  fi
  if [[ -n $AIRGAP ]]; then
    changes=$(install_airgap_images "$AIRGAP")
  fi
  changes+=$(install_config)
  [[ -z $changes ]] || restart=yes
  if converting_sqlite; then
    back_up_sqlite
    restart=yes
  fi
  systemctl daemon-reload
  systemctl enable "$SERVICE.service" >/dev/null
  if [[ -n $restart ]] || ! systemctl is-active --quiet "$SERVICE.service"; then
    log "(re)starting $SERVICE.service"
    systemctl restart "$SERVICE.service"
  else
    log "nothing changed: $SERVICE.service keeps running"
  fi
  if [[ $ROLE == agent ]]; then
    log "K3s $K3S_VERSION agent started: on a server, kubectl get nodes shows it Ready"
    return 0
  fi
  wait_for_node
  setup_kubeconfig
  log "K3s $K3S_VERSION is up; next: k3s/bootstrap.sh (once per cluster, on the first server)"
}

# Run when executed; only define the functions when sourced (tests).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
