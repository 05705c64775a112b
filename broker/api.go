package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/chargemq/chargemq/broker/users"
	"github.com/chargemq/chargemq/ocpp"
)

// The admin API (docs/operations.md): each endpoint is a method of Broker,
// usable by a product that embeds it, with a thin HTTP handler on top.

// ClientList is one page of the connected charge points.
type ClientList struct {
	Total   int               `json:"total"`
	Offset  int               `json:"offset"`
	Limit   int               `json:"limit"`
	Clients []ocpp.ClientInfo `json:"clients"`
}

// DefaultClientsLimit and MaxClientsLimit bound a page of Clients.
const (
	DefaultClientsLimit = 100
	MaxClientsLimit     = 10000
)

// Clients lists the connected charge points whose id contains q, sorted
// by id, a page of at most limit (DefaultClientsLimit when ≤ 0, at most
// MaxClientsLimit) from offset.
func (b *Broker) Clients(q string, offset, limit int) ClientList {
	if limit <= 0 {
		limit = DefaultClientsLimit
	}
	limit = min(limit, MaxClientsLimit)
	page, total := b.ocpp.Clients(q, offset, limit)
	return ClientList{Total: total, Offset: max(offset, 0), Limit: limit, Clients: page}
}

// Client describes one connected charge point with its last frames.
func (b *Broker) Client(cid string) (ocpp.ClientDetail, bool) { return b.ocpp.Client(cid) }

// Frames returns a charge point's last frames, oldest first (also after
// it disconnected, until they age out of ocpp.frame_history_bytes).
func (b *Broker) Frames(cid string) []ocpp.FrameRecord { return b.ocpp.Frames(cid) }

// KickResult is what Kick did.
type KickResult struct {
	Kicked string `json:"kicked"`
	// BlockedUntil is when reconnects are admitted again; absent without
	// a block.
	BlockedUntil *time.Time `json:"blocked_until,omitempty"`
}

// Kick closes charge point cid (1000 "kicked", presence reason kicked)
// and, with block > 0, refuses its reconnects with 403 for that long. It
// reports false when the charge point is not connected.
func (b *Broker) Kick(cid string, block time.Duration) (KickResult, bool) {
	until := time.Now().Add(block)
	if !b.ocpp.Kick(cid, block) {
		return KickResult{}, false
	}
	res := KickResult{Kicked: cid}
	if block > 0 {
		res.BlockedUntil = &until
	}
	b.log.Info("charge point kicked", "cid", cid, "block", block)
	return res, true
}

// MQTTClient describes one real MQTT client (charge points' virtual
// clients are not listed).
type MQTTClient struct {
	ID              string   `json:"id"`
	Username        string   `json:"username,omitempty"`
	Remote          string   `json:"remote"`
	Listener        string   `json:"listener"`
	ProtocolVersion byte     `json:"protocol_version"`
	Subscriptions   []string `json:"subscriptions"`
	Inflight        int      `json:"inflight"`
	// Connected is false for a session kept after its client went away
	// (MQTT 5 session expiry, or clean session false).
	Connected bool `json:"connected"`
}

// MQTTClientList is every MQTT client, sorted by id.
type MQTTClientList struct {
	Total   int          `json:"total"`
	Clients []MQTTClient `json:"clients"`
}

// MQTTClients lists the MQTT clients mochi knows, connected or with a
// session kept.
func (b *Broker) MQTTClients() MQTTClientList {
	all := b.mqtt.Clients.GetAll()
	out := make([]MQTTClient, 0, len(all))
	for _, cl := range all {
		if cl.Net.Inline {
			continue
		}
		subs := cl.State.Subscriptions.GetAll()
		filters := make([]string, 0, len(subs))
		for f := range subs {
			filters = append(filters, f)
		}
		sort.Strings(filters)
		out = append(out, MQTTClient{
			ID: cl.ID, Username: string(cl.Properties.Username), Remote: cl.Net.Remote, Listener: cl.Net.Listener,
			ProtocolVersion: cl.Properties.ProtocolVersion, Subscriptions: filters,
			Inflight: cl.State.Inflight.Len(), Connected: !cl.Closed(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return MQTTClientList{Total: len(out), Clients: out}
}

// mqttClientsConnected counts the real MQTT clients connected now.
func (b *Broker) mqttClientsConnected() int {
	n := 0
	for _, cl := range b.mqtt.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			n++
		}
	}
	return n
}

// KickMQTT disconnects MQTT client id (MQTT 5: DISCONNECT 0x98,
// administrative action) and reports false when it is not connected.
func (b *Broker) KickMQTT(id string) bool {
	cl, ok := b.mqtt.Clients.Get(id)
	if !ok || cl.Net.Inline || cl.Closed() {
		return false
	}
	_ = b.mqtt.DisconnectClient(cl, packets.ErrAdministrativeAction)
	b.log.Info("mqtt client kicked", "client", id)
	return true
}

// apiHandler serves /api/v1 behind the access rule.
func (b *Broker) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, b.Stats()) })
	mux.HandleFunc("GET /api/v1/clients", b.handleClients)
	mux.HandleFunc("GET /api/v1/clients/{cid}", b.handleClient)
	mux.HandleFunc("DELETE /api/v1/clients/{cid}", b.handleKick)
	mux.HandleFunc("GET /api/v1/clients/{cid}/frames", func(w http.ResponseWriter, r *http.Request) {
		cid := r.PathValue("cid")
		writeJSON(w, http.StatusOK, struct {
			CID    string             `json:"cid"`
			Frames []ocpp.FrameRecord `json:"frames"`
		}{cid, b.Frames(cid)})
	})
	mux.HandleFunc("GET /api/v1/mqtt/clients", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, b.MQTTClients()) })
	mux.HandleFunc("DELETE /api/v1/mqtt/clients/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !b.KickMQTT(id) {
			writeError(w, http.StatusNotFound, "mqtt client %s is not connected", id)
			return
		}
		writeJSON(w, http.StatusOK, struct {
			Kicked string `json:"kicked"`
		}{id})
	})
	mux.HandleFunc("GET /api/v1/events", b.handleEvents)
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	})
	return b.adminOnly(mux)
}

