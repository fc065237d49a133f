{{/* Chart name. */}}
{{- define "wsgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name, at most 63 characters (DNS label). */}}
{{- define "wsgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "wsgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of the wsgate pods. */}}
{{- define "wsgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wsgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{/* Labels of every object. */}}
{{- define "wsgate.labels" -}}
helm.sh/chart: {{ include "wsgate.chart" . }}
app.kubernetes.io/name: {{ include "wsgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wsgate
{{- end }}

{{- define "wsgate.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "wsgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "wsgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wsgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "wsgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The port of a listen address "host:port" (also "[::]:port"). */}}
{{- define "wsgate.port" -}}
{{- splitList ":" . | last | int }}
{{- end }}

{{/* Whole seconds of a contract duration (500ms, 10s, 5m, 2h, 7d), rounded up. */}}
{{- define "wsgate.seconds" -}}
{{- $d := toString . }}
{{- if not (regexMatch "^[0-9]+(ms|s|m|h|d)$" $d) }}
{{- fail (printf "wsgate: %q is not a duration (use 500ms, 10s, 5m, 7d)" $d) }}
{{- end }}
{{- $n := regexFind "^[0-9]+" $d | int }}
{{- $unit := regexFind "(ms|s|m|h|d)$" $d }}
{{- if eq $unit "ms" }}{{ div (add $n 999) 1000 }}
{{- else if eq $unit "s" }}{{ $n }}
{{- else if eq $unit "m" }}{{ mul $n 60 }}
{{- else if eq $unit "h" }}{{ mul $n 3600 }}
{{- else }}{{ mul $n 86400 }}
{{- end }}
{{- end }}

{{/* A size setting: a number of bytes (YAML number) or a string such as 64KiB. */}}
{{- define "wsgate.size" -}}
{{- if kindIs "string" . }}{{ . }}{{ else }}{{ . | int64 }}{{ end }}
{{- end }}

{{/* Pod grace period: above preStop sleep + drain timeout. */}}
{{- define "wsgate.terminationGracePeriodSeconds" -}}
{{- $drain := include "wsgate.seconds" .Values.config.drainTimeout | int }}
{{- $pre := .Values.preStopSleepSeconds | int }}
{{- if eq (toString .Values.terminationGracePeriodSeconds) "" }}
{{- add $pre $drain 15 }}
{{- else }}
{{- $g := .Values.terminationGracePeriodSeconds | int }}
{{- if le $g (add $pre $drain) }}
{{- fail (printf "wsgate: terminationGracePeriodSeconds (%d) must be above preStopSleepSeconds + drainTimeout (%d)" $g (add $pre $drain)) }}
{{- end }}
{{- $g }}
{{- end }}
{{- end }}

{{/* Whether the nodes share a Redis (cluster mode). */}}
{{- define "wsgate.clustered" -}}
{{- if or .Values.redis.enabled .Values.externalRedis.url .Values.externalRedis.existingSecret }}true{{ end }}
{{- end }}

{{/* Secret holding the Redis URL (empty in standalone mode). */}}
{{- define "wsgate.redisSecretName" -}}
{{- if .Values.redis.enabled }}
{{- printf "%s-redis-url" (include "wsgate.fullname" .) }}
{{- else if .Values.externalRedis.existingSecret }}
{{- .Values.externalRedis.existingSecret }}
{{- else if .Values.externalRedis.url }}
{{- printf "%s-redis-url" (include "wsgate.fullname" .) }}
{{- end }}
{{- end }}

{{- define "wsgate.redisSecretKey" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret }}
{{- .Values.externalRedis.existingSecretKey }}
{{- else }}redis-url{{ end }}
{{- end }}

{{/* Whether the chart puts a JWT HS256 key into its own Secret (given or generated). */}}
{{- define "wsgate.chartJwtSecret" -}}
{{- if not .Values.auth.existingSecret }}
{{- if .Values.auth.jwtSecret }}true
{{- else if and .Values.auth.generateMissing (not .Values.auth.jwtPublicKey.existingSecret) (not .Values.config.allowAnonymous) }}true
{{- end }}
{{- end }}
{{- end }}

{{/* Whether the chart puts an API key into its own Secret (given or generated). */}}
{{- define "wsgate.chartApiKey" -}}
{{- if and (not .Values.auth.existingSecret) (or .Values.auth.apiKey .Values.auth.generateMissing) }}true{{ end }}
{{- end }}

{{/* Whether the chart puts a webhook secret into its own Secret (given only, never generated). */}}
{{- define "wsgate.chartWebhookSecret" -}}
{{- if and (not .Values.auth.existingSecret) .Values.auth.webhookSecret }}true{{ end }}
{{- end }}

{{/* Whether the pods get WSGATE_WEBHOOK_SECRET: given to the chart, or from
auth.existingSecret once webhooks are on (config.webhookUrl). */}}
{{- define "wsgate.webhookSecret" -}}
{{- if or (include "wsgate.chartWebhookSecret" .) (and .Values.auth.existingSecret .Values.config.webhookUrl) }}true{{ end }}
{{- end }}

{{/* Secret holding jwt-secret / api-key / webhook-secret (empty when there is none). */}}
{{- define "wsgate.authSecretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else if or (include "wsgate.chartJwtSecret" .) (include "wsgate.chartApiKey" .) (include "wsgate.chartWebhookSecret" .) }}
{{- printf "%s-auth" (include "wsgate.fullname" .) }}
{{- end }}
{{- end }}

{{/* Refuse combinations that cannot work. */}}
{{- define "wsgate.validate" -}}
{{- if and .Values.redis.enabled (or .Values.externalRedis.url .Values.externalRedis.existingSecret) }}
{{- fail "wsgate: set either redis.enabled or externalRedis, not both" }}
{{- end }}
{{- if and (not .Values.auth.existingSecret) (not .Values.auth.jwtSecret) (not .Values.auth.jwtPublicKey.existingSecret) (not .Values.config.allowAnonymous) (not .Values.auth.generateMissing) }}
{{- fail "wsgate: clients cannot authenticate and the server would not start: set auth.jwtSecret, auth.existingSecret, auth.jwtPublicKey.existingSecret, auth.generateMissing or config.allowAnonymous" }}
{{- end }}
{{- if and (not (include "wsgate.clustered" .)) (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) }}
{{- fail "wsgate: more than one replica needs Redis: enable redis or set externalRedis" }}
{{- end }}
{{- if and .Values.config.webhookUrl (not (include "wsgate.webhookSecret" .)) }}
{{- fail "wsgate: config.webhookUrl needs a webhook secret: set auth.webhookSecret, or auth.existingSecret with the key auth.webhookSecretKey" }}
{{- end }}
{{- with .Values.config.grpcListen }}
{{- $grpc := include "wsgate.port" . }}
{{- if or (eq $grpc (include "wsgate.port" $.Values.config.listen)) (eq $grpc (include "wsgate.port" $.Values.config.adminListen)) }}
{{- fail (printf "wsgate: config.grpcListen (%s) needs a port of its own, not that of listen or adminListen" .) }}
{{- end }}
{{- end }}
{{- end }}
