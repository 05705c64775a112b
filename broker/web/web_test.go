package web

import (
	"io/fs"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// get serves one request from Handler.
func get(t *testing.T, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

// TestServesAssets holds the page and its assets to their content types,
// and every answer to the headers that make the page safe to open: the
// Content-Security-Policy (no inline script or style, nothing from another
// origin), nosniff, no framing.
func TestServesAssets(t *testing.T) {
	t.Parallel()
	cases := []struct {
		path, mediaType, contains string
	}{
		{"/", "text/html", `<script type="module" src="app.js"></script>`},
		{"/index.html", "", ""}, // FileServer redirects it to /
		{"/app.js", "text/javascript", "EventSource"},
		{"/clients.js", "text/javascript", "requestAnimationFrame"},
		{"/detail.js", "text/javascript", "export class DetailPane"},
		{"/copy.js", "text/javascript", "execCommand"},
		{"/style.css", "text/css", "prefers-color-scheme"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			rec := get(t, http.MethodGet, tc.path)
			h := rec.Header()
			if tc.path == "/index.html" {
				if rec.Code != http.StatusMovedPermanently || h.Get("Location") != "./" {
					t.Fatalf("GET /index.html: %d Location %q, want 301 to ./", rec.Code, h.Get("Location"))
				}
				return
			}
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s: %d", tc.path, rec.Code)
			}
			mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
			if err != nil || mt != tc.mediaType {
				t.Errorf("GET %s: Content-Type %q, want %s", tc.path, h.Get("Content-Type"), tc.mediaType)
			}
			if !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("GET %s: body lacks %q", tc.path, tc.contains)
			}
			csp := h.Get("Content-Security-Policy")
			for _, d := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'"} {
				if !strings.Contains(csp, d) {
					t.Errorf("GET %s: Content-Security-Policy %q lacks %q", tc.path, csp, d)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("GET %s: Content-Security-Policy %q allows inline code", tc.path, csp)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
				t.Errorf("GET %s: X-Content-Type-Options %q X-Frame-Options %q", tc.path,
					h.Get("X-Content-Type-Options"), h.Get("X-Frame-Options"))
			}
		})
	}
}

// TestMethods holds the handler to GET and HEAD: anything else is 405
// with an Allow header.
func TestMethods(t *testing.T) {
	t.Parallel()
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		rec := get(t, m, "/")
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /: %d Allow %q, want 405 with Allow: GET, HEAD", m, rec.Code, rec.Header().Get("Allow"))
		}
	}
	if rec := get(t, http.MethodHead, "/app.js"); rec.Code != http.StatusOK {
		t.Errorf("HEAD /app.js: %d", rec.Code)
	}
	if rec := get(t, http.MethodGet, "/nothing.js"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /nothing.js: %d, want 404", rec.Code)
	}
}

// staticFiles returns every embedded file's name and text.
func staticFiles(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := fs.WalkDir(files, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, path)
		out[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("nothing embedded")
	}
	return out
}

// TestNothingFromElsewhere holds the page to working offline on a depot
// LAN: no file refers to an http:// or https:// address (a CDN, a web
// font), and the stylesheet imports nothing. The SVG namespace is the one
// URL allowed: it names, it is never fetched.
func TestNothingFromElsewhere(t *testing.T) {
	t.Parallel()
	url := regexp.MustCompile(`(?i)https?://[^\s"'<>)]*`)
	for name, text := range staticFiles(t) {
		for _, u := range url.FindAllString(text, -1) {
			if u == "http://www.w3.org/2000/svg" && strings.HasSuffix(name, ".svg") {
				continue
			}
			t.Errorf("%s refers to %s: the page must need nothing from another host", name, u)
		}
		if strings.Contains(text, "//cdn") || strings.Contains(text, "@import") || strings.Contains(text, "fonts.googleapis") {
			t.Errorf("%s loads something from elsewhere", name)
		}
	}
}

// TestNoInlineCode holds index.html to what its Content-Security-Policy
// allows: scripts only from files (no inline <script> body, no on…
// handler attributes, no javascript: URLs) and styles only from files (no
// <style> element, no style attribute). The scripts build no markup from
// strings (innerHTML and friends) and evaluate no strings.
func TestNoInlineCode(t *testing.T) {
	t.Parallel()
	all := staticFiles(t)
	html := all["static/index.html"]
	if html == "" {
		t.Fatal("no static/index.html")
	}
	scripts := regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(html, -1)
	if len(scripts) == 0 {
		t.Error("index.html has no script")
	}
	for _, m := range scripts {
		if strings.TrimSpace(m[2]) != "" {
			t.Errorf("inline script body: %q", m[0])
		}
		if !strings.Contains(m[1], "src=") {
			t.Errorf("script without src: %q", m[0])
		}
	}
	checks := []struct {
		re   string
		what string
	}{
		{`(?i)<style\b`, "a <style> element"},
		{`(?i)\sstyle\s*=`, "a style attribute"},
		{`(?i)\son[a-z]+\s*=`, "an event handler attribute"},
		{`(?i)javascript:`, "a javascript: URL"},
	}
	for _, c := range checks {
		if loc := regexp.MustCompile(c.re).FindStringIndex(html); loc != nil {
			t.Errorf("index.html has %s: %q", c.what, html[max(0, loc[0]-20):min(len(html), loc[1]+40)])
		}
	}
	unsafe := regexp.MustCompile(`\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|\beval\(|new Function\(|\.style\.|setAttribute\(\s*'style'`)
	for name, text := range all {
		if !strings.HasSuffix(name, ".js") {
			continue
		}
		for _, m := range unsafe.FindAllString(text, -1) {
			t.Errorf("%s uses %s: set textContent and classes instead", name, m)
		}
	}
}
