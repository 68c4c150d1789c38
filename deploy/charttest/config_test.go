package charttest

import (
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"

	"github.com/chatd/chatd/app"
	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/push"
)

// configEnv returns every environment variable chatd reads for a config
// key, mapped to the key: app.EnvVar of every mapstructure key path,
// walked from app.DefaultConfig as app.LoadConfig does.
func configEnv() map[string]string {
	out := map[string]string{"CHATD_CONFIG": "(config file)"}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() {
				walk(key, f.Type)
				continue
			}
			out[app.EnvVar(key)] = key
		}
	}
	walk("", reflect.TypeOf(app.DefaultConfig()))
	return out
}

// Every CHATD_* variable the chart sets is a real config key, and every
// Secret key it reads is in the Secret it names.
func TestChartEnvIsChatdConfig(t *testing.T) {
	keys := configEnv()
	if _, ok := keys["CHATD_GATEWAY_CHAT_DNS"]; !ok || len(keys) < 40 {
		t.Fatalf("config keys from app.DefaultConfig look wrong (%d): %v", len(keys), keys)
	}
	for _, c := range valuesCases {
		t.Run(c.name, func(t *testing.T) {
			r := render(t, c.files...)
			for name, d := range r.deployments {
				spec := d.Spec.Template.Spec
				for _, e := range spec.Containers[0].Env {
					if strings.HasPrefix(e.Name, "CHATD_") {
						if _, ok := keys[e.Name]; !ok {
							t.Errorf("%s sets %s, which is no chatd config key", name, e.Name)
						}
					}
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
						checkSecretRef(t, r, name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
					}
				}
				for _, v := range spec.Volumes {
					if v.Secret == nil {
						continue
					}
					for _, it := range v.Secret.Items {
						checkSecretRef(t, r, name, v.Secret.SecretName, it.Key)
					}
				}
			}
		})
	}
}

func checkSecretRef(t *testing.T, r *rendered, who, secret, key string) {
	t.Helper()
	if s, ok := r.secrets[secret]; ok {
		if _, ok := s.Data[key]; !ok {
			t.Errorf("%s reads key %q of Secret %s, which has %v", who, key, secret, slices.Sorted(maps.Keys(s.Data)))
		}
		return
	}
	if secret != r.valuesSecret || secret == "" {
		t.Errorf("%s reads Secret %q, neither rendered nor secret.existingSecret (%q)", who, secret, r.valuesSecret)
	}
}

// placeholders stand in for the Secret an operator creates (existingSecret).
var placeholders = map[string]string{
	"redis-url": "redis://:password@redis-master:6379/0",
	"mongo-uri": "mongodb://chatd:password@mongodb-svc:27017/chatd?replicaSet=mongodb",
}

// Each Deployment's environment and arguments, given to chatd's own
// config loader, make a configuration that validates for its role, and
// the addresses in it are the chart's Services.
func TestChartConfigLoadsInChatd(t *testing.T) {
	for _, c := range valuesCases {
		t.Run(c.name, func(t *testing.T) {
			r := render(t, c.files...)
			for _, role := range []string{"gateway", "auth", "chat"} {
				d := r.deployments[releaseName+"-"+role]
				ctr := d.Spec.Template.Spec.Containers[0]
				cfg := loadConfig(t, r, ctr)
				if !slices.Equal(cfg.Roles, []string{role}) {
					t.Errorf("%s: roles %v", role, cfg.Roles)
				}
				if role != "auth" {
					checkServiceURL(t, r, role+": keys.jwks_url", cfg.Keys.JWKSURL, releaseName+"-auth", "/auth/jwks")
				}
				switch role {
				case "gateway":
					if len(cfg.Gateway.AuthUpstreams) != 1 {
						t.Fatalf("gateway.auth_upstreams %v", cfg.Gateway.AuthUpstreams)
					}
					checkServiceURL(t, r, "gateway.auth_upstreams", cfg.Gateway.AuthUpstreams[0], releaseName+"-auth", "")
					if len(cfg.Gateway.ChatUpstreams) != 0 || cfg.Gateway.ChatDNS == "" {
						t.Fatalf("the gateway must find chat by DNS, not a fixed list: %+v", cfg.Gateway)
					}
					host, port, err := net.SplitHostPort(cfg.Gateway.ChatDNS)
					if err != nil {
						t.Fatal(err)
					}
					head := r.services[releaseName+"-chat-headless"]
					if want := head.Name + "." + namespace + ".svc.cluster.local."; host != want {
						t.Errorf("gateway.chat_dns host %q, want the headless Service's name %q", host, want)
					}
					if !servicePort(head, port) {
						t.Errorf("gateway.chat_dns port %s is not the headless Service's", port)
					}
				case "auth":
					checkKeyFile(t, r, d.Spec.Template.Spec, ctr, "auth.key_file", cfg.Auth.KeyFile, "signing.key", func(p string) error {
						_, err := token.LoadOrCreateKey(p)
						return err
					})
				case "chat":
					if cfg.Store.Backend != "mongo" || cfg.PubSub.Backend != "redis" {
						t.Errorf("chat: store %s, pubsub %s", cfg.Store.Backend, cfg.PubSub.Backend)
					}
					// Every replica the same VAPID key: the Secret's, mounted.
					checkKeyFile(t, r, d.Spec.Template.Spec, ctr, "push.vapid_key_file", cfg.Push.VAPIDKeyFile, "vapid.key", func(p string) error {
						_, err := push.LoadKey(p)
						return err
					})
				}
			}
		})
	}
}

