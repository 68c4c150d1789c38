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

// FlagKeys maps the serve command's flags to config keys; flags win over
// the environment, which wins over the config file.
var FlagKeys = map[string]string{
	"role":       "roles",
	"http-addr":  "http.addr",
	"data-dir":   "data_dir",
	"node-id":    "node_id",
	"log-level":  "log.level",
	"log-format": "log.format",
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
		for flag, key := range FlagKeys {
			if f := fs.Lookup(flag); f != nil {
				if err := v.BindPFlag(key, f); err != nil {
					return Config{}, fmt.Errorf("config: flag --%s: %w", flag, err)
				}
			}
		}
	}

	var cfg Config
	if err := v.UnmarshalExact(&cfg); err != nil {
		return Config{}, fmt.Errorf("config: %s", oneLine(err))
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %s", oneLine(err))
	}
	return cfg, nil
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
