package app

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// serveFlags are the flags of `chatd serve`, each bound to its config key
// (flags win over the environment, which wins over the config file).
// AddFlags defines them and LoadConfig binds them, from this one table.
var serveFlags = []struct{ name, key, usage string }{
	{"role", "roles", "roles to run: all, or a comma list of gateway, auth, chat"},
	{"http-addr", "http.addr", "listen address"},
	{"ops-addr", "http.ops_addr", "ops listener for /metrics, /healthz, /readyz (empty: none)"},
	{"data-dir", "data_dir", "directory for the SQLite file and the signing key"},
	{"node-id", "node_id", "name of this node in hello frames and presence (default: hostname + random)"},
	{"log-level", "log.level", "debug, info, warn or error"},
	{"log-format", "log.format", "text or json"},
	{"tls-domain", "tls.acme_domains", "serve HTTPS with certificates from Let's Encrypt (tls.acme_ca_url) for these names, comma-separated; http.addr then defaults to :443"},
}

// AddFlags defines serveFlags on fs, with DefaultConfig's values as their
// defaults and the environment variable named in their help.
func AddFlags(fs *pflag.FlagSet) {
	defaults := viper.New()
	registerDefaults(defaults, "", reflect.ValueOf(DefaultConfig()))
	for _, f := range serveFlags {
		def := strings.Join(defaults.GetStringSlice(f.key), ",")
		fs.String(f.name, def, fmt.Sprintf("%s (env %s)", f.usage, EnvVar(f.key)))
	}
}

// EnvVar is the environment variable of a config key: http.addr →
// CHATD_HTTP_ADDR.
func EnvVar(key string) string {
	return "CHATD_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// movedKeys are keys that are no longer read, and the key that replaced
// each. Setting one is refused with a message saying so, instead of being
// silently ignored.
var movedKeys = map[string]string{
	"auth.public_origins": "http.public_origins",
	"chat.public_origins": "http.public_origins",
	// The gateway's proxies are the listener's: one list for every role.
	"gateway.trusted_proxies": "http.trusted_proxies",
}

// LoadConfig builds the configuration from defaults, the config file
// (configPath, or ./config.yaml when it exists), CHATD_* environment
// variables and the flags in fs, then validates it. Every error names the
// key at fault, on one line.
func LoadConfig(fs *pflag.FlagSet, configPath string) (Config, error) {
	v := viper.New()
	// Register every key with its default, so environment-only values are
	// seen by Unmarshal (spf13/viper#761).
	registerDefaults(v, "", reflect.ValueOf(DefaultConfig()))
	v.SetEnvPrefix("CHATD")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	if configPath == "" {
		configPath = os.Getenv("CHATD_CONFIG")
	}
	switch {
	case configPath != "":
		v.SetConfigFile(configPath)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("config: reading %s: %s", configPath, oneLine(err))
		}
	default:
		if _, err := os.Stat("config.yaml"); err == nil {
			v.SetConfigFile("config.yaml")
			if err := v.ReadInConfig(); err != nil {
				return Config{}, fmt.Errorf("config: reading config.yaml: %s", oneLine(err))
			}
		}
	}
	if fs != nil {
		for _, sf := range serveFlags {
			if f := fs.Lookup(sf.name); f != nil {
				if err := v.BindPFlag(sf.key, f); err != nil {
					return Config{}, fmt.Errorf("config: flag --%s: %w", sf.name, err)
				}
			}
		}
	}
	for old, now := range movedKeys {
		_, inEnv := os.LookupEnv(EnvVar(old))
		if v.InConfig(old) || inEnv {
			return Config{}, fmt.Errorf("config: %s (%s) is no longer read: set %s (%s), which every role uses", old, EnvVar(old), now, EnvVar(now))
		}
	}

	var cfg Config
	if err := v.UnmarshalExact(&cfg); err != nil {
		return Config{}, fmt.Errorf("config: %s", oneLine(err))
	}
	if cfg.TLS.Enabled() && !setExplicitly(v, fs, "http.addr") {
		cfg.HTTP.Addr = ":443" // HTTPS on its port unless told otherwise
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %s", oneLine(err))
	}
	return cfg, nil
}

// setExplicitly reports whether key was set by the config file, the
// environment or a flag, rather than left at its default.
func setExplicitly(v *viper.Viper, fs *pflag.FlagSet, key string) bool {
	if _, ok := os.LookupEnv(EnvVar(key)); ok || v.InConfig(key) {
		return true
	}
	for _, sf := range serveFlags {
		if sf.key == key && fs != nil {
			if f := fs.Lookup(sf.name); f != nil && f.Changed {
				return true
			}
		}
	}
	return false
}

// registerDefaults walks the default config and sets every leaf as a viper
// default under its mapstructure key.
func registerDefaults(v *viper.Viper, prefix string, val reflect.Value) {
	t := val.Type()
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
		fv := val.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeFor[time.Time]() {
			registerDefaults(v, key, fv)
			continue
		}
		v.SetDefault(key, fv.Interface())
	}
}

// oneLine flattens mapstructure's multi-line error lists.
func oneLine(err error) string {
	var parts []string
	for _, l := range strings.Split(err.Error(), "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "*"))
		if l != "" && !strings.HasSuffix(l, "error(s) decoding:") && !strings.HasPrefix(l, "decoding failed due to the following error") {
			parts = append(parts, l)
		}
	}
	if len(parts) == 0 {
		return errors.Unwrap(err).Error()
	}
	return strings.Join(parts, "; ")
}
