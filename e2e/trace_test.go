package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/chatd/chatd/internal/apitest"
)

// otlpSpan is one span an OTLP receiver got, with its resource's names.
type otlpSpan struct {
	service, instance     string
	name                  string
	trace, span, parent   string // hex; parent "" for a root
	attrs                 map[string]string
	statusCode, statusMsg string
}

func (s otlpSpan) String() string {
	return fmt.Sprintf("%s/%s %q trace=%s span=%s parent=%s %v", s.service, s.instance, s.name, s.trace[:8], s.span, s.parent, s.attrs)
}

// otlpReceiver is an OTLP/HTTP traces endpoint (protobuf, as the
// OpenTelemetry exporters send it) that keeps every span.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []otlpSpan
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *otlpReceiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces application/x-protobuf", http.StatusBadRequest)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(io.LimitReader(body, 16<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ex coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &ex); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []otlpSpan
	for _, rs := range ex.GetResourceSpans() {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.GetKey()] = kv.GetValue().GetStringValue()
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := otlpSpan{
					service: res["service.name"], instance: res["service.instance.id"], name: sp.GetName(),
					trace: hex.EncodeToString(sp.GetTraceId()), span: hex.EncodeToString(sp.GetSpanId()),
					parent: hex.EncodeToString(sp.GetParentSpanId()), attrs: map[string]string{},
					statusCode: sp.GetStatus().GetCode().String(), statusMsg: sp.GetStatus().GetMessage(),
				}
				for _, kv := range sp.GetAttributes() {
					v := kv.GetValue()
					switch {
					case v.GetStringValue() != "":
						s.attrs[kv.GetKey()] = v.GetStringValue()
					default:
						s.attrs[kv.GetKey()] = fmt.Sprint(v.GetIntValue())
					}
				}
				got = append(got, s)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// wait returns the first span that match accepts, waiting for exports.
func (r *otlpReceiver) wait(t *testing.T, what string, match func(otlpSpan) bool) otlpSpan {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r.mu.Lock()
		for _, s := range r.spans {
			if match(s) {
				r.mu.Unlock()
				return s
			}
		}
		n := len(r.spans)
		r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no span %s among the %d exported:\n%s", what, n, r.dump())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *otlpReceiver) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, s := range r.spans {
		b.WriteString(s.String() + "\n")
	}
	return b.String()
}

// named matches a span by service, name and parent span.
func named(service, name string, parent otlpSpan) func(otlpSpan) bool {
	return func(s otlpSpan) bool {
		return s.service == service && s.name == name && s.trace == parent.trace && s.parent == parent.span
	}
}

