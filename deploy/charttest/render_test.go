// Package charttest renders chatd's Helm chart with Helm's Go SDK and
// checks what it produces against the Kubernetes API types and against
// chatd itself: its configuration keys, its HTTP endpoints and its
// Prometheus metrics. It is a module of its own so that chatd's go.mod
// does not carry Helm and the Kubernetes API.
package charttest

import (
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "../helm/chatd"
	releaseName = "chatd"
	namespace   = "chat"
	// The oldest Kubernetes the chart claims (the preStop sleep action).
	kubeVersion = "v1.30.0"
)

// rendered is one render of the chart, every object strictly decoded.
type rendered struct {
	deployments  map[string]*appsv1.Deployment
	services     map[string]*corev1.Service
	secrets      map[string]*corev1.Secret
	accounts     map[string]*corev1.ServiceAccount
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs         map[string]*policyv1.PodDisruptionBudget
	ingresses    map[string]*networkingv1.Ingress
	notes        string
	valuesSecret string // secret.existingSecret
}

// render renders the chart as `helm template` would, with the values files
// given (none: the chart's defaults), and decodes every object into its
// k8s.io/api type, refusing unknown and duplicate fields.
func render(t *testing.T, valuesFiles ...string) *rendered {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	if !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, kubeVersion) {
		t.Fatalf("chart kubeVersion %q does not admit %s", ch.Metadata.KubeVersion, kubeVersion)
	}
	vals := map[string]any{}
	for _, f := range valuesFiles {
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			t.Fatalf("values %s: %v", f, err)
		}
		vals = chartutil.CoalesceTables(v.AsMap(), vals)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	caps.KubeVersion = *kv
	top, err := chartutil.ToRenderValues(ch, vals,
		chartutil.ReleaseOptions{Name: releaseName, Namespace: namespace, IsInstall: true, Revision: 1}, caps)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	// Strict: a template that reads a value the chart does not define fails.
	out, err := engine.Engine{Strict: true}.Render(ch, top)
	if err != nil {
		t.Fatalf("render: %v", err)
	}

	r := &rendered{
		deployments: map[string]*appsv1.Deployment{},
		services:    map[string]*corev1.Service{},
		secrets:     map[string]*corev1.Secret{},
		accounts:    map[string]*corev1.ServiceAccount{},
		hpas:        map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		pdbs:        map[string]*policyv1.PodDisruptionBudget{},
		ingresses:   map[string]*networkingv1.Ingress{},
	}
	if s, ok := top["Values"].(chartutil.Values)["secret"].(map[string]any); ok {
		r.valuesSecret, _ = s["existingSecret"].(string)
	}
	for _, name := range slices.Sorted(maps.Keys(out)) {
		text := out[name]
		if strings.HasSuffix(name, "NOTES.txt") {
			r.notes = text
			continue
		}
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for i, doc := range splitDocs(text) {
			r.decode(t, fmt.Sprintf("%s#%d", filepath.Base(name), i), doc)
		}
	}
	return r
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// splitDocs splits a rendered template into its YAML documents, leaving
// out the empty ones (a template whose condition is false).
func splitDocs(text string) []string {
	var docs []string
	for _, d := range docSep.Split(text, -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (r *rendered) decode(t *testing.T, where, doc string) {
	t.Helper()
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
		t.Fatalf("%s: not YAML: %v\n%s", where, err, doc)
	}
	if head.Metadata.Name == "" {
		t.Fatalf("%s: %s without a name", where, head.Kind)
	}
	if head.Metadata.Namespace != "" {
		t.Errorf("%s: %s %s sets its namespace; the release's applies", where, head.Kind, head.Metadata.Name)
	}
	var obj any
	switch head.APIVersion + " " + head.Kind {
	case "apps/v1 Deployment":
		obj = add(t, where, r.deployments, head.Metadata.Name)
	case "v1 Service":
		obj = add(t, where, r.services, head.Metadata.Name)
	case "v1 Secret":
		obj = add(t, where, r.secrets, head.Metadata.Name)
	case "v1 ServiceAccount":
		obj = add(t, where, r.accounts, head.Metadata.Name)
	case "autoscaling/v2 HorizontalPodAutoscaler":
		obj = add(t, where, r.hpas, head.Metadata.Name)
	case "policy/v1 PodDisruptionBudget":
		obj = add(t, where, r.pdbs, head.Metadata.Name)
	case "networking.k8s.io/v1 Ingress":
		obj = add(t, where, r.ingresses, head.Metadata.Name)
	default:
		t.Fatalf("%s: unexpected object %s %s", where, head.APIVersion, head.Kind)
	}
	// UnmarshalStrict refuses fields the API type does not have (a typo or
	// a misplaced key that the API server would drop or reject) and
	// duplicate keys.
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		t.Fatalf("%s: %s %s does not decode strictly: %v\n%s", where, head.Kind, head.Metadata.Name, err, doc)
	}
}

