package vars

import (
	"strings"
	"sync"
	"testing"
)

func TestRender(t *testing.T) {
	v := Vars{Caller: "+15550100", Called: "800", Headers: map[string]string{"X-Customer-Id": "C-42"}, Values: map[string]string{"order": "4711"}}
	for text, want := range map[string]string{
		"plain text":                                    "plain text",
		"Caller {{caller}} rang {{called}}.":            "Caller +15550100 rang 800.",
		`Customer {{header "X-Customer-Id"}}`:           "Customer C-42",
		`Customer {{header "x-customer-id"}}`:           "Customer C-42",
		`Order {{var "order"}}, ref {{var "missing"}}.`: "Order 4711, ref .",
		`{{if var "order"}}has an order{{end}}`:         "has an order",
		`{{header "User-to-User"}}`:                     "",
	} {
		if got := Render(text, v); got != want {
			t.Errorf("%q → %q, want %q", text, got, want)
		}
	}
	if got := Render("{{caller}}", Vars{}); got != "" {
		t.Errorf("no caller rendered %q", got)
	}
}

func TestCheckRefusesBadTemplates(t *testing.T) {
	for _, bad := range []string{"{{caller", "{{nosuchfunc}}", `{{header}}x{{end}}`} {
		if err := Check(bad); err == nil || !strings.Contains(err.Error(), "template") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if err := Check(`{{var "x"}} and {{header "X-A"}}`); err != nil {
		t.Error(err)
	}
}

// Calls render the same profile at once, each with its own values.
func TestRenderConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			caller := strings.Repeat("1", i+1)
			if got := Render("hi {{caller}}", Vars{Caller: caller}); got != "hi "+caller {
				t.Errorf("%q", got)
			}
		}(i)
	}
	wg.Wait()
}
