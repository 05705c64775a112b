package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAwaitSettledStopsOnRefusal: a stats request the server refuses (a
// users file wants admin credentials) ends the wait with the refusal at
// once, instead of counting zero charge points until the timeout; with
// the credentials it counts.
func TestAwaitSettledStopsOnRefusal(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "secret" {
			http.Error(w, `{"error":"admin credentials required"}`, http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"ocpp":{"connected":3}}`))
	}))
	defer srv.Close()
	s := &chargemq{HTTP: strings.TrimPrefix(srv.URL, "http://"), http: srv.Client()}

	start := time.Now()
	got, err := s.awaitSettled(context.Background(), 3, time.Minute, 0, nil)
	if err == nil || !strings.Contains(err.Error(), "401") || time.Since(start) > 30*time.Second {
		t.Fatalf("without credentials: %d, %v after %s; want the 401 at once", got, err, time.Since(start))
	}
	s.admin = [2]string{"admin", "secret"}
	if got, err := s.awaitSettled(context.Background(), 3, time.Minute, 0, nil); err != nil || got != 3 {
		t.Fatalf("with credentials: %d, %v; want 3", got, err)
	}
}
