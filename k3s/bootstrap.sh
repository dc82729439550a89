#!/usr/bin/env bash
# Installs the cluster's platform components with Helm (ingress-nginx, cert-manager, Argo CD),
# the system-upgrade-controller and its Plan, then hands the cluster to Argo CD by applying the
# AppProjects and the root app-of-apps. Idempotent: helm upgrade --install and kubectl apply.
#
#   sudo ACME_EMAIL=ops@example.com k3s/bootstrap.sh   (after k3s/install.sh; needs helm)
#
# Without ACME_EMAIL the Let's Encrypt ClusterIssuer is not created (TLS stays off until it is).
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

  log "helm: cert-manager $CERT_MANAGER_CHART_VERSION"
  helm upgrade --install cert-manager cert-manager \
    --repo https://charts.jetstack.io --version "$CERT_MANAGER_CHART_VERSION" \
    --namespace cert-manager --create-namespace \
    --set crds.enabled=true --wait --timeout 10m
  install_cluster_issuer

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

install_cluster_issuer() {
  if [[ -z ${ACME_EMAIL:-} ]]; then
    log "ACME_EMAIL not set: skipping the letsencrypt ClusterIssuer"
    return 0
  fi
  [[ $ACME_EMAIL =~ ^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$ ]] || die "ACME_EMAIL is not an e-mail address"
  sed "s/ACME_EMAIL/$ACME_EMAIL/" "$K3S_DIR/cluster-issuer.yaml" | kubectl apply -f -
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

# Run when executed; only define the functions when sourced (tests).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
