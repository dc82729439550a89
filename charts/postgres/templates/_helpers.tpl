{{/* Database names: the service names with '_' for '-'. */}}
{{- define "postgres.databaseNames" -}}
{{- $names := list -}}
{{- range .Values.databases.services -}}
{{- $names = append $names (. | replace "-" "_") -}}
{{- end -}}
{{- join " " $names -}}
{{- end -}}

{{/*
Where the primary is: CloudNativePG's read-write Service <name>-rw, or the StatefulSet's Service
<name>. charts/platform's postgres.host (the services' DATABASE_URL host) must be the same in
every environment (tests/charts/test_postgres_environments.py).
*/}}
{{- define "postgres.primaryHost" -}}
{{- include "lib.name" . }}{{ if eq .Values.engine "cloudnativepg" }}-rw{{ end }}
{{- end -}}

{{/*
Whether the StatefulSet runs: its engine, or the source of a CloudNativePG Cluster's import.
*/}}
{{- define "postgres.runsStatefulSet" -}}
{{- if or (eq .Values.engine "statefulset") .Values.cloudnativepg.importFrom.enabled }}true{{ end }}
{{- end -}}

{{/* Connection settings for the hook Job and the backup CronJob (superuser over the Service). */}}
{{- define "postgres.clientEnv" -}}
- name: PGHOST
  value: {{ include "postgres.primaryHost" . }}
- name: PGUSER
  value: postgres
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.superuserSecret.name }}
      key: {{ .Values.superuserSecret.key }}
{{- end -}}

{{/*
The backup Job's login. CloudNativePG: the managed role backup.role (pg_read_all_data) at the
primary, since the Cluster has no superuser access; the StatefulSet: the superuser.
*/}}
{{- define "postgres.backupEnv" -}}
{{- if eq .Values.engine "cloudnativepg" -}}
- name: PGHOST
  value: {{ include "postgres.primaryHost" . }}
- name: PGUSER
  valueFrom:
    secretKeyRef:
      name: {{ .Values.backup.role.secretName }}
      key: username
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.backup.role.secretName }}
      key: password
{{- else -}}
{{ include "postgres.clientEnv" . }}
{{- end -}}
{{- end -}}

{{- define "postgres.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{- define "postgres.exporterEnv" -}}
- name: DATA_SOURCE_URI
  value: 127.0.0.1:5432/postgres?sslmode=disable
- name: DATA_SOURCE_USER
  value: {{ .Values.metrics.exporter.role }}
- name: DATA_SOURCE_PASS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.metrics.exporter.passwordSecret.name }}
      key: {{ .Values.metrics.exporter.passwordSecret.key }}
{{- end -}}

{{/* With metrics: ensure-databases.sh also makes the exporter's pg_monitor role. */}}
{{- define "postgres.monitoringEnv" -}}
{{- if .Values.metrics.enabled }}
- name: MONITORING_ROLE
  value: {{ .Values.metrics.exporter.role }}
- name: MONITORING_PASSWORD_FILE
  value: /etc/postgres-exporter/password
{{- end }}
{{- end -}}

{{- define "postgres.monitoringMount" -}}
{{- if .Values.metrics.enabled }}
- name: exporter-password
  mountPath: /etc/postgres-exporter
  readOnly: true
{{- end }}
{{- end -}}

{{- define "postgres.monitoringVolume" -}}
{{- if .Values.metrics.enabled }}
- name: exporter-password
  secret:
    secretName: {{ .Values.metrics.exporter.passwordSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ .Values.metrics.exporter.passwordSecret.key }}
        path: password
{{- end }}
{{- end -}}

{{/* An S3 endpoint's port: the one it names, else its scheme's (http 80; https or none, i.e.
AWS, 443). Called with the endpoint string. */}}
{{- define "postgres.endpointPort" -}}
{{- $url := urlParse . -}}
{{- $hostPort := splitList ":" $url.host -}}
{{- if eq (len $hostPort) 2 -}}
{{- last $hostPort -}}
{{- else -}}
{{- ternary "80" "443" (eq $url.scheme "http") -}}
{{- end -}}
{{- end -}}

{{- define "postgres.offsitePort" -}}
{{- include "postgres.endpointPort" .Values.backup.offsite.endpoint -}}
{{- end -}}

{{/*
The off-node copy after the dump (files/offsite.sh): rclone's remote `offsite` configured from
the environment, the keys from the existing Secret only, HOME on the writable /tmp.
*/}}
{{- define "postgres.offsiteContainer" -}}
{{- $o := .Values.backup.offsite -}}
- name: offsite
  image: {{ (ternary (printf "%s@%s" $o.image.repository $o.image.digest) (printf "%s:%s" $o.image.repository $o.image.tag) (ne $o.image.digest "")) | quote }}
  imagePullPolicy: IfNotPresent
  command: [/bin/sh, /scripts/offsite.sh]
  env:
    - name: BACKUP_DIR
      value: /backups
    - name: HOME
      value: /tmp
    - name: OFFSITE_BUCKET
      value: {{ $o.bucket | quote }}
    - name: OFFSITE_PREFIX
      value: {{ $o.prefix | quote }}
    - name: RCLONE_CONFIG_OFFSITE_TYPE
      value: s3
    - name: RCLONE_CONFIG_OFFSITE_PROVIDER
      value: {{ $o.provider | quote }}
    - name: RCLONE_CONFIG_OFFSITE_ENDPOINT
      value: {{ $o.endpoint | quote }}
    - name: RCLONE_CONFIG_OFFSITE_REGION
      value: {{ $o.region | quote }}
    - name: RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID
      valueFrom:
        secretKeyRef:
          name: {{ $o.credentialsSecret.name }}
          key: {{ $o.credentialsSecret.accessKeyId.key }}
    - name: RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY
      valueFrom:
        secretKeyRef:
          name: {{ $o.credentialsSecret.name }}
          key: {{ $o.credentialsSecret.secretAccessKey.key }}
  resources:
    {{- toYaml $o.resources | nindent 4 }}
  securityContext:
    {{- include "lib.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: backups
      mountPath: /backups
      readOnly: true
    - name: tmp
      mountPath: /tmp
    - name: scripts
      mountPath: /scripts
{{- end -}}
