{{- define "mlpanel.name" -}}{{ .Release.Name }}{{- end -}}

{{- define "mlpanel.labels" -}}
app.kubernetes.io/name: mlpanel
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: mlpanel
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "mlpanel.image" -}}{{ .root.Values.image.registry }}{{ .image }}:{{ .root.Values.image.tag }}{{- end -}}

{{- define "mlpanel.natsUrl" -}}
{{- if .Values.nats.enabled -}}nats://{{ .Release.Name }}-nats:4222{{- else -}}{{ required "nats.externalUrl is required when nats.enabled is false" .Values.nats.externalUrl }}{{- end -}}
{{- end -}}

{{- define "mlpanel.mongoUri" -}}
{{- if .Values.mongodb.enabled -}}mongodb://{{ .Release.Name }}-mongodb:27017/?replicaSet=rs0{{- else -}}{{ required "mongodb.externalUri is required when mongodb.enabled is false" .Values.mongodb.externalUri }}{{- end -}}
{{- end -}}

{{/* env renders a map of settings, sorted, as container env; an empty value is left out (the setting's default applies). */}}
{{- define "mlpanel.env" -}}
{{- range $k, $v := . }}
{{- if ne (toString $v) "" }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* settings merges a service's wiring with the release's and the service's env values (later wins). */}}
{{- define "mlpanel.settings" -}}
{{- $all := merge (deepCopy .service.env) (deepCopy .root.Values.env) .wiring -}}
{{- include "mlpanel.env" $all -}}
{{- end -}}
