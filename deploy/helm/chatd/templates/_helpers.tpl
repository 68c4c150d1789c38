{{/* Name of the release's objects: <release>-chatd, or <release> when it already says chatd. */}}
{{- define "chatd.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chatd.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "chatd.labels" -}}
{{ include "chatd.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Values.image.tag | default .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "chatd.secretName" -}}
{{- .Values.secret.existingSecret | default (include "chatd.fullname" .) -}}
{{- end -}}

{{- define "chatd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "chatd.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* Base URL of the auth replicas' Service. */}}
{{- define "chatd.authURL" -}}
http://{{ include "chatd.fullname" . }}-auth:8080
{{- end -}}

{{/*
The pod template shared by the three roles. Arguments: root, component
(gateway, auth, chat), values (the component's values), env (the role's own
environment, a YAML list) and volumes/mounts beyond the data directory.
*/}}
{{- define "chatd.podTemplate" -}}
{{- $root := .root -}}
{{- $v := .values -}}
metadata:
  labels:
    {{- include "chatd.selectorLabels" . | nindent 4 }}
  annotations:
    checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    {{- if $root.Values.metrics.podAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: "9090"
    prometheus.io/path: /metrics
    {{- end }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "chatd.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  # The preStop sleep counts against the grace period, then chatd gets
  # SIGTERM and has http.shutdown_timeout to finish in-flight sends.
  terminationGracePeriodSeconds: {{ add $root.Values.preStopSeconds $root.Values.shutdownTimeoutSeconds 5 }}
  containers:
    - name: chatd
      image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag | default $root.Chart.AppVersion }}"
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: ["serve", "--role={{ .component }}"]
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
        # /metrics (and /healthz, /readyz again) for the scraper; no
        # Service routes to it, so it is not reachable from outside.
        - name: ops
          containerPort: 9090
          protocol: TCP
      env:
        - name: CHATD_NODE_ID
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: CHATD_HTTP_ADDR
          value: ":8080"
        - name: CHATD_HTTP_OPS_ADDR
          value: ":9090"
        - name: CHATD_DATA_DIR
          value: /data
        - name: CHATD_HTTP_SHUTDOWN_TIMEOUT
          value: "{{ $root.Values.shutdownTimeoutSeconds }}s"
        - name: CHATD_LOG_LEVEL
          value: {{ $root.Values.log.level | quote }}
        - name: CHATD_LOG_FORMAT
          value: {{ $root.Values.log.format | quote }}
        {{- with $root.Values.publicOrigins }}
        - name: CHATD_HTTP_PUBLIC_ORIGINS
          value: {{ join "," . | quote }}
        {{- end }}
        {{- with $root.Values.tracing.otlpEndpoint }}
        - name: CHATD_TRACING_OTLP_ENDPOINT
          value: {{ . | quote }}
        - name: CHATD_TRACING_SAMPLE_RATIO
          value: {{ $root.Values.tracing.sampleRatio | quote }}
        {{- end }}
        # The Go runtime collects harder as it nears the container's limit
        # instead of being OOM-killed past it.
        - name: GOMEMLIMIT
          valueFrom:
            resourceFieldRef:
              resource: limits.memory
              divisor: "1"
        {{- with get . "env" }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with $v.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
        timeoutSeconds: {{ $root.Values.probes.readiness.timeoutSeconds }}
        failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
        timeoutSeconds: {{ $root.Values.probes.liveness.timeoutSeconds }}
        failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
      lifecycle:
        # The image has no shell: the kubelet's own sleep (Kubernetes 1.30+).
        preStop:
          sleep:
            seconds: {{ $root.Values.preStopSeconds }}
      resources:
        {{- toYaml $v.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: data
          mountPath: /data
        {{- with get . "mounts" }}
        {{- . | nindent 8 }}
        {{- end }}
  volumes:
    # The root filesystem is read-only; chatd's data directory is scratch
    # space here (the store is MongoDB, the signing key a Secret).
    - name: data
      emptyDir:
        sizeLimit: 64Mi
    {{- with get . "volumes" }}
    {{- . | nindent 4 }}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* Store and broker settings of the auth and chat roles; the URLs come from the Secret. */}}
{{- define "chatd.backendEnv" -}}
- name: CHATD_STORE_BACKEND
  value: mongo
- name: CHATD_STORE_MONGO_URI
  valueFrom:
    secretKeyRef:
      name: {{ include "chatd.secretName" . }}
      key: mongo-uri
- name: CHATD_STORE_MONGO_DATABASE
  value: {{ .Values.mongo.database | quote }}
- name: CHATD_STORE_MONGO_MAJORITY
  value: {{ .Values.mongo.majority | quote }}
- name: CHATD_PUBSUB_BACKEND
  value: redis
- name: CHATD_PUBSUB_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "chatd.secretName" . }}
      key: redis-url
{{- end -}}
