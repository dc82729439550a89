{{- define "lib.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "lib.name" . }}
  labels:
    {{- include "lib.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "lib.componentSelectorLabels" (dict "root" . "component" "web") | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.port }}
      targetPort: http
      protocol: TCP
{{- end -}}

{{- define "lib.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "lib.serviceAccountName" . }}
  labels:
    {{- include "lib.labels" . | nindent 4 }}
automountServiceAccountToken: false
{{- end -}}

{{/*
NGINX Ingress rule for the service's route. A route other than "/" is stripped: the regex path
captures the rest and rewrite-target forwards only that, so services serve at "/".
Only the chart with ingress.tls.issueCertificate asks cert-manager for the certificate; the others
reuse the same Secret (one Certificate per host instead of one per service).
*/}}
{{- define "lib.ingress" -}}
{{- $v := .Values -}}
{{- if $v.ingress.enabled }}
{{- $stripped := ne $v.route "/" -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "lib.name" . }}
  labels:
    {{- include "lib.labels" . | nindent 4 }}
  annotations:
    {{- if $stripped }}
    nginx.ingress.kubernetes.io/use-regex: "true"
    nginx.ingress.kubernetes.io/rewrite-target: /$2
    {{- end }}
    nginx.ingress.kubernetes.io/proxy-body-size: {{ $v.ingress.proxyBodySize | quote }}
    {{- if and $v.ingress.tls.enabled $v.ingress.tls.issueCertificate }}
    cert-manager.io/cluster-issuer: {{ $v.ingress.tls.clusterIssuer | quote }}
    {{- end }}
    {{- if $v.ingress.tls.enabled }}
    nginx.ingress.kubernetes.io/ssl-redirect: "true"
    {{- end }}
spec:
  ingressClassName: {{ $v.ingress.className }}
  {{- if $v.ingress.tls.enabled }}
  tls:
    - hosts:
        - {{ $v.ingress.host | quote }}
      secretName: {{ $v.ingress.tls.secretName }}
  {{- end }}
  rules:
    - host: {{ $v.ingress.host | quote }}
      http:
        paths:
          {{- if $stripped }}
          - path: {{ printf "%s(/|$)(.*)" $v.route }}
            pathType: ImplementationSpecific
          {{- else }}
          - path: /
            pathType: Prefix
          {{- end }}
            backend:
              service:
                name: {{ include "lib.name" . }}
                port:
                  name: http
{{- end }}
{{- end -}}

{{- define "lib.podDisruptionBudget" -}}
{{- if .Values.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "lib.name" . }}
  labels:
    {{- include "lib.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "lib.componentSelectorLabels" (dict "root" . "component" "web") | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "lib.hpa" -}}
{{- $a := .Values.autoscaling -}}
{{- if $a.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "lib.name" . }}
  labels:
    {{- include "lib.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "lib.name" . }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
{{- end }}
{{- end -}}

{{- define "lib.persistentVolumeClaim" -}}
{{- $p := .Values.persistence -}}
{{- if $p.enabled }}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ include "lib.name" . }}-data
  labels:
    {{- include "lib.labels" . | nindent 4 }}
  annotations:
    # The data outlives an uninstall or a pruning sync; delete the claim by hand to drop it.
    helm.sh/resource-policy: keep
    argocd.argoproj.io/sync-options: Prune=false
spec:
  accessModes: [{{ $p.accessMode }}]
  {{- with $p.storageClassName }}
  storageClassName: {{ . }}
  {{- end }}
  resources:
    requests:
      storage: {{ $p.size }}
{{- end }}
{{- end -}}