// loadConfig runs app.LoadConfig with exactly the container's CHATD_*
// environment and its serve flags.
func loadConfig(t *testing.T, r *rendered, ctr corev1.Container) app.Config {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "CHATD_") {
			t.Setenv(k, "")
			if err := os.Unsetenv(k); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, e := range ctr.Env {
		if !strings.HasPrefix(e.Name, "CHATD_") {
			continue
		}
		v := e.Value
		if f := e.ValueFrom; f != nil {
			switch {
			case f.SecretKeyRef != nil:
				if s, ok := r.secrets[f.SecretKeyRef.Name]; ok {
					v = string(s.Data[f.SecretKeyRef.Key])
				} else {
					v = placeholders[f.SecretKeyRef.Key]
				}
			case f.FieldRef != nil && f.FieldRef.FieldPath == "metadata.name":
				v = "chatd-chat-5d9c7b-x2k4q"
			default:
				t.Fatalf("%s: unexpected valueFrom %+v", e.Name, f)
			}
		}
		t.Setenv(e.Name, v)
	}
	if len(ctr.Args) == 0 || ctr.Args[0] != "serve" {
		t.Fatalf("container args %v do not run serve", ctr.Args)
	}
	// The serve command's own flags (main.go adds --config, which the chart
	// does not pass).
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	app.AddFlags(fs)
	if err := fs.Parse(ctr.Args[1:]); err != nil {
		t.Fatalf("args %v: %v", ctr.Args, err)
	}
	// The working directory has no config.yaml: environment and flags only.
	cfg, err := app.LoadConfig(fs, "")
	if err != nil {
		t.Fatalf("chatd refuses the configuration of %v: %v", ctr.Args, err)
	}
	return cfg
}

// checkServiceURL checks that raw is http://<service>:<a port of it><path>.
func checkServiceURL(t *testing.T, r *rendered, what, raw, service, path string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Path != path {
		t.Errorf("%s = %q, want http://%s:PORT%s", what, raw, service, path)
		return
	}
	svc := r.services[u.Hostname()]
	if u.Hostname() != service || svc == nil || !servicePort(svc, u.Port()) {
		t.Errorf("%s = %q: not a port of Service %s", what, raw, service)
	}
}

func servicePort(s *corev1.Service, port string) bool {
	return slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return port != "" && port == strconv.Itoa(int(p.Port)) })
}

// checkKeyFile checks that keyFile (the setting what) is the Secret's
// secretKey mounted read-only into the pod, and (when the chart made the
// Secret) that chatd loads the key it holds with load.
func checkKeyFile(t *testing.T, r *rendered, spec corev1.PodSpec, ctr corev1.Container, what, keyFile, secretKey string, load func(path string) error) {
	t.Helper()
	m := mountFor(spec, ctr, keyFile)
	if m == nil {
		t.Fatalf("%s %s is on no volume", what, keyFile)
	}
	var vol *corev1.Volume
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == m.Name {
			vol = &spec.Volumes[i]
		}
	}
	if vol.Secret == nil || !m.ReadOnly {
		t.Fatalf("%s %s is not on a read-only Secret volume", what, keyFile)
	}
	rel, _ := filepath.Rel(m.MountPath, keyFile)
	idx := slices.IndexFunc(vol.Secret.Items, func(it corev1.KeyToPath) bool { return it.Path == rel })
	if idx < 0 || vol.Secret.Items[idx].Key != secretKey {
		t.Fatalf("%s %s is not the Secret's %s: %+v", what, keyFile, secretKey, vol.Secret.Items)
	}
	s, ok := r.secrets[vol.Secret.SecretName]
	if !ok {
		return // the operator's own Secret
	}
	path := filepath.Join(t.TempDir(), secretKey)
	if err := os.WriteFile(path, s.Data[secretKey], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := load(path); err != nil {
		t.Errorf("the chart's generated %s does not load in chatd: %v", secretKey, err)
	}
}
