// Package ui serves chatd's embedded web client: a single-page application
// in plain HTML, CSS and JavaScript modules (no build step, nothing fetched
// from other origins). It imports nothing else of chatd; the client speaks
// only the public API of docs/api.md.
//
// Layout of the embedded tree:
//
//	static/index.html         the page; "%ASSETS%" is replaced by the asset base
//	static/sw.js              the service worker (notifications), served at /sw.js
//	static/assets/...         stylesheets, modules, icons
//
// Assets are served at /assets/<path> (revalidated with an ETag) and at
// /assets/v/<version>/<path>, where <version> is a digest of every embedded
// file: index.html refers to that form, so browsers cache assets for a year
// and a new build changes every URL at once.
package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
)

//go:embed static
var files embed.FS

// assetPrefix is the URL prefix of the embedded assets.
const assetPrefix = "/assets/"

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	gz          []byte // gzip of body, nil when that is not smaller
	contentType string
	etag        string
}

// newAsset prepares b for serving, with a gzip copy of text formats.
func newAsset(name string, b []byte) asset {
	a := asset{body: b, contentType: contentType(name), etag: etagOf(b)}
	if strings.HasPrefix(a.contentType, "text/") || strings.Contains(a.contentType, "json") || strings.Contains(a.contentType, "svg") {
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err == nil {
			_, err = zw.Write(b)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
		}
		if err == nil && buf.Len() < len(b) {
			a.gz = buf.Bytes()
		}
	}
	return a
}

type site struct {
	index   asset
	sw      asset            // the service worker, at /sw.js (its scope is the whole origin)
	assets  map[string]asset // key: path below static/assets, e.g. "js/main.js"
	version string
}

var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".json":        "application/json",
	".webmanifest": "application/manifest+json",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".ico":         "image/x-icon",
	".txt":         "text/plain; charset=utf-8",
}

func contentType(name string) string {
	if ct, ok := contentTypes[path.Ext(name)]; ok {
		return ct
	}
	return "application/octet-stream"
}

func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// loadSite reads the embedded tree once. The tree is compiled in, so an
// error here is a build defect; it is reported by every request as a 500.
var loadSite = sync.OnceValues(func() (*site, error) {
	s := &site{assets: make(map[string]asset)}
	var names []string
	err := fs.WalkDir(files, "static/assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	all := sha256.New()
	for _, p := range names {
		b, err := files.ReadFile(p)
		if err != nil {
			return nil, err
		}
		rel := strings.TrimPrefix(p, "static/assets/")
		s.assets[rel] = newAsset(p, b)
		all.Write([]byte(rel))
		all.Write([]byte{0})
		all.Write(b)
	}
	sw, err := files.ReadFile("static/sw.js")
	if err != nil {
		return nil, err
	}
	all.Write(sw)
	s.sw = newAsset("sw.js", sw)
	page, err := files.ReadFile("static/index.html")
	if err != nil {
		return nil, err
	}
	all.Write(page)
	s.version = hex.EncodeToString(all.Sum(nil)[:8])
	page = bytes.ReplaceAll(page, []byte("%ASSETS%"), []byte(assetPrefix+"v/"+s.version))
	s.index = newAsset("index.html", page)
	return s, nil
})

// Handler returns the handler of the web UI. Mount it at "/": it serves
// index.html for "/" and for every other path outside /assets/ (so the
// client's own routes, such as /c/{peer_id}, survive a reload), the
// embedded assets under /assets/ (404 for a missing one), a JSON 404 in
// api.md's error shape for paths under /api/ and /auth/ and for /ws that
// reach it, and only GET and HEAD (405 otherwise).
// Every response carries a strict Content-Security-Policy (same origin
// only, data: images for the favicon's unread badge, plus WebSockets to the
// same host), X-Content-Type-Options nosniff,
// Referrer-Policy same-origin and X-Frame-Options DENY.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header(), r.Host)
	s, err := loadSite()
	if err != nil {
		http.Error(w, "ui: embedded files unreadable", http.StatusInternalServerError)
		return
	}
	p := r.URL.Path
	if isAPIPath(p) {
		// An API path that no other handler took: answer like the API, not
		// with the page, so a client never parses HTML as JSON.
		h := w.Header()
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"not found"}}`+"\n")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if p == "/sw.js" {
		// Browsers revalidate a service worker at least daily whatever the
		// header; no-cache makes every check see a new build at once.
		write(w, r, s.sw, "no-cache")
		return
	}
	if !strings.HasPrefix(p, assetPrefix) {
		write(w, r, s.index, "no-cache")
		return
	}
	rel := strings.TrimPrefix(path.Clean(p), assetPrefix)
	cache := "no-cache"
	if v, rest, ok := strings.Cut(strings.TrimPrefix(rel, "v/"), "/"); ok && strings.HasPrefix(rel, "v/") {
		rel = rest
		if v == s.version {
			cache = "public, max-age=31536000, immutable"
		}
	}
	a, ok := s.assets[rel]
	if !ok || strings.HasSuffix(p, "/") {
		w.Header().Set("Cache-Control", "no-store")
		http.NotFound(w, r)
		return
	}
	write(w, r, a, cache)
}

// isAPIPath reports whether p belongs to the API rather than to the app.
func isAPIPath(p string) bool {
	return strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/auth/") || p == "/api" || p == "/auth" || p == "/ws"
}

func write(w http.ResponseWriter, r *http.Request, a asset, cache string) {
	h := w.Header()
	h.Set("Cache-Control", cache)
	body, etag := a.body, a.etag
	if a.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			body, etag = a.gz, strings.TrimSuffix(a.etag, `"`)+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		h.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", a.contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// setSecurityHeaders sets the headers every UI response carries. The
// WebSocket sources name the request's host explicitly because older
// browsers do not let 'self' cover ws: and wss:.
func setSecurityHeaders(h http.Header, host string) {
	connect := "'self'"
	if validHost(host) {
		connect += " ws://" + host + " wss://" + host
	}
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; "+
		"img-src 'self' data:; font-src 'self'; connect-src "+connect+"; manifest-src 'self'; "+
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}

// validHost reports whether host is a plain host[:port] that is safe to
// copy into a header (no spaces, quotes, semicolons or other syntax).
func validHost(host string) bool {
	if host == "" || len(host) > 255 {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}
