package chat

import "github.com/prometheus/client_golang/prometheus"

// metrics are the chat role's Prometheus collectors. They exist even when no
// registerer is given, so the code never checks for nil.
type metrics struct {
	connections prometheus.Gauge
	stored      prometheus.Counter
	delivered   prometheus.Counter
	resyncs     prometheus.Counter
	sendLatency prometheus.Histogram
	storeLat    *prometheus.HistogramVec // observed by timedStore
	refused     *prometheus.CounterVec   // requests refused by a limit, by limit
	// attachments counts uploads stored and removed by the prune, by
	// event; attachmentBytes the bytes uploaded (attachments.go).
	attachments     *prometheus.CounterVec
	attachmentBytes prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chatd_ws_connections", Help: "Open WebSocket connections on this node.",
		}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatd_messages_stored_total", Help: "Messages stored (retries of a stored message excluded).",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatd_messages_delivered_total", Help: "Message frames handed to local WebSocket connections.",
		}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatd_resyncs_total", Help: "resync frames queued on local WebSocket connections (broker link restored, failed publish).",
		}),
		sendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chatd_send_latency_seconds",
			Help:    "Time from a send frame or request received to its ack written or response sent.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		storeLat: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chatd_store_latency_seconds",
			Help:    "Latency of store operations, by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_limit_refused_total", Help: "Requests refused by a limit against abuse, by limit.",
		}, []string{"limit"}),
		attachments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_attachments_total", Help: "Attachments uploaded, and removed unreferenced by the prune, on this node, by event.",
		}, []string{"event"}),
		attachmentBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatd_attachment_bytes_uploaded_total", Help: "Bytes of the attachments uploaded to this node.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.connections, m.stored, m.delivered, m.resyncs, m.sendLatency, m.storeLat, m.refused, m.attachments, m.attachmentBytes} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
