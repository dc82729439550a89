#!/usr/bin/env bash
# The cluster's fixed registration address as a virtual IP: HAProxy spreads K3s API connections
# (TCP 6443) over every server, keepalived holds the virtual IP on one of two or more hosts
# (VRRP) and moves it when that host, its keepalived or its HAProxy stops. Run it on each
# load-balancer host: two small hosts, or agents (an agent does not listen on 6443); not on a
# server, whose K3s holds port 6443 on every address. Both from Debian's packages (haproxy,
# keepalived). Idempotent: restarts a service only when its config changed; a config that its
# tool refuses (haproxy -c, keepalived -t) is never installed.
#
#   sudo k3s/loadbalancer.sh --vip 10.0.0.100/24 --interface eth0 --priority 150 \
#     --servers 10.0.0.11,10.0.0.12,10.0.0.13 [--router-id 51]
#
# --priority: 1-254, different on each host; the highest healthy one holds the address.
set -euo pipefail
# shellcheck source=k3s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Every host path below ROOT (empty on a real host), so tests can run the script on a fake root.
ROOT=${K3S_ROOT:-}
HAPROXY_CONFIG=$ROOT/etc/haproxy/haproxy.cfg
KEEPALIVED_CONFIG=$ROOT/etc/keepalived/keepalived.conf
# keepalived's health check of this host's HAProxy (named in its config, so under ROOT too).
CHECK_SCRIPT=$ROOT/etc/keepalived/k3s-api-listening.sh
API_PORT=6443

VIP=""
INTERFACE=""
PRIORITY=""
SERVERS=""
ROUTER_ID=51

usage() {
  [[ -z ${1:-} ]] || echo "$0: $1" >&2
  echo "usage: $0 --vip ADDRESS/PREFIX --interface NAME --priority 1-254 --servers IP,IP,IP [--router-id 1-255]" >&2
  exit 2
}

ipv4() {
  local octet='(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
  [[ $1 =~ ^($octet\.){3}$octet$ ]]
}

# A whole number from $2 to $3.
number_in() {
  [[ $1 =~ ^[0-9]{1,3}$ ]] && (($1 >= $2 && $1 <= $3))
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    [[ $# -ge 2 ]] || usage "$1 needs a value"
    case $1 in
      --vip) VIP=$2 ;;
      --interface) INTERFACE=$2 ;;
      --priority) PRIORITY=$2 ;;
      --servers) SERVERS=$2 ;;
      --router-id) ROUTER_ID=$2 ;;
      *) usage "unknown argument $1" ;;
    esac
    shift 2
  done
  local server
  if ! [[ $VIP == */* ]] || ! ipv4 "${VIP%/*}" || ! number_in "${VIP#*/}" 1 32; then
    usage "--vip $VIP: an IPv4 address with its prefix length, e.g. 10.0.0.100/24"
  fi
  [[ $INTERFACE =~ ^[A-Za-z0-9_.@-]{1,15}$ ]] || usage "--interface: the network interface the virtual IP lives on"
  number_in "$PRIORITY" 1 254 ||
    usage "--priority $PRIORITY: 1-254, different on each load-balancer host"
  number_in "$ROUTER_ID" 1 255 ||
    usage "--router-id $ROUTER_ID: 1-255, the same on every load-balancer host of this address"
  [[ -n $SERVERS ]] || usage "--servers: the K3s servers' addresses, comma-separated"
  for server in ${SERVERS//,/ }; do
    ipv4 "$server" || usage "--servers: $server is not an IPv4 address"
  done
}

# TCP passthrough (K3s's clients check its certificate themselves); long timeouts because
# kubectl and the agents hold watch streams open; a server that refuses connections is taken
# out within 3 checks of 2 s.
write_haproxy_config() {
  local index=0 server
  cat <<HAPROXY
# Written by k3s/loadbalancer.sh: the K3s API (TCP $API_PORT) over every server.
global
  log /dev/log local0
  chroot /var/lib/haproxy
  user haproxy
  group haproxy
  daemon

defaults
  log global
  mode tcp
  option tcplog
  timeout connect 5s
  timeout client 1h
  timeout server 1h

frontend k3s-api
  bind *:$API_PORT
  default_backend k3s-servers

backend k3s-servers
  balance roundrobin
  default-server inter 2s fall 3 rise 2
HAPROXY
  for server in ${SERVERS//,/ }; do
    index=$((index + 1))
    echo "  server server-$index $server:$API_PORT check"
  done
}

# Healthy when HAProxy listens on the API port in this host's network namespace (a process
# check would also see another namespace's HAProxy; keepalived's process tracking needs the
# kernel's process connector, which only the initial network namespace has).
write_check_script() {
  cat <<CHECK
#!/bin/sh
# Written by k3s/loadbalancer.sh: exit 0 when something listens on TCP $API_PORT here.
[ -n "\$(ss -H -l -t -n "sport = :$API_PORT")" ]
CHECK
}

# VRRP: every host starts as BACKUP and the highest priority wins. The address is held only
# where HAProxy listens: a host whose check fails twice (2 s apart) goes to FAULT and gives the
# address up; a host that stops advertising loses it after 3 adverts (about 3 s).
write_keepalived_config() {
  cat <<KEEPALIVED
# Written by k3s/loadbalancer.sh: the K3s registration address $VIP.
global_defs {
  router_id k3s-api-$ROUTER_ID
  enable_script_security
  script_user root
}

vrrp_script haproxy_listening {
  script "$CHECK_SCRIPT"
  interval 2
  timeout 2
  fall 2
  rise 1
}

vrrp_instance k3s_api {
  state BACKUP
  interface $INTERFACE
  virtual_router_id $ROUTER_ID
  priority $PRIORITY
  advert_int 1
  virtual_ipaddress {
    $VIP dev $INTERFACE
  }
  track_script {
    haproxy_listening
  }
}
KEEPALIVED
}

# Both configs checked by their own tool before either is installed.
check_configs() {
  haproxy -c -q -f "$1/haproxy" >&2 || die "haproxy refused the generated config ($1/haproxy)"
  keepalived -t -f "$1/keepalived" >&2 || die "keepalived refused the generated config"
}

# Installs a service's config, (re)starting the service when it changed or is not running.
install_service() {
  local name=$1 source=$2 target=$3 changed
  changed=$(install_if_changed "$source" "$target" 0644)
  systemctl enable "$name.service" >/dev/null
  if [[ -n $changed ]] || ! systemctl is-active --quiet "$name.service"; then
    log "(re)starting $name.service"
    systemctl restart "$name.service"
  fi
}

main() {
  local work
  parse_args "$@"
  require_root
  require_command haproxy "apt-get install -y haproxy"
  require_command keepalived "apt-get install -y keepalived"
  work=$(mktemp -d)
  trap 'rm -rf "$work"; trap - RETURN' RETURN
  write_haproxy_config >"$work/haproxy"
  write_keepalived_config >"$work/keepalived"
  write_check_script >"$work/check"
  # keepalived's config check wants the script it names in place.
  install_if_changed "$work/check" "$CHECK_SCRIPT" 0755 >/dev/null
  check_configs "$work"
  install_service haproxy "$work/haproxy" "$HAPROXY_CONFIG"
  install_service keepalived "$work/keepalived" "$KEEPALIVED_CONFIG"
  log "registration address ${VIP%/*}:$API_PORT: join with --server https://${VIP%/*}:$API_PORT"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
