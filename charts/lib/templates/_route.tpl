{{/*
The service's route on the shared Gateway (NGINX Gateway Fabric; k3s/gateway.yaml): one
HTTPRoute per service for its host and path prefix, attached to the listener of its environment.
A route other than "/" is stripped (ReplacePrefixMatch), so services serve at "/".

X-Forwarded-For is set to the address the gateway saw ($remote_addr, an NGINX variable that NGF
accepts in header values): a client's own X-Forwarded-For never reaches a service, so the
services, which trust the header from the gateway's pods only (FORWARDED_ALLOW_IPS), key their
per-IP limits on the real client.
*/}}
{{- define "lib.httpRoute" -}}
{{- $v := .Values -}}
{{- $r := $v.httpRoute -}}
{{- if $r.enabled }}
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {{ include "lib.name" . }}
  labels:
    {{- include "lib.labels" . | nindent 4 }}
spec:
  parentRefs:
    - group: gateway.networking.k8s.io
      kind: Gateway
      name: {{ $r.gateway.name }}
      namespace: {{ $r.gateway.namespace }}
      sectionName: {{ $r.gateway.listener }}
  hostnames:
    - {{ $r.host | quote }}
  rules:
    - matches:
        - path:
            type: PathPrefix
            value: {{ $v.route | quote }}
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set:
              - name: X-Forwarded-For
                value: $remote_addr
        {{- if ne $v.route "/" }}
        - type: URLRewrite
          urlRewrite:
            path:
              type: ReplacePrefixMatch
              replacePrefixMatch: /
        {{- end }}
      backendRefs:
        - group: ""
          kind: Service
          name: {{ include "lib.name" . }}
          port: {{ $v.port }}
{{- end }}
{{- end -}}

{{/*
The largest request body the gateway passes to this service (NGINX client_max_body_size), as an
NGINX Gateway Fabric policy on the service's HTTPRoute; bigger bodies get 413 at the gateway.
*/}}
{{- define "lib.clientSettingsPolicy" -}}
{{- $r := .Values.httpRoute -}}
{{- if $r.enabled }}
apiVersion: gateway.nginx.org/v1alpha1
kind: ClientSettingsPolicy
metadata:
  name: {{ include "lib.name" . }}
  labels:
    {{- include "lib.labels" . | nindent 4 }}
spec:
  targetRef:
    group: gateway.networking.k8s.io
    kind: HTTPRoute
    name: {{ include "lib.name" . }}
  body:
    maxSize: {{ $r.maxBodySize | quote }}
{{- end }}
{{- end -}}
