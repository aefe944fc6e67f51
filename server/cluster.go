package server

import (
	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/api"
	"github.com/voicebot/voicebot/cluster"
	"github.com/voicebot/voicebot/config"
)

// clusterRef is the API's view of the cluster node, set once the API's
// listener is bound (the node needs its address) and before it serves.
type clusterRef struct{ *cluster.Node }

var _ api.Cluster = (*clusterRef)(nil)

// newCluster joins the cluster configured: the instance's name and the
// address the others reach its API at (api.advertise, else the bound
// listener).
func newCluster(cfg config.Config, apiAddr string, calls *api.Registry, log zerolog.Logger) *cluster.Node {
	advertise := cfg.API.Advertise
	if advertise == "" {
		advertise = apiAddr
	}
	instance := cfg.Cluster.Instance
	if instance == "" {
		instance = advertise
	}
	c := cfg.Cluster
	log.Info().Str("instance", instance).Str("api", advertise).Str("redis", c.Redis.Addr).Msg("cluster: joining")
	return cluster.New(cluster.Config{Addr: c.Redis.Addr, Password: c.Redis.Password.Reveal(), DB: c.Redis.DB,
		Instance: instance, API: advertise, TTL: c.TTL.D(), Heartbeat: c.Heartbeat.D(), Calls: calls, Log: log})
}
