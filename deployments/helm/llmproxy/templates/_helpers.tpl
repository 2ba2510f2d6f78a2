{{/* The chart's name. */}}
{{- define "llmproxy.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's object name. */}}
{{- define "llmproxy.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selector labels: stable across upgrades, never the chart version. */}}
{{- define "llmproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmproxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Every object's labels. */}}
{{- define "llmproxy.labels" -}}
{{ include "llmproxy.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llmproxy
{{- end -}}

{{- define "llmproxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "llmproxy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The pod spec of the stable and the canary Deployment; call with
     (dict "root" $ "track" "stable" "tag" "1.0.0"). */}}
{{- define "llmproxy.podTemplate" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "llmproxy.selectorLabels" $root | nindent 4 }}
    app.kubernetes.io/component: gateway
    track: {{ .track }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $root.Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "llmproxy.serviceAccountName" $root }}
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    fsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: llmproxy
      image: "{{ $root.Values.image.repository }}:{{ .tag }}"
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        - -config=/etc/llmproxy/llmproxy.hcl
        - -watch={{ $root.Values.configWatch }}
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
      envFrom:
        - secretRef:
            name: {{ $root.Values.secrets.existingSecret }}
            optional: false
        {{- with $root.Values.secrets.providerKeysSecret }}
        - secretRef:
            name: {{ . }}
            optional: true
        {{- end }}
      env:
        - name: GOMEMLIMIT
          valueFrom:
            resourceFieldRef:
              resource: limits.memory
      resources:
        {{- toYaml $root.Values.resources | nindent 8 }}
      startupProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml $root.Values.probes.startup | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml $root.Values.probes.readiness | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml $root.Values.probes.liveness | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: ["ALL"]
      volumeMounts:
        - name: config
          mountPath: /etc/llmproxy
          readOnly: true
        - name: provider-keys
          mountPath: /var/run/secrets/llmproxy
          readOnly: true
        - name: tmp
          mountPath: /tmp
        - name: storage
          mountPath: /var/lib/llmproxy/storage
  volumes:
    - name: config
      configMap:
        name: {{ include "llmproxy.fullname" $root }}-config
    - name: provider-keys
      secret:
        secretName: {{ default "llmproxy-provider-keys" $root.Values.secrets.providerKeysSecret }}
        optional: true
    - name: tmp
      emptyDir:
        medium: Memory
        sizeLimit: 64Mi
    - name: storage
      emptyDir:
        sizeLimit: 1Gi
  {{- with $root.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "llmproxy.selectorLabels" $root | nindent 10 }}
{{- end -}}
