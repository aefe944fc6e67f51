// Package vars is a call's context: the variables a call carries (who
// called, whom, the SIP headers the configuration names, the values an API
// request gave) and the templates that use them. A profile's instructions,
// greeting prompt and webhook payloads are templates, rendered per call:
//
//	{{caller}}  {{called}}  {{header "X-Customer-Id"}}  {{var "name"}}
//
// A value that is missing renders empty. A template that does not parse
// is refused with the configuration, never met by a call.
package vars

import (
	"fmt"
	"strings"
	"sync"
	"text/template"
)

// Vars is one call's context.
type Vars struct {
	Caller string `json:"caller,omitempty"`
	Called string `json:"called,omitempty"`
	// Headers are the SIP headers the configuration names (inbound) or the
	// request sent (outbound), by name as configured.
	Headers map[string]string `json:"headers,omitempty"`
	// Values are the API request's variables.
	Values map[string]string `json:"variables,omitempty"`
}

// Empty reports whether the call carries no context at all.
func (v Vars) Empty() bool {
	return v.Caller == "" && v.Called == "" && len(v.Headers) == 0 && len(v.Values) == 0
}

// header looks a header up by name, in any case (SIP header names are
// case-insensitive).
func (v Vars) header(name string) string {
	if h, ok := v.Headers[name]; ok {
		return h
	}
	for k, h := range v.Headers {
		if strings.EqualFold(k, name) {
			return h
		}
	}
	return ""
}

// funcs are the functions a template may call. At parse time they are
// placeholders; Render binds them to the call's Vars.
func funcs(v Vars) template.FuncMap {
	return template.FuncMap{
		"caller": func() string { return v.Caller },
		"called": func() string { return v.Called },
		"header": func(name string) string { return v.header(name) },
		"var":    func(name string) string { return v.Values[name] },
	}
}

// Check parses text as a template and reports what is wrong with it; a
// text without "{{" is plain text and always fine.
func Check(text string) error {
	_, err := parse(text)
	return err
}

// parsed keeps each template parsed once: profiles are few, calls many.
var parsed sync.Map // text → *template.Template

func parse(text string) (*template.Template, error) {
	if t, ok := parsed.Load(text); ok {
		return t.(*template.Template), nil
	}
	t, err := template.New("").Funcs(funcs(Vars{})).Option("missingkey=zero").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template: %s", strings.TrimPrefix(err.Error(), "template: :"))
	}
	parsed.Store(text, t)
	return t, nil
}

// Render fills text's template with v. Text that is not a valid template
// (the configuration refuses those) comes back as it is.
func Render(text string, v Vars) string {
	if !strings.Contains(text, "{{") {
		return text
	}
	t, err := parse(text)
	if err != nil {
		return text
	}
	t, err = t.Clone()
	if err != nil {
		return text
	}
	var b strings.Builder
	if err := t.Funcs(funcs(v)).Execute(&b, nil); err != nil {
		return text
	}
	return b.String()
}
