package secret

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestValueNeverPrints(t *testing.T) {
	v := Value("sk-live-123")
	type holder struct {
		Key Value
		Map map[string]Value
	}
	h := holder{Key: v, Map: map[string]Value{"a": v}}
	j, _ := json.Marshal(h)
	y, _ := yaml.Marshal(h)
	for _, s := range []string{fmt.Sprint(v), fmt.Sprintf("%v %+v %#v %s %q %x %X %d", v, v, v, v, v, v, v, v),
		fmt.Sprintf("%v %+v %#v", h, h, h), string(j), string(y)} {
		if strings.Contains(s, "sk-live") || strings.Contains(s, "736b2d6c697665") {
			t.Errorf("the secret printed: %s", s)
		}
	}
	if v.Reveal() != "sk-live-123" {
		t.Error("Reveal lost the value")
	}
}
