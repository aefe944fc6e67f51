package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment variable that sets a config key.
const EnvPrefix = "VOICEBOT_"

// EnvConfigFile names the config file when -config is not given; it is the
// one VOICEBOT_ variable that is not a key.
const EnvConfigFile = "VOICEBOT_CONFIG"

// applyEnv sets keys from VOICEBOT_* variables, then the provider key
// variables. An unknown VOICEBOT_ variable is an error, so a typo fails loudly.
func applyEnv(cfg *Config, environ []string) error {
	fields := map[string]reflect.Value{}
	keys := map[string]string{}
	collect(reflect.ValueOf(cfg).Elem(), "", fields, keys)

	env := envMap(environ)
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		if !strings.HasPrefix(name, EnvPrefix) || name == EnvConfigFile {
			continue
		}
		f, ok := fields[name]
		if !ok {
			return fmt.Errorf("%s: no such key (keys are VOICEBOT_ plus the YAML path, e.g. VOICEBOT_SIP_LISTEN)", name)
		}
		if err := setFromString(f, env[name]); err != nil {
			// The value is not echoed: it may be a secret.
			return fmt.Errorf("%s (%s): %w", name, keys[name], err)
		}
	}
	if cfg.Realtime.APIKey == "" {
		if v := env["AZURE_OPENAI_API_KEY"]; v != "" && (cfg.Realtime.Provider == "azure" || cfg.Realtime.Azure.Endpoint != "") {
			cfg.Realtime.APIKey = Secret(v)
		} else if v := env["OPENAI_API_KEY"]; v != "" {
			cfg.Realtime.APIKey = Secret(v)
		} else if v := env["AZURE_OPENAI_API_KEY"]; v != "" {
			cfg.Realtime.APIKey = Secret(v)
		}
	}
	return nil
}

// collect maps each leaf field to its env name and YAML key path.
func collect(v reflect.Value, path string, fields map[string]reflect.Value, keys map[string]string) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if path != "" {
			key = path + "." + tag
		}
		f := v.Field(i)
		if f.Kind() == reflect.Struct {
			collect(f, key, fields, keys)
			continue
		}
		if f.Kind() == reflect.Map || (f.Kind() == reflect.Slice && f.Type().Elem().Kind() != reflect.String) {
			continue // lists of records and maps live in the YAML file only
		}
		name := EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
		fields[name] = f
		keys[name] = key
	}
}

var durationType = reflect.TypeOf(Duration(0))

func setFromString(f reflect.Value, s string) error {
	if f.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration like 500ms or 2s")
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		b, err := parseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		f.SetBool(b)
	case reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("want an integer")
		}
		f.SetInt(int64(n))
	case reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("want a number")
		}
		f.SetFloat(x)
	case reflect.Slice:
		var items []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				items = append(items, p)
			}
		}
		f.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported key type %s", f.Kind())
	}
	return nil
}
