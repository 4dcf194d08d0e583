{{/* Labels every object of the release carries. */}}
{{- define "brug.labels" -}}
app.kubernetes.io/part-of: brug
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The selector of one service's pods; call with (dict "root" $ "name" $name). */}}
{{- define "brug.selector" -}}
app.kubernetes.io/part-of: brug
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/name: {{ .name }}
{{- end -}}

{{- define "brug.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Kafka's bootstrap address: Strimzi's Service of the cluster's TLS+SCRAM listener. */}}
{{- define "brug.kafkaBootstrap" -}}
{{ .Values.kafka.clusterName }}-kafka-bootstrap:9093
{{- end -}}

{{/* Strimzi's cluster CA (the brokers' certificates), for TLS to Kafka. */}}
{{- define "brug.kafkaCaSecret" -}}
{{ .Values.kafka.clusterName }}-cluster-ca-cert
{{- end -}}

{{/* CloudNativePG's Secret of the application user (key uri: the database URL). */}}
{{- define "brug.databaseSecret" -}}
{{ .Values.postgres.clusterName }}-app
{{- end -}}

{{/* The Kafka principal of a service: brug-router (adapters/kafka_acls.py). */}}
{{- define "brug.principal" -}}
brug-{{ . }}
{{- end -}}

{{/* The variables every Brug container gets; call with (dict "root" $ "name" $name). */}}
{{- define "brug.env" -}}
{{- $root := .root -}}
- name: BRUG_KAFKA_BOOTSTRAP_SERVERS
  value: {{ include "brug.kafkaBootstrap" $root | quote }}
- name: BRUG_KAFKA_SECURITY_PROTOCOL
  value: SASL_SSL
- name: BRUG_KAFKA_SASL_MECHANISM
  value: SCRAM-SHA-512
- name: BRUG_KAFKA_USERNAME
  value: {{ include "brug.principal" .name | quote }}
- name: BRUG_KAFKA_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "brug.principal" .name }}, key: password}
- name: BRUG_KAFKA_SSL_CAFILE
  value: /etc/brug/kafka-ca/ca.crt
- name: BRUG_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ include "brug.databaseSecret" $root }}, key: uri}
- name: BRUG_DIRECTORY_PATH
  value: /etc/brug/directory/directory.json
- name: BRUG_CLIENTS_PATH
  value: /etc/brug/clients/{{ $root.Values.secrets.clients.key }}
- name: BRUG_DETAILS_BASE_URL
  value: {{ $root.Values.detailsBaseUrl | quote }}
- name: BRUG_FHIR_BASE_URL
  value: {{ $root.Values.fhirBaseUrl | quote }}
- name: BRUG_METRICS_HOST
  value: 0.0.0.0
- name: BRUG_METRICS_PORT
  value: {{ $root.Values.metricsPort | quote }}
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
{{- if $root.Values.otel.enabled }}
- name: OTEL_TRACES_EXPORTER
  value: otlp
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $root.Values.otel.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $root.Values.otel.protocol | quote }}
{{- end }}
{{- range $key, $value := $root.Values.extraEnv }}
- name: {{ $key }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* BRUG_SERVICE_METRICS_URLS: every service's /metrics, as the console reads them. */}}
{{- define "brug.metricsUrls" -}}
{{- $urls := dict -}}
{{- range $name, $svc := .Values.services -}}
{{- $_ := set $urls (replace "-" "_" $name) (printf "http://brug-%s:%v/metrics" $name $.Values.metricsPort) -}}
{{- end -}}
{{- toJson $urls -}}
{{- end -}}
