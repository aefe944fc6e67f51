package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// The YAML decoder names an unknown key by Go type ("field listn not
// found in type config.SIP"); an operator knows it by its path in the
// file (sip.listn). keyPaths maps each struct type of the configuration to
// where it sits, so errors can say the path.

var (
	pathsOnce   sync.Once
	pathsByType map[string][]string
)

// keyPaths returns where each struct type of Config sits: "" for Config
// itself, "sip" for config.SIP, "sip.trunks[]" for an element of a list,
// "profiles.<name>" for a map's values.
func keyPaths() map[string][]string {
	pathsOnce.Do(func() {
		pathsByType = map[string][]string{}
		var walk func(t reflect.Type, path string)
		walk = func(t reflect.Type, path string) {
			for t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			switch t.Kind() {
			case reflect.Slice:
				walk(t.Elem(), path+"[]")
				return
			case reflect.Map:
				walk(t.Elem(), path+".<name>")
				return
			case reflect.Struct:
			default:
				return
			}
			name := t.String()
			for _, p := range pathsByType[name] {
				if p == path {
					return
				}
			}
			pathsByType[name] = append(pathsByType[name], path)
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				if tag == "" || tag == "-" || !f.IsExported() {
					continue
				}
				child := tag
				if path != "" {
					child = path + "." + tag
				}
				walk(f.Type, child)
			}
		}
		walk(reflect.TypeOf(Config{}), "")
		// Profiles decode each agent on its own (Profiles.UnmarshalYAML).
		walk(reflect.TypeOf(Agent{}), profilePath)
	})
	return pathsByType
}

var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)

// profilePath stands for a profile's name in keyPaths.
const profilePath = "profiles.<name>"

// keyErrors rewrites the decoder's unknown-field errors with the key's
// path: "line 3: sip.listn: unknown key". Within a profile (profile, e.g.
// "profiles.sales"), the profile's paths are the ones named.
func keyErrors(err error, profile string) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	out := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		out[i] = e
		m := unknownField.FindStringSubmatch(e)
		if m == nil {
			continue
		}
		var paths []string
		for _, p := range keyPaths()[m[3]] {
			inProfile := strings.HasPrefix(p, profilePath)
			switch {
			case profile != "" && inProfile:
				paths = append(paths, profile+strings.TrimPrefix(p, profilePath))
			case profile == "" && !inProfile:
				paths = append(paths, p)
			}
		}
		if len(paths) == 0 {
			continue
		}
		keys := make([]string, len(paths))
		for j, p := range paths {
			keys[j] = m[2]
			if p != "" {
				keys[j] = p + "." + m[2]
			}
		}
		out[i] = fmt.Sprintf("line %s: %s: unknown key", m[1], strings.Join(keys, " or "))
	}
	return fmt.Errorf("%s", strings.Join(out, "; "))
}
