package api

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"time"
)

// Cluster is where the calls of the other instances behind the same load
// balancer are found (package cluster: a registry in Redis). Without one,
// the API answers for this instance's calls only.
type Cluster interface {
	// Find says which instance holds a call that is not here: its API's
	// address and the call as last published (final once it ended).
	// ok is false when no instance has it.
	Find(ctx context.Context, id string) (r Remote, ok bool, err error)
	// Calls lists the calls in progress on the other live instances.
	Calls(ctx context.Context) ([]CallInfo, error)
}

// Remote is a call another instance holds.
type Remote struct {
	Instance string   `json:"instance"`
	API      string   `json:"api"` // host:port of its API
	Info     CallInfo `json:"call"`
}

// forwardedHeader marks a request one instance passes to the call's owner:
// the owner answers from its own calls only, so a request never goes round.
const forwardedHeader = "X-Voicebot-Forwarded"

// clusterTimeout bounds a look-up in the cluster's registry.
const clusterTimeout = 2 * time.Second

// cluster is the cluster to ask about r, nil when there is none or r was
// forwarded to us already.
func (s *Server) cluster(r *http.Request) Cluster {
	if s.cfg.Cluster == nil || r.Header.Get(forwardedHeader) != "" {
		return nil
	}
	return s.cfg.Cluster
}

// find looks a call up in the cluster. It answers the request itself (and
// returns ok false) when the call is nowhere, or the registry is down.
func (s *Server) find(w http.ResponseWriter, r *http.Request, c Cluster, notFound string) (Remote, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), clusterTimeout)
	defer cancel()
	rem, ok, err := c.Find(ctx, r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "not a call of this instance, and the cluster's call registry is unavailable")
		return Remote{}, false
	}
	if !ok {
		writeError(w, http.StatusNotFound, notFound)
		return Remote{}, false
	}
	return rem, true
}

// clusterCalls adds the other instances' calls to ours (dedupe by id),
// oldest first. An unavailable registry leaves ours (the cluster logs it).
func (s *Server) clusterCalls(r *http.Request, local []CallInfo) []CallInfo {
	c := s.cluster(r)
	if c == nil {
		return local
	}
	ctx, cancel := context.WithTimeout(r.Context(), clusterTimeout)
	defer cancel()
	others, err := c.Calls(ctx)
	if err != nil {
		return local
	}
	seen := make(map[string]bool, len(local))
	for _, info := range local {
		seen[info.ID] = true
	}
	for _, info := range others {
		if !seen[info.ID] {
			seen[info.ID] = true
			local = append(local, info)
		}
	}
	sort.SliceStable(local, func(i, j int) bool { return local[i].Started.Before(local[j].Started) })
	return local
}

// forward passes the request to the instance whose API is at addr, with
// its bearer token, and streams the answer back (an event stream as it
// comes).
func (s *Server) forward(w http.ResponseWriter, r *http.Request, addr string) {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: addr})
			pr.Out.Header.Set(forwardedHeader, "1")
		},
		Transport:     s.proxy,
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(r.Context().Err(), context.Canceled) {
				return // the client went
			}
			s.cfg.Log.Warn().Err(err).Str("owner", addr).Str("path", r.URL.Path).Msg("api: the call's instance did not answer")
			writeError(w, http.StatusBadGateway, "the instance that holds this call did not answer")
		},
	}
	rp.ServeHTTP(w, r)
}

// newProxyTransport is the client forwarded requests go out on.
func newProxyTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		ResponseHeaderTimeout: 10 * time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
	}
}
