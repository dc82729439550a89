{{- define "redis.exporterEnv" -}}
- name: REDIS_ADDR
  value: redis://127.0.0.1:6379
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.passwordSecret.name }}
      key: {{ .Values.passwordSecret.key }}
{{- end -}}

{{/* The headless Service that gives each pod a stable DNS name (replication, Sentinel). */}}
{{- define "redis.headless" -}}
{{- printf "%s-headless" (include "lib.name" .) -}}
{{- end -}}

{{/* A pod's own stable address: <pod>.<headless>.<namespace>.svc (shell, at run time). */}}
{{- define "redis.selfAddress" -}}
"$(hostname).{{ include "redis.headless" . }}.{{ .Release.Namespace }}.svc"
{{- end -}}

{{/* The first pod's address: the primary of a group no Sentinel knows yet. */}}
{{- define "redis.firstAddress" -}}
{{ include "lib.name" . }}-0.{{ include "redis.headless" . }}.{{ .Release.Namespace }}.svc
{{- end -}}

{{/* A majority of the Sentinels: the votes a failover needs. */}}
{{- define "redis.quorum" -}}
{{- add (div .Values.sentinel.replicas 2) 1 -}}
{{- end -}}

{{/* valkey-cli reads the password from REDISCLI_AUTH: never an argument. */}}
{{- define "redis.cliAuthEnv" -}}
- name: REDISCLI_AUTH
  valueFrom:
    secretKeyRef:
      name: {{ .Values.passwordSecret.name }}
      key: {{ .Values.passwordSecret.key }}
{{- end -}}