// add makes a new object for name in m and returns it; a name used twice
// for one kind is an error.
func add[T any](t *testing.T, where string, m map[string]*T, name string) *T {
	t.Helper()
	if _, dup := m[name]; dup {
		t.Fatalf("%s: two objects named %s", where, name)
	}
	obj := new(T)
	m[name] = obj
	return obj
}

// valuesCases are the values files the chart must render with.
var valuesCases = []struct {
	name  string
	files []string
}{
	{"defaults", nil},
	{"example", []string{chartDir + "/values-example.yaml"}},
}

// The chart's objects are the seed topology: gateway, auth and chat, each
// with its Service, chat with an autoscaler and a disruption budget.
func TestChartRendersTheTopology(t *testing.T) {
	for _, c := range valuesCases {
		t.Run(c.name, func(t *testing.T) {
			r := render(t, c.files...)
			for _, role := range []string{"gateway", "auth", "chat"} {
				d := r.deployments[releaseName+"-"+role]
				if d == nil {
					t.Fatalf("no Deployment for %s; have %v", role, slices.Sorted(maps.Keys(r.deployments)))
				}
				if got := podRole(t, d); got != role {
					t.Errorf("Deployment %s runs --role=%s", d.Name, got)
				}
				sel := d.Spec.Selector.MatchLabels
				if len(sel) == 0 || !subset(sel, d.Spec.Template.Labels) {
					t.Errorf("Deployment %s: selector %v does not select its own pods %v", d.Name, sel, d.Spec.Template.Labels)
				}
				for other, od := range r.deployments {
					if other != d.Name && subset(sel, od.Spec.Template.Labels) {
						t.Errorf("Deployment %s's selector also selects %s's pods", d.Name, other)
					}
				}
			}
			for _, s := range r.services {
				if countSelected(r, s.Spec.Selector) != 1 {
					t.Errorf("Service %s selects %d Deployments' pods, want 1", s.Name, countSelected(r, s.Spec.Selector))
				}
				pod := selectedPod(r, s.Spec.Selector)
				for _, p := range s.Spec.Ports {
					if !hasContainerPort(pod, p.TargetPort.String()) {
						t.Errorf("Service %s: target port %s is no container port of its pods", s.Name, p.TargetPort.String())
					}
				}
			}
			head := r.services[releaseName+"-chat-headless"]
			if head == nil || head.Spec.ClusterIP != corev1.ClusterIPNone || head.Spec.PublishNotReadyAddresses {
				t.Fatalf("chat needs a headless Service listing only ready pods, got %+v", head)
			}
			if _, ok := r.services[releaseName+"-auth"]; !ok {
				t.Error("no Service for auth")
			}
			if _, ok := r.services[releaseName+"-gateway"]; !ok {
				t.Error("no Service for the gateway")
			}

			chat := r.deployments[releaseName+"-chat"]
			hpa := r.hpas[releaseName+"-chat"]
			if hpa == nil {
				t.Fatal("no HorizontalPodAutoscaler for chat")
			}
			if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || ref.Name != chat.Name {
				t.Errorf("HPA scales %+v, not the chat Deployment", ref)
			}
			if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 || hpa.Spec.MaxReplicas < *hpa.Spec.MinReplicas || len(hpa.Spec.Metrics) == 0 {
				t.Errorf("HPA bounds %v..%d, %d metrics", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, len(hpa.Spec.Metrics))
			}
			if chat.Spec.Replicas != nil {
				t.Error("the chat Deployment fixes its replicas while an HPA scales it")
			}
			for _, m := range hpa.Spec.Metrics {
				if m.Resource == nil {
					t.Errorf("HPA metric %+v is not a resource", m)
					continue
				}
				if q := chat.Spec.Template.Spec.Containers[0].Resources.Requests[m.Resource.Name]; q.IsZero() {
					t.Errorf("HPA scales on %v, which the chat pods request none of", m.Resource)
				}
			}
			pdb := r.pdbs[releaseName+"-chat"]
			if pdb == nil {
				t.Fatal("no PodDisruptionBudget for chat")
			}
			if pdb.Spec.Selector == nil || !subset(pdb.Spec.Selector.MatchLabels, chat.Spec.Template.Labels) || countSelected(r, pdb.Spec.Selector.MatchLabels) != 1 {
				t.Errorf("PDB selector %v does not select exactly the chat pods", pdb.Spec.Selector)
			}
			if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
				t.Error("PDB allows every disruption")
			}
			for _, ing := range r.ingresses {
				for _, rule := range ing.Spec.Rules {
					for _, p := range rule.HTTP.Paths {
						svc := r.services[p.Backend.Service.Name]
						if svc == nil || !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == p.Backend.Service.Port.Name }) {
							t.Errorf("Ingress %s routes to %s port %q, which does not exist", ing.Name, p.Backend.Service.Name, p.Backend.Service.Port.Name)
						}
						if svc != nil && selectedPod(r, svc.Spec.Selector) != &r.deployments[releaseName+"-gateway"].Spec.Template {
							t.Errorf("Ingress %s routes past the gateway", ing.Name)
						}
					}
				}
			}
			if !strings.Contains(r.notes, releaseName+"-gateway") {
				t.Errorf("NOTES do not name the gateway:\n%s", r.notes)
			}
		})
	}
	// The example turns the Ingress on.
	if r := render(t, chartDir+"/values-example.yaml"); len(r.ingresses) != 1 {
		t.Errorf("example values: %d Ingresses, want 1", len(r.ingresses))
	}
}

