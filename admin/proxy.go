package admin

import (
	"errors"
	"strings"

	"github.com/graftlb/graftlb/balancer"
	"github.com/graftlb/graftlb/protocol"
	"github.com/valyala/fasthttp"
)

// HandleProxy serves the L7 proxy's endpoints:
//
//	GET  /pool                      the gateways as the proxy sees them
//	GET  /stats                     the proxy's counters
//	GET  /metrics                   Prometheus metrics
//	GET  /sessions/{id}             one session: gateway, confirmed, preference list, skipped gateways
//	GET  /config                    the effective configuration, secrets redacted (config())
//	POST /pool/{gateway}/drain      no new sessions or stateless calls on the gateway, from this proxy
//	POST /pool/{gateway}/undrain    and back
//	GET  /  and  GET /events        the dashboard and its live feed
func (s *Server) HandleProxy(p *balancer.Proxy, config func() any) {
	s.HandleJSON("/pool", func() any { return p.Pool() })
	s.HandleJSON("/stats", func() any { return p.Stats() })
	s.HandleJSON("/config", config)
	s.HandleMetrics(p.Collector())
	s.HandlePrefix(fasthttp.MethodGet, "/sessions/", func(ctx *fasthttp.RequestCtx) {
		raw := strings.TrimPrefix(string(ctx.Path()), "/sessions/")
		id, err := protocol.ParseSessionID(raw)
		if err != nil {
			writeJSON(ctx, fasthttp.StatusBadRequest, errorBody{"a session id is 32 hex digits: " + err.Error()})
			return
		}
		info, ok := p.Session(id)
		if !ok {
			writeJSON(ctx, fasthttp.StatusNotFound, errorBody{"this proxy does not know session " + id.String()})
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, info)
	})
	s.HandlePrefix(fasthttp.MethodPost, "/pool/", func(ctx *fasthttp.RequestCtx) {
		rest := strings.TrimPrefix(string(ctx.Path()), "/pool/")
		name, action, ok := strings.Cut(rest, "/")
		if !ok || name == "" || (action != "drain" && action != "undrain") {
			writeJSON(ctx, fasthttp.StatusNotFound, errorBody{"want POST /pool/{gateway}/drain or /pool/{gateway}/undrain"})
			return
		}
		err := p.DrainGateway(name, action == "drain")
		switch {
		case errors.Is(err, balancer.ErrUnknownGateway):
			writeJSON(ctx, fasthttp.StatusNotFound, errorBody{"no gateway " + name + " in the pool"})
			return
		case err != nil:
			writeJSON(ctx, fasthttp.StatusInternalServerError, errorBody{err.Error()})
			return
		}
		s.log.Info().Str("gateway", name).Str("action", action).Str("from", ctx.RemoteAddr().String()).Msg("admin: pool change")
		for _, m := range p.Pool() {
			if m.Name == name {
				writeJSON(ctx, fasthttp.StatusOK, m)
				return
			}
		}
		writeJSON(ctx, fasthttp.StatusOK, struct{}{})
	})
	s.HandleDashboard(p.View)
}

type errorBody struct {
	Error string `json:"error"`
}

// Redacted stands for a secret in GET /config: "(set)" when there is one,
// "" when there is none.
func Redacted(secret string) string {
	if secret == "" {
		return ""
	}
	return "(set)"
}
