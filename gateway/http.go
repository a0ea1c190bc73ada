package gateway

import (
	"encoding/json"

	"github.com/valyala/fasthttp"
)

// handleHTTP serves the HTTP listener:
//
//	GET /status  200 "OK" while the process serves (liveness, as GG has)
//	GET /readyz  200 when ready, 503 while draining (readiness)
//	GET /stats   the Stats snapshot as JSON
//	GET /metrics Prometheus metrics (metrics.go)
func (g *Gateway) handleHTTP(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
		return
	}
	switch string(ctx.Path()) {
	case "/status":
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("OK")
	case "/readyz":
		ctx.SetContentType("text/plain; charset=utf-8")
		st := g.State()
		if st != StateReady {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		}
		ctx.SetBodyString(st.String())
	case "/metrics":
		g.metrics.handler(ctx)
	case "/stats":
		b, err := json.Marshal(g.Stats())
		if err != nil {
			ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBody(b)
	default:
		ctx.Error("not found", fasthttp.StatusNotFound)
	}
}
