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
{{- if or .Values.redis.enabled .Values.externalRedis.url .Values.externalRedis.existingSecret .Values.externalRedis.addresses }}true{{ end }}
{{- end }}

{{/* Whether the bundled Redis runs with replicas and Sentinels. */}}
{{- define "wsgate.redisHA" -}}
{{- if and .Values.redis.enabled .Values.redis.sentinel.enabled }}true{{ end }}
{{- end }}

{{/* --redis-mode: single, sentinel or cluster. */}}
{{- define "wsgate.redisMode" -}}
{{- if .Values.redis.enabled }}{{ if include "wsgate.redisHA" . }}sentinel{{ else }}single{{ end }}
{{- else }}{{ .Values.externalRedis.mode }}{{ end }}
{{- end }}

{{/* --redis-wait-replicas: the bundled default is 1 with two or more replicas. */}}
{{- define "wsgate.redisWaitReplicas" -}}
{{- if .Values.redis.enabled }}
{{- if not (include "wsgate.redisHA" .) }}0
{{- else if ne (toString .Values.redis.waitReplicas) "" }}{{ .Values.redis.waitReplicas | int }}
{{- else if ge (int .Values.redis.replicas) 2 }}1
{{- else }}0{{ end }}
{{- else }}{{ .Values.externalRedis.waitReplicas | int }}{{ end }}
{{- end }}

{{/* Names of the bundled Redis: the data StatefulSet and its headless
Service share one name, the Sentinels another. */}}
{{- define "wsgate.redisName" -}}
{{- printf "%s-redis" (include "wsgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "wsgate.sentinelName" -}}
{{- printf "%s-redis-sentinel" (include "wsgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* DNS suffix of the pods behind a headless Service: ".svc.ns.svc.domain". */}}
{{- define "wsgate.podDomain" -}}
{{- printf "%s.%s.svc.%s" .service .root.Release.Namespace .root.Values.redis.clusterDomain }}
{{- end }}

{{- define "wsgate.sentinelSelectorLabels" -}}
app.kubernetes.io/name: {{ include "wsgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis-sentinel
{{- end }}

{{/* The bundled Redis URL: the primary, or the comma list of Sentinels. */}}
{{- define "wsgate.bundledRedisUrl" -}}
{{- if include "wsgate.redisHA" . }}
{{- $name := include "wsgate.sentinelName" . }}
{{- $domain := include "wsgate.podDomain" (dict "service" $name "root" .) }}
{{- $urls := list }}
{{- range $i := until (int .Values.redis.sentinel.replicas) }}
{{- $urls = append $urls (printf "redis://%s-%d.%s:26379" $name $i $domain) }}
{{- end }}
{{- join "," $urls }}
{{- else }}
{{- printf "redis://%s:6379" (include "wsgate.redisName" .) }}
{{- end }}
{{- end }}

{{/* externalRedis.addresses as a URL list; the password, if any, is the
variable REDIS_PASSWORD set just before (Kubernetes expands $(REDIS_PASSWORD)). */}}
{{- define "wsgate.addressesUrl" -}}
{{- $r := .Values.externalRedis }}
{{- $auth := "" }}
{{- if $r.password.existingSecret }}
{{- $auth = printf "%s:$(REDIS_PASSWORD)@" $r.username }}
{{- else if $r.username }}
{{- $auth = printf "%s@" $r.username }}
{{- end }}
{{- $urls := list }}
{{- range $r.addresses }}
{{- $urls = append $urls (printf "%s://%s%s" (ternary "rediss" "redis" $r.tls) $auth .) }}
{{- end }}
{{- join "," $urls }}
{{- end }}

{{/* Secret holding the Redis URL (empty in standalone mode, and with
externalRedis.addresses, where the URL holds no secret but a reference). */}}
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
{{- with .Values.externalRedis }}
{{- if and (not $.Values.redis.enabled) .addresses (or .url .existingSecret) }}
{{- fail "wsgate: set externalRedis.addresses or externalRedis.url/existingSecret, not both" }}
{{- end }}
{{- if and .password.existingSecret (not .addresses) }}
{{- fail "wsgate: externalRedis.password goes with externalRedis.addresses; with url or existingSecret the password is part of the URL" }}
{{- end }}
{{- if and (not $.Values.redis.enabled) (eq .mode "single") (or (gt (len .addresses) 1) (contains "," .url)) }}
{{- fail "wsgate: externalRedis.mode single takes one address; a list needs mode sentinel or cluster" }}
{{- end }}
{{- end }}
{{- if include "wsgate.redisHA" . }}
{{- with .Values.redis }}
{{- if or (lt (int .sentinel.quorum) 1) (gt (int .sentinel.quorum) (int .sentinel.replicas)) }}
{{- fail (printf "wsgate: redis.sentinel.quorum (%d) must be between 1 and redis.sentinel.replicas (%d)" (int .sentinel.quorum) (int .sentinel.replicas)) }}
{{- end }}
{{- if lt (int .replicas) 1 }}
{{- fail "wsgate: redis.sentinel needs redis.replicas of at least 1 (a replica to promote)" }}
{{- end }}
{{- if gt (include "wsgate.redisWaitReplicas" $ | int) (int .replicas) }}
{{- fail (printf "wsgate: redis.waitReplicas (%s) is above redis.replicas (%d): every direct message would be refused" (include "wsgate.redisWaitReplicas" $) (int .replicas)) }}
{{- end }}
{{- end }}
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

{{/* Pod anti-affinity on the node for pods with these labels: soft
(preferred) or hard (required). dict "labels" LABELS "mode" soft|hard */}}
{{- define "wsgate.antiAffinity" -}}
podAntiAffinity:
  {{- if eq .mode "hard" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- .labels | nindent 10 }}
  {{- else }}
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- .labels | nindent 12 }}
  {{- end }}
{{- end }}
