package app

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// The secrets of the backend URLs (pubsub.redis_url, store.mongo_uri):
// the password of their user info, and the value of any query option
// whose name ends in "password" (MongoDB's tlsCertificateKeyFilePassword).
var (
	userInfoRe      = regexp.MustCompile(`://([^/@?#]*)@`)
	passwordParamRe = regexp.MustCompile(`(?i)[?&][a-z]*password=([^&#]*)`)
)

// urlSecrets returns the secrets of the URLs, each as written and as
// unescaped (a driver's message may show either).
func urlSecrets(urls ...string) []string {
	var out []string
	add := func(s string) {
		if s == "" {
			return
		}
		out = append(out, s)
		if u, err := url.PathUnescape(s); err == nil && u != s {
			out = append(out, u)
		}
	}
	for _, raw := range urls {
		if m := userInfoRe.FindStringSubmatch(raw); m != nil {
			if _, pw, ok := strings.Cut(m[1], ":"); ok {
				add(pw)
			} else if strings.HasPrefix(raw, "redis") {
				add(m[1]) // redis://password@host: go-redis reads a lone user info as the password
			}
		}
		for _, m := range passwordParamRe.FindAllStringSubmatch(raw, -1) {
			add(m[1])
		}
	}
	return out
}

// redacted is an error whose message has the secrets replaced; Unwrap
// keeps errors.Is and errors.As working on the original.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// redact returns err with every secret in its message replaced by
// "REDACTED", or err itself when it holds none.
func redact(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	out := msg
	for _, s := range secrets {
		out = strings.ReplaceAll(out, s, "REDACTED")
	}
	if out == msg {
		return err
	}
	var already *redacted
	if errors.As(err, &already) && already.msg == out {
		return err
	}
	return &redacted{msg: out, err: err}
}