// TestSplitDeploymentTrace runs the split deployment with tracing pointed
// at an in-test OTLP receiver and follows one message end to end, over
// both transports:
//   - a WebSocket send on chat1 to Bob, connected on chat2: chat1's
//     chat.send (the trace's root) with its validation, store append,
//     publish and ack write, then chat2's chat.deliver, child of the
//     publish through the Redis envelope, and chat2's write to Bob's socket;
//   - POST /api/messages through the gateway: the gateway's server span
//     and its upstream attempt, the replica's server span continuing the
//     gateway's traceparent, chat.send under it, and the delivery on the
//     other replica, where Bob has a socket too. The client's own
//     traceparent is not believed by the gateway (an untrusted peer).
func TestSplitDeploymentTrace(t *testing.T) {
	rcv := startOTLPReceiver(t)
	tracing := []string{
		"CHATD_TRACING_OTLP_ENDPOINT=" + rcv.srv.URL,
		"OTEL_BSP_SCHEDULE_DELAY=100", // export every 100 ms, not 5 s
	}
	// Replicas believe the gateway's traceparent (it is their trusted proxy).
	c := startClusterWith(t, append([]string{"CHATD_HTTP_TRUSTED_PROXIES=127.0.0.1"}, tracing...), tracing)
	alice, bob, a1, b2 := c.aliceAndBob(t)
	b1 := dialOn(t, bob, "chat1")

	// The WebSocket path.
	a1.Send(map[string]string{"type": "send", "to": bob.ID, "text": "traced over ws", "client_msg_id": "ws1"})
	ack := a1.Wait(apitest.IsMessage("ack", "ws1"), 5*time.Second).Message
	b2.Wait(apitest.IsMessage("message", "ws1"), 5*time.Second)
	send := rcv.wait(t, "chat.send of ws1", func(s otlpSpan) bool {
		return s.service == "chatd-chat" && s.name == "chat.send" && s.attrs["chat.message_id"] == ack.ID
	})
	if send.instance != "chat1" || send.parent != "" || send.attrs["chat.transport"] != "websocket" {
		t.Errorf("ws chat.send: %v, want a root span on chat1", send)
	}
	for _, name := range []string{"chat.validate", "store.append", "ws.write"} {
		rcv.wait(t, name+" under chat.send", named("chatd-chat", name, send))
	}
	publish := rcv.wait(t, "broker.publish under chat.send", named("chatd-chat", "broker.publish", send))
	deliver := rcv.wait(t, "chat.deliver on chat2 under the publish", func(s otlpSpan) bool {
		return named("chatd-chat", "chat.deliver", publish)(s) && s.instance == "chat2"
	})
	write := rcv.wait(t, "ws.write on chat2 under the delivery", named("chatd-chat", "ws.write", deliver))
	if write.statusCode == "STATUS_CODE_ERROR" {
		t.Errorf("the write to Bob's socket failed: %v", write)
	}

	// The REST path through the gateway, with a client-chosen traceparent.
	const forged = "4bf92f3577b34da6a3ce929d0e0e4736"
	body, _ := json.Marshal(map[string]string{"to": bob.ID, "text": "traced over rest", "client_msg_id": "rest1"})
	req, _ := http.NewRequest("POST", c.gateway.url()+"/api/messages", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", c.gateway.url())
	req.Header.Set("Traceparent", "00-"+forged+"-00f067aa0ba902b7-01")
	resp, err := alice.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Message apitest.Message }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/messages: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	b1.Wait(apitest.IsMessage("message", "rest1"), 5*time.Second)
	b2.Wait(apitest.IsMessage("message", "rest1"), 5*time.Second)

	rsend := rcv.wait(t, "chat.send of rest1", func(s otlpSpan) bool {
		return s.name == "chat.send" && s.attrs["chat.message_id"] == out.Message.ID
	})
	if rsend.trace == forged {
		t.Error("the gateway continued a client's traceparent")
	}
	server := rcv.wait(t, "the replica's server span over chat.send", func(s otlpSpan) bool {
		return s.service == "chatd-chat" && s.trace == rsend.trace && s.span == rsend.parent
	})
	if server.name != "POST /api/messages" || server.instance != rsend.instance || server.attrs["http.response.status_code"] != "201" {
		t.Errorf("replica server span: %v", server)
	}
	attempt := rcv.wait(t, "the gateway's upstream attempt over the replica", func(s otlpSpan) bool {
		return s.service == "chatd-gateway" && s.trace == rsend.trace && s.span == server.parent
	})
	if attempt.name != "gateway.proxy chat" {
		t.Errorf("gateway attempt span: %v", attempt)
	}
	edge := rcv.wait(t, "the gateway's server span", func(s otlpSpan) bool {
		return s.service == "chatd-gateway" && s.trace == rsend.trace && s.span == attempt.parent
	})
	if edge.parent != "" {
		t.Errorf("the gateway's server span has a parent (the client's?): %v", edge)
	}
	rpublish := rcv.wait(t, "broker.publish of rest1", named("chatd-chat", "broker.publish", rsend))
	other := map[string]string{"chat1": "chat2", "chat2": "chat1"}[rsend.instance]
	rdeliver := rcv.wait(t, "chat.deliver of rest1 on the other replica", func(s otlpSpan) bool {
		return named("chatd-chat", "chat.deliver", rpublish)(s) && s.instance == other
	})
	rcv.wait(t, "ws.write of rest1 on the other replica", named("chatd-chat", "ws.write", rdeliver))

	// The auth role traces too: the signups went gateway → auth.
	rcv.wait(t, "an auth server span under the gateway", func(s otlpSpan) bool {
		return s.service == "chatd-auth" && s.parent != "" && s.name == "POST /auth/signup"
	})
}