// Every pod runs as non-root on a read-only root filesystem without
// capabilities, with probes, a preStop wait, a grace period covering it and
// chatd's shutdown, and memory limits.
func TestChartPodsAreHardened(t *testing.T) {
	for _, c := range valuesCases {
		t.Run(c.name, func(t *testing.T) {
			r := render(t, c.files...)
			for name, d := range r.deployments {
				spec := d.Spec.Template.Spec
				psc := spec.SecurityContext
				if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
					t.Errorf("%s: pod may run as root: %+v", name, psc)
				}
				if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("%s: no RuntimeDefault seccomp profile", name)
				}
				if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
					t.Errorf("%s: mounts a Kubernetes API token chatd never uses", name)
				}
				if _, ok := r.accounts[spec.ServiceAccountName]; !ok {
					t.Errorf("%s: service account %q is not in the chart", name, spec.ServiceAccountName)
				}
				if len(spec.Containers) != 1 {
					t.Fatalf("%s: %d containers", name, len(spec.Containers))
				}
				ctr := spec.Containers[0]
				sc := ctr.SecurityContext
				if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("%s: root filesystem is writable", name)
				}
				if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s: privilege escalation allowed", name)
				}
				if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
					t.Errorf("%s: capabilities not all dropped: %+v", name, sc)
				}
				// chatd writes only under its data directory: it must be a
				// volume, since the root filesystem is read-only.
				if dir := envValue(ctr, "CHATD_DATA_DIR"); dir == "" || mountFor(spec, ctr, dir) == nil {
					t.Errorf("%s: data directory %q is not on a volume", name, dir)
				}
				if ctr.ReadinessProbe == nil || ctr.ReadinessProbe.HTTPGet == nil || ctr.ReadinessProbe.HTTPGet.Path != "/readyz" {
					t.Errorf("%s: readiness probe is not GET /readyz: %+v", name, ctr.ReadinessProbe)
				}
				if ctr.LivenessProbe == nil || ctr.LivenessProbe.HTTPGet == nil || ctr.LivenessProbe.HTTPGet.Path != "/healthz" {
					t.Errorf("%s: liveness probe is not GET /healthz: %+v", name, ctr.LivenessProbe)
				}
				for _, p := range []*corev1.Probe{ctr.ReadinessProbe, ctr.LivenessProbe} {
					if p != nil && p.HTTPGet != nil && !hasContainerPort(&d.Spec.Template, p.HTTPGet.Port.String()) {
						t.Errorf("%s: probe port %s is not a container port", name, p.HTTPGet.Port.String())
					}
				}
				if httpAddr := envValue(ctr, "CHATD_HTTP_ADDR"); httpAddr != ":"+fmt.Sprint(ctr.Ports[0].ContainerPort) {
					t.Errorf("%s: chatd listens on %q, the container port is %d", name, httpAddr, ctr.Ports[0].ContainerPort)
				}
				// The scraper's port is the ops listener's (http.ops_addr).
				if port := d.Spec.Template.Annotations["prometheus.io/port"]; port != "" {
					if !hasContainerPort(&d.Spec.Template, port) {
						t.Errorf("%s: scrape port %s is not a container port", name, port)
					}
					if ops := envValue(ctr, "CHATD_HTTP_OPS_ADDR"); ops != ":"+port {
						t.Errorf("%s: the ops listener is %q, the scrape port %s", name, ops, port)
					}
				}
				if ctr.Lifecycle == nil || ctr.Lifecycle.PreStop == nil || ctr.Lifecycle.PreStop.Sleep == nil || ctr.Lifecycle.PreStop.Sleep.Seconds < 1 {
					t.Fatalf("%s: no preStop sleep", name)
				}
				shutdown := durationSeconds(t, envValue(ctr, "CHATD_HTTP_SHUTDOWN_TIMEOUT"))
				need := ctr.Lifecycle.PreStop.Sleep.Seconds + shutdown
				if g := spec.TerminationGracePeriodSeconds; g == nil || *g <= need {
					t.Errorf("%s: grace period %v does not cover the preStop sleep and http.shutdown_timeout (%d s)", name, g, need)
				}
				res := ctr.Resources
				for _, rn := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					if q, ok := res.Requests[rn]; !ok || q.IsZero() {
						t.Errorf("%s: no %s request", name, rn)
					}
				}
				if q, ok := res.Limits[corev1.ResourceMemory]; !ok || q.Cmp(res.Requests[corev1.ResourceMemory]) < 0 {
					t.Errorf("%s: memory limit %v below the request", name, q.String())
				}
			}
		})
	}
}

