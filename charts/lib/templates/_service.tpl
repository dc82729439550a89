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
One PodDisruptionBudget per process (web, then each worker): a drain evicts at most
maxUnavailable pods of each at a time, so with 2 replicas one moves while the other serves.
*/}}
{{- define "lib.podDisruptionBudget" -}}
{{- $root := . -}}
{{- if .Values.podDisruptionBudget.enabled }}
{{- $components := list "web" -}}
{{- range .Values.workers }}{{ $components = append $components .name }}{{ end -}}
{{- range $component := $components }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "lib.name" $root }}{{ if ne $component "web" }}-{{ $component }}{{ end }}
  labels:
    {{- include "lib.labels" $root | nindent 4 }}
spec:
  maxUnavailable: {{ $root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "lib.componentSelectorLabels" (dict "root" $root "component" $component) | nindent 6 }}
{{- end }}
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
