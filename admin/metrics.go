package admin

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// HandleMetrics serves GET /metrics in the Prometheus exposition format:
// cs (the proxy's collector) with the Go runtime, process and build-info
// collectors of client_golang, in a registry of the server's own (so that
// several proxies in one process do not collide). It returns the registry.
func (s *Server) HandleMetrics(cs ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector())
	reg.MustRegister(cs...)
	h := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.Handle("/metrics", h)
	return reg
}
