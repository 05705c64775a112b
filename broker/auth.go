package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/chargemq/chargemq/broker/users"
	"github.com/chargemq/chargemq/hooks/access"
	"github.com/chargemq/chargemq/ocpp"
)

// auth is the broker's side of authentication: the users file, loaded
// and swapped in whole on a reload, and the failed-login back-off that
// OCPP and MQTT logins share (keyed by remote address and username, so
// chargers behind one NAT address do not lock each other out).
type auth struct {
	path      string
	mustMatch bool
	db        atomic.Pointer[users.DB]
	backoff   *users.Backoff
	// stamp is the users file's size and modification time at the last
	// load, to notice a change without reading the file.
	stamp atomic.Value // fileStamp
}

type fileStamp struct {
	size int64
	mod  time.Time
}

// usersPollInterval is how often the users file is looked at for changes
// (SIGHUP reloads at once).
const usersPollInterval = 2 * time.Second

func newAuth(path string, mustMatch bool) (*auth, error) {
	a := &auth{path: path, mustMatch: mustMatch, backoff: users.NewBackoff(10000)}
	db, st, err := loadUsers(path)
	if err != nil {
		return nil, err
	}
	a.db.Store(db)
	a.stamp.Store(st)
	return a, nil
}

func loadUsers(path string) (*users.DB, fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth.users_file: %w", err)
	}
	db, err := users.Load(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth.users_file %s: %w", path, err)
	}
	return db, fileStamp{fi.Size(), fi.ModTime()}, nil
}

// loginKey is the back-off key of a login: remote address and username.
func loginKey(ip, username string) string { return ip + "\x00" + username }

// chargePoint decides a charge point's handshake (OCPP security profile
// 1): the credentials of a chargepoint user, whose name is the charge
// point id unless ocpp.username_must_match_cid is off (one user for many
// charge points, as the EMQX seed page sets it up).
func (a *auth) chargePoint(r ocpp.AuthRequest) ocpp.AuthResult {
	now := time.Now()
	key := loginKey(r.RemoteIP, r.Username)
	if ok, retry := a.backoff.Allowed(key, now); !ok {
		return ocpp.AuthResult{RetryAfter: retry, Reason: "backoff"}
	}
	if !r.HasCredentials {
		return ocpp.AuthResult{Reason: "no_credentials"}
	}
	u, ok := a.db.Load().CheckRole(r.Username, r.Password, users.RoleChargePoint)
	switch {
	case !ok:
		a.backoff.Failed(key, now)
		return ocpp.AuthResult{Reason: "bad_credentials"}
	case a.mustMatch && u.Name != r.CID:
		a.backoff.Failed(key, now)
		return ocpp.AuthResult{Reason: "username_mismatch"}
	}
	a.backoff.Succeeded(key)
	if r.Profile < u.MinProfile {
		// The right key on a weaker channel: a downgrade, refused after the
		// key check so that nobody learns a user's minimum without it
		// [OCPP 2.0.1 A00.FR.002].
		return ocpp.AuthResult{Forbidden: true, Reason: "profile_below_minimum"}
	}
	return ocpp.AuthResult{OK: true}
}

// mqttClient decides an MQTT CONNECT: an mqtt or admin user. The
// identity the hook keeps is the user record, for the ACL.
func (a *auth) mqttClient(cl *mqtt.Client, username, password []byte) access.AuthResult {
	now := time.Now()
	ip := cl.Net.Remote
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	// A client certificate the TLS stack verified logs in as the mqtt or
	// admin user its CN names, when the client sends no password (and no
	// username, or that one): the users file gives it its ACL.
	if cn, ok := verifiedCN(cl.Net.Conn); ok && len(password) == 0 && (len(username) == 0 || string(username) == cn) {
		if u, ok := a.db.Load().Lookup(cn); ok && (u.Role == users.RoleMQTT || u.Role == users.RoleAdmin) {
			return access.AuthResult{OK: true, Identity: &u}
		}
		return access.AuthResult{Reason: "certificate_unknown_user"}
	}
	key := loginKey(ip, string(username))
	if ok, retry := a.backoff.Allowed(key, now); !ok {
		return access.AuthResult{RetryAfter: retry, Reason: "backoff"}
	}
	if len(username) == 0 && len(password) == 0 {
		// A client that sends no credentials is misconfigured, not
		// guessing: refused, but it starts no back-off (as on OCPP).
		return access.AuthResult{Reason: "no_credentials"}
	}
	u, ok := a.db.Load().CheckRole(string(username), string(password), users.RoleMQTT, users.RoleAdmin)
	if !ok {
		a.backoff.Failed(key, now)
		return access.AuthResult{Reason: "bad_credentials"}
	}
	a.backoff.Succeeded(key)
	return access.AuthResult{OK: true, Identity: &u}
}

// mayPublish is the user's write ACL (the hook keeps the gateway's own
// topics closed to everyone on top of it).
func mayPublish(identity any, clientID, topic string) bool {
	u, ok := identity.(*users.User)
	return ok && (u.Role == users.RoleAdmin || u.MayPublish(clientID, topic))
}

// maySubscribe is the user's read ACL, for filters and delivered topics.
func maySubscribe(identity any, clientID, filter string) bool {
	u, ok := identity.(*users.User)
	return ok && (u.Role == users.RoleAdmin || u.MaySubscribe(clientID, filter))
}

// ReloadUsers reads the users file again and swaps it in. A connected
// charge point or MQTT client whose user is gone, or whose password, role
// or ACL changed, is closed (charge points with presence reason
// auth_revoked): it would not be admitted again as it is. A file that
// does not load leaves the current users in place. It does nothing when
// no users file is configured.
func (b *Broker) ReloadUsers() error {
	a := b.auth
	if a == nil {
		return nil
	}
	db, st, err := loadUsers(a.path)
	if err != nil {
		b.log.Error("users file not reloaded; the current users stay", "error", err)
		return err
	}
	old := a.db.Swap(db) // first: a login from now on sees the new users
	a.stamp.Store(st)
	changed := func(name string) bool { return !db.SameAs(old, name) }
	cps := b.ocpp.RevokeWhere(func(s ocpp.SessionInfo) bool { return s.Username != "" && changed(s.Username) })
	clients := b.acl.Disconnect(func(identity any, _ string) bool {
		u, ok := identity.(*users.User)
		return ok && changed(u.Name)
	})
	b.log.Info("users file reloaded", "users", db.Len(), "charge_points_closed", cps, "mqtt_clients_closed", clients)
	return nil
}

// watchUsers reloads the users file when it changes, until ctx ends.
func (b *Broker) watchUsers(ctx context.Context) {
	t := time.NewTicker(usersPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(b.auth.path)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) || b.auth.stamp.Load().(fileStamp) != (fileStamp{}) {
				b.log.Warn("users file unreadable; the current users stay", "error", err)
				b.auth.stamp.Store(fileStamp{})
			}
			continue
		}
		if (fileStamp{fi.Size(), fi.ModTime()}) != b.auth.stamp.Load().(fileStamp) {
			_ = b.ReloadUsers()
		}
	}
}

// warnNoUsers is logged at start when no users file is configured.
func warnNoUsers() string {
	return strings.Join([]string{
		"no users file (auth.users_file): every charge point and MQTT client is admitted;",
		"anyone who can reach the listeners can connect as any charge point and command every one",
		"(see docs/security.md)",
	}, " ")
}
