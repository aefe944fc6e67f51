package realtime

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Provider selects URL shape and authentication.
type Provider int

const (
	// OpenAI: wss://api.openai.com/v1/realtime?model=…, Authorization: Bearer.
	OpenAI Provider = iota
	// Azure OpenAI: …/openai/v1/realtime?model=<deployment> (GA) or
	// …/openai/realtime?api-version=…&deployment=… (beta), api-key header.
	Azure
	// Custom: any compatible server at a given URL; Bearer auth if a key is set.
	Custom
)

// DefaultAzureBetaAPIVersion is the preview API version used for Azure's
// beta dialect when none is configured.
const DefaultAzureBetaAPIVersion = "2025-04-01-preview"

// Endpoint is where and how to connect.
type Endpoint struct {
	URL    string
	Header http.Header
}

// EndpointConfig is what building an Endpoint needs.
type EndpointConfig struct {
	Provider        Provider
	Dialect         Dialect
	URL             string // overrides the provider's URL when set
	Model           string
	APIKey          string
	AzureEndpoint   string // https://<resource>.openai.azure.com
	AzureDeployment string
	AzureAPIVersion string
}

// BuildEndpoint returns the URL and headers for a provider and dialect.
func BuildEndpoint(c EndpointConfig) (Endpoint, error) {
	h := http.Header{}
	var u string
	switch {
	case c.URL != "":
		u = c.URL
	case c.Provider == Azure:
		base, err := url.Parse(strings.TrimRight(c.AzureEndpoint, "/"))
		if err != nil || base.Host == "" {
			return Endpoint{}, fmt.Errorf("realtime: azure endpoint %q is not a URL", c.AzureEndpoint)
		}
		base.Scheme = "wss"
		q := url.Values{}
		if c.Dialect == Beta {
			v := c.AzureAPIVersion
			if v == "" {
				v = DefaultAzureBetaAPIVersion
			}
			base.Path += "/openai/realtime"
			q.Set("api-version", v)
			q.Set("deployment", c.AzureDeployment)
		} else {
			// GA takes no api-version: sending one is answered 401.
			base.Path += "/openai/v1/realtime"
			q.Set("model", c.AzureDeployment)
		}
		base.RawQuery = q.Encode()
		u = base.String()
	default:
		u = "wss://api.openai.com/v1/realtime?model=" + url.QueryEscape(c.Model)
	}
	if c.APIKey != "" {
		if c.Provider == Azure {
			h.Set("api-key", c.APIKey)
		} else {
			h.Set("Authorization", "Bearer "+c.APIKey)
		}
	}
	if c.Dialect == Beta && c.Provider != Azure {
		h.Set("OpenAI-Beta", "realtime=v1")
	}
	return Endpoint{URL: u, Header: h}, nil
}
