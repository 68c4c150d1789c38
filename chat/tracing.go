package chat

import (
	"context"
	"encoding/binary"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/store"
)

// Tracing (Deps.Tracer; off when nil). One trace per message:
//
//	chat.send            the send frame or POST /api/messages (under the
//	                     request's server span, itself under the gateway's)
//	  chat.validate      api.md's rules, the recipient, blocks
//	  store.append       until the store's commit callback
//	  broker.publish     both user topics; its context rides in the envelope
//	  ws.write           the ack, until written to the sender's socket
//	chat.deliver         on every node holding a recipient's socket, child
//	                     of broker.publish (from the envelope)
//	  ws.write           one per local connection, until the frame is written
//
// Every hook is behind a nil check of Service.tracer or of a send's
// *sendTrace: with tracing off the send path allocates nothing more.

const tracerName = "github.com/chatd/chatd/chat"

// sendTrace is one traced send; nil when tracing is off.
type sendTrace struct {
	tr     trace.Tracer
	ctx    context.Context // carries send
	send   trace.Span
	append trace.Span
}

// traceSend starts a send's span under ctx's span (REST) or as a new
// trace (WebSocket); nil when tracing is off.
func (s *Service) traceSend(ctx context.Context, transport string) *sendTrace {
	if s.tracer == nil {
		return nil
	}
	ctx, sp := s.tracer.Start(ctx, "chat.send", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("chat.transport", transport), attribute.String("chat.node", s.node)))
	return &sendTrace{tr: s.tracer, ctx: ctx, send: sp}
}

// start starts a child span of the send; nil when t is.
func (t *sendTrace) start(name string, kind trace.SpanKind) trace.Span {
	if t == nil {
		return nil
	}
	_, sp := t.tr.Start(t.ctx, name, trace.WithSpanKind(kind))
	return sp
}

// finish ends a span started by start, with herr as its error.
func finishSpan(sp trace.Span, herr *httpapi.Error) {
	if sp == nil {
		return
	}
	if herr != nil {
		sp.SetStatus(codes.Error, herr.Code)
		sp.SetAttributes(attribute.String("chat.error_code", herr.Code))
	}
	sp.End()
}

// startAppend starts the store.append span.
func (t *sendTrace) startAppend() {
	if t != nil {
		t.append = t.start("store.append", trace.SpanKindClient)
	}
}

// endAppend ends the store.append span with the store's answer.
func (t *sendTrace) endAppend(msg store.Message, created bool, err error) {
	if t == nil || t.append == nil {
		return
	}
	if err != nil {
		t.append.RecordError(err)
		t.append.SetStatus(codes.Error, "append failed")
	} else {
		t.append.SetAttributes(attribute.Int64("chat.seq", msg.Seq), attribute.Bool("chat.created", created))
	}
	t.append.End()
}

// end ends the send's span; herr is what the sender was answered.
func (t *sendTrace) end(res *sendResult, herr *httpapi.Error) {
	if t == nil {
		return
	}
	if res != nil {
		kind := res.msg.Kind
		if kind == "" {
			kind = store.KindText
		}
		t.send.SetAttributes(attribute.String("chat.message_id", res.msg.ID), attribute.String("chat.kind", kind),
			attribute.String("chat.conversation_id", res.msg.ConversationID), attribute.Int64("chat.seq", res.msg.Seq))
	}
	finishSpan(t.send, herr)
}

// Broker envelope of a traced message (wire.go): kind envTraced, the
// except id, then the W3C trace context of the publishing span in binary
// (16-byte trace id, 8-byte span id, 1 byte of flags), then the frame.
// Only sampled messages carry it. A node that predates it drops such a
// payload (its parseEnvelope refuses the kind): enable tracing only once
// every chat replica reads it.
const (
	envTraced   byte = 'M'
	envTraceLen      = 16 + 8 + 1
)

// tracedEnvelope returns env (an envMessage envelope) with sc in it.
func tracedEnvelope(env []byte, sc trace.SpanContext) []byte {
	out := make([]byte, 0, len(env)+envTraceLen)
	out = append(out, envTraced)
	out = append(out, env[1:envHeader]...)
	tid, sid := sc.TraceID(), sc.SpanID()
	out = append(out, tid[:]...)
	out = append(out, sid[:]...)
	out = append(out, byte(sc.TraceFlags()))
	return append(out, env[envHeader:]...)
}

// envelopeTrace is the remote span context a traced envelope carries.
func envelopeTrace(p []byte) (trace.SpanContext, bool) {
	if len(p) <= envHeader+envTraceLen || p[0] != envTraced {
		return trace.SpanContext{}, false
	}
	b := p[envHeader:]
	var cfg trace.SpanContextConfig
	copy(cfg.TraceID[:], b[:16])
	copy(cfg.SpanID[:], b[16:24])
	cfg.TraceFlags = trace.TraceFlags(b[24])
	cfg.Remote = true
	sc := trace.NewSpanContext(cfg)
	return sc, sc.IsValid()
}

// parseTracedEnvelope splits an envTraced payload like parseEnvelope.
func parseTracedEnvelope(p []byte) (except uint64, frame []byte, ok bool) {
	if len(p) <= envHeader+envTraceLen || p[0] != envTraced {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(p[1:envHeader]), p[envHeader+envTraceLen:], true
}

// fanOutTraced is fanOut for a traced send: a broker.publish span whose
// context goes in the envelope.
func (s *Service) fanOutTraced(ctx context.Context, res sendResult) {
	sp := res.tr.start("broker.publish", trace.SpanKindProducer)
	sp.SetAttributes(attribute.Int("chat.topics", 2))
	env := res.env
	if sc := sp.SpanContext(); sc.IsSampled() {
		env = tracedEnvelope(env, sc)
	}
	s.publishTo(ctx, res.msg.To, env)
	s.publishTo(ctx, res.msg.From, env)
	sp.End()
}

// traceDeliver starts the chat.deliver span of a traced payload; nil when
// tracing is off or the payload carries no trace.
func traceDeliver(tr trace.Tracer, payload []byte) (context.Context, trace.Span) {
	if tr == nil {
		return nil, nil
	}
	sc, ok := envelopeTrace(payload)
	if !ok {
		return nil, nil
	}
	return tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), sc), "chat.deliver",
		trace.WithSpanKind(trace.SpanKindConsumer))
}

// startWrite starts a ws.write span under ctx; nil when ctx is.
func startWrite(tr trace.Tracer, ctx context.Context, connID uint64) trace.Span {
	if ctx == nil {
		return nil
	}
	_, sp := tr.Start(ctx, "ws.write", trace.WithAttributes(attribute.Int64("chat.conn", int64(connID>>1))))
	return sp
}

// endWrite ends a queued frame's ws.write span; why is "" when written.
func endWrite(sp trace.Span, why string) {
	if sp == nil {
		return
	}
	if why != "" {
		sp.SetStatus(codes.Error, why)
	}
	sp.End()
}

// endWrites ends the ws.write spans of frames that will not be written.
func endWrites(items []outItem, why string) {
	for i := range items {
		if items[i].span != nil {
			endWrite(items[i].span, why)
			items[i].span = nil
		}
	}
}