func (b *Broker) handleClients(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	offset, err1 := intParam("offset", q.Get("offset"))
	limit, err2 := intParam("limit", q.Get("limit"))
	if err := errors.Join(err1, err2); err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, b.Clients(q.Get("q"), offset, limit))
}

func (b *Broker) handleClient(w http.ResponseWriter, r *http.Request) {
	cid := r.PathValue("cid")
	d, ok := b.Client(cid)
	if !ok {
		writeError(w, http.StatusNotFound, "charge point %s is not connected", cid)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// maxKickBlock bounds ?block=: a longer ban is the users file's job.
const maxKickBlock = 24 * time.Hour

func (b *Broker) handleKick(w http.ResponseWriter, r *http.Request) {
	cid := r.PathValue("cid")
	var block time.Duration
	if v := r.URL.Query().Get("block"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxKickBlock {
			writeError(w, http.StatusBadRequest, "block must be a duration from 0s to %s, such as 60s (got %q)", maxKickBlock, v)
			return
		}
		block = d
	}
	res, ok := b.Kick(cid, block)
	if !ok {
		writeError(w, http.StatusNotFound, "charge point %s is not connected", cid)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// intParam parses an optional non-negative integer query parameter.
func intParam(name, v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: want a non-negative integer, got %q", name, v)
	}
	return n, nil
}

// apiError is the body of every API error.
type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, apiError{Error: fmt.Sprintf(format, args...)})
}

// adminOnly is the access rule of the admin API and the page
// (docs/security.md): with a users file an admin user's Basic
// credentials (a successful check is cached by the users database, so a
// page polling does not pay bcrypt each time; failures feed the same
// back-off as logins); without one only loopback clients, unless
// http.allow_remote.
func (b *Broker) adminOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b.auth == nil {
			if !b.opts.HTTPAllowRemote && !isLoopback(r.RemoteAddr) {
				b.counts.refused(refusedAdminRemote)
				writeError(w, http.StatusForbidden, "without a users file (auth.users_file) the admin API answers only "+
					"loopback clients; add an admin user, or set http.allow_remote: true on a trusted network")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		user, password, ok := r.BasicAuth()
		now := time.Now()
		key := loginKey(remoteHost(r.RemoteAddr), user)
		if allowed, retry := b.auth.backoff.Allowed(key, now); !allowed {
			w.Header().Set("Retry-After", strconv.FormatInt(int64((retry+time.Second-1)/time.Second), 10))
			b.counts.refused(refusedAdminBackoff)
			writeError(w, http.StatusTooManyRequests, "too many failed logins; retry later")
			return
		}
		if ok {
			if _, good := b.auth.db.Load().CheckRole(user, password, users.RoleAdmin); good {
				b.auth.backoff.Succeeded(key)
				next.ServeHTTP(w, r)
				return
			}
			b.auth.backoff.Failed(key, now)
		}
		b.counts.refused(refusedAdminUnauthorized)
		w.Header().Set("WWW-Authenticate", `Basic realm="chargemq", charset="UTF-8"`)
		writeError(w, http.StatusUnauthorized, "admin credentials required")
	})
}

// isLoopback reports whether a remote address is on the loopback network.
func isLoopback(remote string) bool {
	ip := net.ParseIP(remoteHost(remote))
	return ip != nil && ip.IsLoopback()
}

// remoteHost is the host part of a remote address.
func remoteHost(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return strings.Trim(remote, "[]")
}
