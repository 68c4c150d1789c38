package redispubsub

import "context"

// Start is part of the Start/Stop pair every long-lived part of chatd has.
// New connected and started the receive, health and presence-sweep loops, so there is nothing left to start.
func (b *Broker) Start(context.Context) error { return nil }

// Stop ends every subscription and releases the backend, as Close does.
func (b *Broker) Stop(context.Context) error { return b.Close() }

// Ready reports whether the backend answers, as Ping does (/readyz).
func (b *Broker) Ready(ctx context.Context) error { return b.Ping(ctx) }