func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func countSelected(r *rendered, sel map[string]string) int {
	n := 0
	for _, d := range r.deployments {
		if len(sel) > 0 && subset(sel, d.Spec.Template.Labels) {
			n++
		}
	}
	return n
}

func selectedPod(r *rendered, sel map[string]string) *corev1.PodTemplateSpec {
	for _, d := range r.deployments {
		if len(sel) > 0 && subset(sel, d.Spec.Template.Labels) {
			return &d.Spec.Template
		}
	}
	return nil
}

func hasContainerPort(pod *corev1.PodTemplateSpec, port string) bool {
	if pod == nil {
		return false
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
				return true
			}
		}
	}
	return false
}

func podRole(t *testing.T, d *appsv1.Deployment) string {
	t.Helper()
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--role="); ok {
			return v
		}
	}
	t.Fatalf("%s: no --role in %v", d.Name, d.Spec.Template.Spec.Containers[0].Args)
	return ""
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// mountFor returns the volume mount that holds path, or nil.
func mountFor(spec corev1.PodSpec, c corev1.Container, path string) *corev1.VolumeMount {
	for i, m := range c.VolumeMounts {
		if path == m.MountPath || strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			if slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
				return &c.VolumeMounts[i]
			}
		}
	}
	return nil
}

func durationSeconds(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscanf(s, "%ds", &n); err != nil || !strings.HasSuffix(s, "s") {
		t.Fatalf("http.shutdown_timeout %q: want whole seconds like 15s", s)
	}
	return n
}
