package charttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/chatd/chatd/push"
)

// compose.yaml and the ECS task definitions set only real config keys, and
// every compose service restarts by itself.
func TestComposeAndECSUseChatdConfig(t *testing.T) {
	keys := configEnv()
	data, err := os.ReadFile(filepath.Join(moduleRoot, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Restart     string            `json:"restart"`
			Environment map[string]string `json:"environment"`
			Configs     []struct {
				Source string `json:"source"`
				Target string `json:"target"`
			} `json:"configs"`
		} `json:"services"`
		Configs struct {
			VAPIDKey struct {
				Content string `json:"content"`
			} `json:"vapid-key"`
		} `json:"configs"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if len(compose.Services) < 6 {
		t.Fatalf("compose.yaml: %d services", len(compose.Services))
	}
	// The YAML merge keys (<<: *backends) are resolved: the check sees them.
	if _, ok := compose.Services["chat2"].Environment["CHATD_STORE_MONGO_URI"]; !ok {
		t.Fatalf("compose.yaml: chat2's merged environment not seen: %v", compose.Services["chat2"].Environment)
	}
	for name, s := range compose.Services {
		if s.Restart != "unless-stopped" {
			t.Errorf("compose service %s: restart %q", name, s.Restart)
		}
		for k := range s.Environment {
			if _, ok := keys[k]; strings.HasPrefix(k, "CHATD_") && !ok {
				t.Errorf("compose service %s sets %s, which is no chatd config key", name, k)
			}
		}
	}

	// Web Push: both chat replicas read one VAPID key, the PEM file that
	// compose writes from .env's VAPID_KEY (one line of base64 DER).
	if compose.Configs.VAPIDKey.Content == "" {
		t.Fatal("compose.yaml: no vapid-key config")
	}
	for _, name := range []string{"chat1", "chat2"} {
		s := compose.Services[name]
		file := s.Environment["CHATD_PUSH_VAPID_KEY_FILE"]
		if file == "" || len(s.Configs) != 1 || s.Configs[0].Source != "vapid-key" || s.Configs[0].Target != file {
			t.Errorf("compose service %s: push.vapid_key_file %q, configs %+v: want the vapid-key config there", name, file, s.Configs)
		}
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(t.TempDir(), "vapid.key")
	content := regexp.MustCompile(`\$\{VAPID_KEY[^}]*\}`).ReplaceAllString(compose.Configs.VAPIDKey.Content, base64.StdEncoding.EncodeToString(der))
	if err := os.WriteFile(pemFile, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := push.LoadKey(pemFile); err != nil {
		t.Errorf("compose.yaml's vapid-key file: %v", err)
	} else if pub, _ := priv.PublicKey.Bytes(); k.PublicKey() != base64.RawURLEncoding.EncodeToString(pub) {
		t.Errorf("compose.yaml's vapid-key file holds another key")
	}

	// The TLS variant, layered over compose.yaml, sets real keys too.
	data, err = os.ReadFile(filepath.Join(moduleRoot, "compose.tls.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tlsCompose struct {
		Services map[string]struct {
			Environment map[string]string `json:"environment"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(data, &tlsCompose); err != nil {
		t.Fatalf("compose.tls.yaml: %v", err)
	}
	if _, ok := tlsCompose.Services["gateway"].Environment["CHATD_TLS_ACME_DOMAINS"]; !ok {
		t.Fatalf("compose.tls.yaml: the gateway does not turn ACME on: %v", tlsCompose.Services["gateway"].Environment)
	}
	for name, s := range tlsCompose.Services {
		for k := range s.Environment {
			if _, ok := keys[k]; strings.HasPrefix(k, "CHATD_") && !ok {
				t.Errorf("compose.tls.yaml service %s sets %s, which is no chatd config key", name, k)
			}
		}
	}

	files, err := filepath.Glob("../ecs/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no ECS task definitions: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var td struct {
			ContainerDefinitions []struct {
				Environment []struct{ Name string } `json:"environment"`
				Secrets     []struct{ Name string } `json:"secrets"`
			} `json:"containerDefinitions"`
		}
		if err := json.Unmarshal(data, &td); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, c := range td.ContainerDefinitions {
			for _, e := range append(c.Environment, c.Secrets...) {
				if _, ok := keys[e.Name]; strings.HasPrefix(e.Name, "CHATD_") && !ok {
					t.Errorf("%s sets %s, which is no chatd config key", f, e.Name)
				}
			}
		}
	}
}
