{{/* Tempo's configuration (values traceStore): OTLP/HTTP on all addresses (Tempo 2.7+ binds
its receivers to localhost unless told), local block storage kept `retention`. */}}
{{- define "observability.tempoConfig" -}}
server:
  http_listen_port: 3200
distributor:
  receivers:
    otlp:
      protocols:
        http:
          endpoint: 0.0.0.0:4318
compactor:
  compaction:
    block_retention: {{ .retention }}
storage:
  trace:
    backend: local
    wal:
      path: /var/tempo/wal
    local:
      path: /var/tempo/blocks
usage_report:
  reporting_enabled: false
{{- end -}}
