{{/*
Refuse a storage configuration that cannot work, naming the value to change:
- s3: endpoint and bucket in config, both keys from Secrets (secretEnv, never config), and no
  volume (a ReadWriteOnce claim would pin the pods to one node and force Recreate);
- filesystem: the volume, and one replica (its ReadWriteOnce claim has one writer).
*/}}
{{- define "media.checkStorage" -}}
{{- $v := .Values -}}
{{- $backend := $v.config.MEDIA_STORAGE | default "filesystem" -}}
{{- $secretNames := list -}}
{{- range $v.secretEnv }}{{ $secretNames = append $secretNames .name }}{{ end -}}
{{- if eq $backend "s3" -}}
{{- range list "MEDIA_S3_ENDPOINT" "MEDIA_S3_BUCKET" -}}
{{- if not (get $v.config .) -}}
{{- fail (printf "config.%s must be set when config.MEDIA_STORAGE is s3" .) -}}
{{- end -}}
{{- end -}}
{{- range list "MEDIA_S3_ACCESS_KEY" "MEDIA_S3_SECRET_KEY" -}}
{{- if hasKey $v.config . -}}
{{- fail (printf "config.%s: S3 keys come from a Secret (secretEnv), never from values" .) -}}
{{- end -}}
{{- if not (has . $secretNames) -}}
{{- fail (printf "secretEnv must name %s (a Secret reference) when config.MEDIA_STORAGE is s3" .) -}}
{{- end -}}
{{- end -}}
{{- if $v.persistence.enabled -}}
{{- fail "persistence.enabled must be false when config.MEDIA_STORAGE is s3 (objects live in the bucket)" -}}
{{- end -}}
{{- else if eq $backend "filesystem" -}}
{{- if not $v.persistence.enabled -}}
{{- fail "persistence.enabled must be true when config.MEDIA_STORAGE is filesystem" -}}
{{- end -}}
{{- if or (gt (int $v.replicas) 1) $v.autoscaling.enabled -}}
{{- fail "replicas must be 1 (and autoscaling off) when config.MEDIA_STORAGE is filesystem: its ReadWriteOnce volume has one writer; use s3 to scale" -}}
{{- end -}}
{{- else -}}
{{- fail (printf "config.MEDIA_STORAGE must be s3 or filesystem, got %q" $backend) -}}
{{- end -}}
{{- end -}}
