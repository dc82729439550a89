#!/usr/bin/env bash
# Installs the cluster's platform components with Helm (ingress-nginx, Argo CD), the
# system-upgrade-controller and its Plan, then hands the cluster to Argo CD by applying the
# AppProject and the root app-of-apps. Idempotent: helm upgrade --install and kubectl apply.
#
#   sudo k3s/bootstrap.sh        (after k3s/install.sh; needs helm on the PATH)
set -euo pipefail
# shellcheck source=k3s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"



main() {
  require_root
  require_command helm "see https://helm.sh/docs/intro/install/ (a pinned release tarball)"
  require_command kubectl "run k3s/install.sh first"
  kubectl get nodes >/dev/null || die "no cluster at $KUBECONFIG; run k3s/install.sh first"

  log "helm: ingress-nginx $INGRESS_NGINX_CHART_VERSION"
  helm upgrade --install ingress-nginx ingress-nginx \
    --repo https://kubernetes.github.io/ingress-nginx --version "$INGRESS_NGINX_CHART_VERSION" \
    --namespace ingress-nginx --create-namespace \
    --values "$K3S_DIR/ingress-nginx-values.yaml" --wait --timeout 10m

  log "helm: argo-cd $ARGO_CD_CHART_VERSION"
  helm upgrade --install argocd argo-cd \
    --repo https://argoproj.github.io/argo-helm --version "$ARGO_CD_CHART_VERSION" \
    --namespace argocd --create-namespace \
    --values "$REPO_DIR/argocd/install/values.yaml" --wait --timeout 10m

  install_upgrade_controller

  log "Argo CD: AppProjects and the root app-of-apps"
  kubectl apply -f "$REPO_DIR/argocd/apps/projects.yaml"
  kubectl apply -f "$REPO_DIR/argocd/root.yaml"
  log "done: Argo CD now syncs argocd/apps from git"
}

# The controller's manifests come from its pinned release; the Plan pins the K3s version.
install_upgrade_controller() {
  local base work
  base="https://github.com/rancher/system-upgrade-controller/releases/download/$SYSTEM_UPGRADE_CONTROLLER_VERSION"
  work=$(mktemp -d)
  trap 'rm -rf "$work"; trap - RETURN' RETURN
  log "system-upgrade-controller $SYSTEM_UPGRADE_CONTROLLER_VERSION"
  fetch "$base/crd.yaml" "$work/crd.yaml"
  fetch "$base/system-upgrade-controller.yaml" "$work/controller.yaml"
  kubectl apply -f "$work/crd.yaml" -f "$work/controller.yaml"
  kubectl wait --for=condition=Established crd/plans.upgrade.cattle.io --timeout=120s
  kubectl apply -f "$K3S_DIR/upgrade-plan.yaml"
}

main "$@"
