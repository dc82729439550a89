{{/*
One pod template for every long-running process of a service. Called with a dict:
  root: the chart context; component: "web" or the worker name; command: the container command;
  replicas: the count (ignored when the HPA owns it); resources; probes (liveness/readiness);
  port: the container port, or nil for workers.
*/}}
{{- define "lib.podTemplate" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "lib.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  annotations:
    checksum/config: {{ $v.config | toJson | sha256sum }}
spec:
  serviceAccountName: {{ include "lib.serviceAccountName" $root }}
  {{- with include "lib.priorityClassName" $root | trim }}
  {{ . }}
  {{- end }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  securityContext:
    {{- include "lib.podSecurityContext" $root | nindent 4 }}
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  {{- with include "lib.topologySpread" . | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "lib.image" $root | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command:
        {{- toYaml .command | nindent 8 }}
      {{- if .port }}
      ports:
        - name: http
          containerPort: {{ .port }}
          protocol: TCP
      {{- end }}
      {{- with include "lib.envFrom" $root | trim }}
      {{- . | nindent 6 }}
      {{- end }}
      {{- with .probes }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- include "lib.containerSecurityContext" $root | nindent 8 }}
      volumeMounts:
        {{- with include "lib.writableVolumeMounts" $root | trim }}{{ . | nindent 8 }}{{ end }}
        {{- with include "lib.secretVolumeMounts" $root | trim }}{{ . | nindent 8 }}{{ end }}
        {{- if $v.persistence.enabled }}
        - name: data
          mountPath: {{ $v.persistence.mountPath }}
        {{- end }}
  volumes:
    {{- with include "lib.writableVolumes" $root | trim }}{{ . | nindent 4 }}{{ end }}
    {{- with include "lib.secretVolumes" $root | trim }}{{ . | nindent 4 }}{{ end }}
    {{- if $v.persistence.enabled }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ include "lib.name" $root }}-data
    {{- end }}
{{- end -}}

{{/*
Spread the pods of one process over nodes (values topologySpread; the defaults here). Preferred
only (ScheduleAnyway): a single node still runs every replica, the scheduler just favours other
nodes. Only the pods of this process (web and each worker spread apart) and of this revision
(pod-template-hash: a rolling update is not skewed by the pods it replaces) count.
Called with the podTemplate's dict (root, component).
*/}}
{{- define "lib.topologySpread" -}}
{{- $ts := .root.Values.topologySpread | default dict -}}
{{- if ternary $ts.enabled true (hasKey $ts "enabled") }}
topologySpreadConstraints:
  - maxSkew: {{ $ts.maxSkew | default 1 }}
    topologyKey: {{ $ts.topologyKey | default "kubernetes.io/hostname" }}
    whenUnsatisfiable: {{ $ts.whenUnsatisfiable | default "ScheduleAnyway" }}
    labelSelector:
      matchLabels:
        {{- include "lib.componentSelectorLabels" (dict "root" .root "component" .component) | nindent 8 }}
    matchLabelKeys: [pod-template-hash]
{{- end }}
{{- end -}}

{{/* HTTP probes of the web process: liveness on the health path, readiness on the ready path. */}}
{{- define "lib.httpProbes" -}}
{{- $p := .Values.probes -}}
startupProbe:
  httpGet:
    path: {{ $p.liveness.path }}
    port: http
  periodSeconds: 5
  failureThreshold: {{ $p.startupFailureThreshold }}
livenessProbe:
  httpGet:
    path: {{ $p.liveness.path }}
    port: http
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: {{ $p.readiness.path }}
    port: http
  periodSeconds: {{ $p.readiness.periodSeconds }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
{{- end -}}

{{/* Exec probes of a worker (no port): liveness must not depend on backing services. */}}
{{- define "lib.execProbes" -}}
livenessProbe:
  exec:
    command:
      {{- toYaml .probe.livenessCommand | nindent 6 }}
  periodSeconds: {{ .probe.periodSeconds }}
  timeoutSeconds: {{ .probe.timeoutSeconds }}
  failureThreshold: {{ .probe.failureThreshold }}
readinessProbe:
  exec:
    command:
      {{- toYaml .probe.readinessCommand | nindent 6 }}
  periodSeconds: {{ .probe.periodSeconds }}
  timeoutSeconds: {{ .probe.timeoutSeconds }}
  failureThreshold: {{ .probe.failureThreshold }}
{{- end -}}

{{- define "lib.deployment" -}}
{{- $v := .Values -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "lib.name" . }}
  labels:
    {{- include "lib.labels" . | nindent 4 }}
    app.kubernetes.io/component: web
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "lib.componentSelectorLabels" (dict "root" . "component" "web") | nindent 6 }}
  strategy:
    {{- if and $v.persistence.enabled (eq $v.persistence.accessMode "ReadWriteOnce") }}
    type: Recreate
    {{- else }}
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
    {{- end }}
  template:
    {{- include "lib.podTemplate" (dict "root" . "component" "web" "command" $v.command "port" $v.port "resources" $v.resources "probes" (include "lib.httpProbes" . | fromYaml)) | nindent 4 }}
{{- end -}}

{{/*
A worker's replicas: workerReplicas.<name> when an environment sets it (so an environment file
changes a count without repeating the worker), else the worker's own. A name in workerReplicas
that is no worker is an error rather than a silent no-op.
*/}}
{{- define "lib.workerReplicas" -}}
{{- $counts := .root.Values.workerReplicas | default dict -}}
{{- $names := list -}}
{{- range .root.Values.workers }}{{ $names = append $names .name }}{{ end -}}
{{- range $name, $_ := $counts -}}
{{- if not (has $name $names) -}}
{{- fail (printf "workerReplicas.%s: no worker of that name (workers: %s)" $name (join ", " $names)) -}}
{{- end -}}
{{- end -}}
{{- if hasKey $counts .worker.name -}}
{{- index $counts .worker.name -}}
{{- else -}}
{{- .worker.replicas -}}
{{- end -}}
{{- end -}}

{{/* Extra Deployments for the workers (same image, own command, no Service). */}}
{{- define "lib.workerDeployments" -}}
{{- $root := . -}}
{{- range $v := .Values.workers }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "lib.name" $root }}-{{ $v.name }}
  labels:
    {{- include "lib.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $v.name }}
spec:
  replicas: {{ include "lib.workerReplicas" (dict "root" $root "worker" $v) }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "lib.componentSelectorLabels" (dict "root" $root "component" $v.name) | nindent 6 }}
  template:
    {{- include "lib.podTemplate" (dict "root" $root "component" $v.name "command" $v.command "port" nil "resources" $v.resources "probes" (include "lib.execProbes" $v | fromYaml)) | nindent 4 }}
{{- end }}
{{- end -}}
