{{/*
Database migration as a Job that runs before the new pods: a Helm pre-install/pre-upgrade hook,
which Argo CD runs as a PreSync hook. Argo CD cannot tell an install from an upgrade, so it runs
on every sync: the command must be idempotent (alembic upgrade head / manage.py migrate are).
The hook runs before the chart's ordinary objects exist, so the Job takes its settings inline
(not from the ConfigMap) and brings its own NetworkPolicy (also a hook, created first).
*/}}
{{- define "lib.migrationHookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ . | quote }}
helm.sh/hook-delete-policy: before-hook-creation
{{- end -}}

{{/* The migration's environment: its settings inline, secrets by reference. */}}
{{- define "lib.migrationEnv" -}}
{{- range $key, $value := .Values.config }}
- name: {{ $key }}
  value: {{ include "lib.configValue" $value }}
{{- end }}
{{- range .Values.secretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end -}}

{{/*
Python (the service's own image has psycopg): connect with the URL in the environment variable
named by argv[1] until the server, the role and the database all answer. The URL stays in the
environment, never in arguments or output.
*/}}
{{- define "lib.waitForDatabaseScript" -}}
import os, re, sys, time
import psycopg
url = re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", os.environ[sys.argv[1]])
while True:
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        reason = (str(error).strip().splitlines() or ["no answer"])[-1]
        print(f"waiting for the database: {reason}", flush=True)
        time.sleep(2)
    else:
        print("the database is ready", flush=True)
        break
{{- end -}}

{{- define "lib.migrationJob" -}}
{{- $v := .Values -}}
{{- $m := $v.migration -}}
{{- if $m.enabled }}
{{- if $v.networkPolicy.enabled }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "lib.name" . }}-migrate
  labels:
    {{- include "lib.labels" . | nindent 4 }}
  annotations:
    {{- include "lib.migrationHookAnnotations" "-10" | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "lib.componentSelectorLabels" (dict "root" . "component" "migrate") | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress: []
  egress:
    {{- include "lib.databaseEgressRules" . | nindent 4 }}
---
{{- end }}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "lib.name" . }}-migrate
  labels:
    {{- include "lib.labels" . | nindent 4 }}
    app.kubernetes.io/component: migrate
  annotations:
    {{- include "lib.migrationHookAnnotations" "0" | nindent 4 }}
spec:
  backoffLimit: {{ $m.backoffLimit }}
  activeDeadlineSeconds: {{ $m.activeDeadlineSeconds }}
  ttlSecondsAfterFinished: 86400
  template:
    metadata:
      labels:
        {{- include "lib.labels" . | nindent 8 }}
        app.kubernetes.io/component: migrate
    spec:
      restartPolicy: Never
      {{- with include "lib.priorityClassName" . | trim }}
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
        {{- include "lib.podSecurityContext" . | nindent 8 }}
      {{- with $m.waitForDatabase }}
      initContainers:
        # Waits until the service's own database accepts its role (created by postgres's
        # ensure-databases), however the syncs were ordered; the Job's deadline bounds the wait.
        - name: wait-for-database
          image: {{ include "lib.image" $ | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          command:
            - python
            - -c
            - |
              {{- include "lib.waitForDatabaseScript" $ | nindent 14 }}
            - {{ . | quote }}
          env:
            {{- include "lib.migrationEnv" $ | nindent 12 }}
          resources:
            {{- toYaml $m.resources | nindent 12 }}
          securityContext:
            {{- include "lib.containerSecurityContext" $ | nindent 12 }}
          volumeMounts:
            {{- with include "lib.writableVolumeMounts" $ | trim }}{{ . | nindent 12 }}{{ end }}
      {{- end }}
      containers:
        - name: migrate
          image: {{ include "lib.image" . | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          command:
            {{- toYaml $m.command | nindent 12 }}
          env:
            {{- include "lib.migrationEnv" . | nindent 12 }}
          resources:
            {{- toYaml $m.resources | nindent 12 }}
          securityContext:
            {{- include "lib.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            {{- with include "lib.writableVolumeMounts" . | trim }}{{ . | nindent 12 }}{{ end }}
      volumes:
        {{- with include "lib.writableVolumes" . | trim }}{{ . | nindent 8 }}{{ end }}
{{- end }}
{{- end -}}

{{/* Everything a service chart renders, in one call: the non-empty parts, one document each. */}}
{{- define "lib.all" -}}
{{- $parts := list
  (include "lib.serviceAccount" .)
  (include "lib.configMap" .)
  (include "lib.deployment" .)
  (include "lib.workerDeployments" .)
  (include "lib.service" .)
  (include "lib.httpRoute" .)
  (include "lib.clientSettingsPolicy" .)
  (include "lib.podDisruptionBudget" .)
  (include "lib.hpa" .)
  (include "lib.networkPolicy" .)
  (include "lib.serviceMonitor" .)
  (include "lib.persistentVolumeClaim" .)
  (include "lib.migrationJob" .) -}}
{{- $documents := list -}}
{{- range $parts -}}
{{- with trimPrefix "---" (trim .) | trim -}}
{{- $documents = append $documents . -}}
{{- end -}}
{{- end -}}
{{ join "\n---\n" $documents }}
{{- end -}}
