// Package httpapi holds the pieces of api.md's conventions that the auth
// and chat roles share: the error shape and the one map from errors to it
// (errors.go), the wire form of the objects both serve and the time format
// (wire.go), JSON bodies with their limits, and the same-origin rule for
// cookie-authenticated unsafe requests. It imports only the standard
// library and store (for its records and sentinel errors).
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Error codes of api.md's error shape. Every error a handler returns uses one
// of these; clients switch on the code, never on the message.
const (
	CodeInvalidRequest       = "invalid_request"        // the request is malformed or a field is invalid
	CodeUnauthenticated      = "unauthenticated"        // no valid session
	CodeForbidden            = "forbidden"              // the caller may not do this
	CodeNotFound             = "not_found"              // no such resource, or not visible to the caller
	CodeMethodNotAllowed     = "method_not_allowed"     // a known path with the wrong method
	CodeUnsupportedMediaType = "unsupported_media_type" // the body must be application/json
	CodeTooLarge             = "too_large"              // the body is over its limit
	CodeRateLimited          = "rate_limited"           // too many requests; Retry-After says when to try again
	CodeUnavailable          = "unavailable"            // a backend is unavailable; Retry-After says when to try again
	CodeInternal             = "internal"               // an unexpected failure, logged on the server
	CodeInvalidCredentials   = "invalid_credentials"    // wrong username or password
	CodeInvalidUsername      = "invalid_username"       // a username outside the allowed form
	CodeUsernameTaken        = "username_taken"         // the username belongs to another account, or looks like another user's name
	CodeDisplayNameTaken     = "display_name_taken"     // the display name looks like another user's username or display name
	CodeConflict             = "conflict"               // a concurrent change won; reload and try again
	CodeWeakPassword         = "weak_password"          // a password too short, too common or containing the username
	CodeTextEmpty            = "text_empty"             // a message without text
	CodeTextTooLong          = "text_too_long"          // a message over chat.max_text_bytes
	CodeCannotMessageSelf    = "cannot_message_self"    // a message or typing event addressed to its sender
	CodeBlocked              = "blocked"                // the recipient blocks the sender
)

// Error is an API error: an HTTP status, a snake_case code and a message
// that may be shown to a user.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // sets Retry-After when > 0 (429, 503)
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Common errors.
var (
	ErrUnauthenticated = &Error{Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Message: "authentication required"}
	ErrForbidden       = &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: "forbidden"}
	ErrNotFound        = &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "not found"}
	ErrInvalid         = &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: "the request is invalid"}
	ErrConflict        = &Error{Status: http.StatusConflict, Code: CodeConflict, Message: "a concurrent change won, reload and try again"}
	ErrUnavailable     = &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "a backend is unavailable, try again", RetryAfter: 2 * time.Second}
	ErrInternal        = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
)

type body struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// WriteError writes e in api.md's error shape.
func WriteError(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	var b body
	b.Error.Code, b.Error.Message = e.Code, e.Message
	WriteJSON(w, e.Status, b)
}

// WriteJSON writes v as a JSON response with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	buf, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":{"code":"internal","message":"internal error"}}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(buf, '\n'))
}

// DecodeJSON reads r's body, at most limit bytes, into v. It returns the
// fitting *Error: 415 without a JSON content type, 413 over the limit, 400
// for malformed JSON. Unknown fields are ignored.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) *Error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return Errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "the body must be application/json")
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "the body is larger than %d bytes", limit)
		}
		return Errorf(http.StatusBadRequest, CodeInvalidRequest, "could not read the body")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return Errorf(http.StatusBadRequest, CodeInvalidRequest, "the body is not valid JSON for this request: %s", jsonProblem(err))
	}
	return nil
}

func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return "field " + te.Field + " must be " + te.Type.String()
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "syntax error at byte " + strconv.FormatInt(se.Offset, 10)
	}
	return "malformed"
}

// IsUnsafe reports whether the method changes state.
func IsUnsafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// SameOrigin reports whether r comes from one of allowed origins (each
// "scheme://host[:port]"), or, when allowed is empty, from r's own host.
// A request saying Sec-Fetch-Site: same-origin is same-origin; a request
// with neither Origin nor Sec-Fetch-Site is not.
func SameOrigin(r *http.Request, allowed []string) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		return OriginAllowed(r, o, allowed)
	}
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

// OriginAllowed reports whether origin is in allowed or, with allowed empty,
// is r's own origin: the same scheme, host and port. r's own scheme is
// X-Forwarded-Proto when a proxy set it (the gateway always does; a browser
// cannot add it to a cross-site request), else https over TLS, else http;
// its host and port are the Host header, as a proxy forwards it. Default
// ports are implied (http://h:80 is http://h).
func OriginAllowed(r *http.Request, origin string, allowed []string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	got := canonicalOrigin(u.Scheme, u.Host)
	if len(allowed) == 0 {
		return got == canonicalOrigin(requestScheme(r), r.Host)
	}
	for _, a := range allowed {
		if au, err := url.Parse(strings.TrimSuffix(a, "/")); err == nil && got == canonicalOrigin(au.Scheme, au.Host) {
			return true
		}
	}
	return false
}

// requestScheme is the scheme the client used to reach r, as far as a
// same-origin check needs it (see OriginAllowed).
func requestScheme(r *http.Request) string {
	if p := strings.ToLower(strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-Proto"), ",")[0])); p == "http" || p == "https" {
		return p
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// canonicalOrigin is scheme://host[:port] lower-cased, without the
// scheme's default port.
func canonicalOrigin(scheme, host string) string {
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	if h, port, err := net.SplitHostPort(host); err == nil &&
		((scheme == "http" && port == "80") || (scheme == "https" && port == "443")) {
		host = h
		if strings.Contains(h, ":") {
			host = "[" + h + "]"
		}
	}
	return scheme + "://" + host
}
