package users

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Role is what a user is for. It decides the stored form of the password (see
// HashPassword) and the ACL: only mqtt users have pub/sub lists, admins pass
// every ACL, and charge points speak OCPP, not MQTT.
type Role string

// The roles a users file may name.
const (
	// RoleChargePoint is a charge point logging in to the OCPP server with
	// HTTP Basic auth (security profile 1); its name is its identity.
	RoleChargePoint Role = "chargepoint"
	// RoleMQTT is an MQTT client (a CSMS, a dashboard) limited by its pub and
	// sub lists.
	RoleMQTT Role = "mqtt"
	// RoleAdmin is a person or tool that may publish and subscribe anywhere
	// on MQTT and use the admin API; the caller still keeps everyone,
	// admins included, off the gateway's own topics.
	RoleAdmin Role = "admin"
)

// valid reports whether r is one of the three roles.
func (r Role) valid() bool {
	return r == RoleChargePoint || r == RoleMQTT || r == RoleAdmin
}

// storedKind is the stored form a role's password must have.
func (r Role) storedKind() kind {
	if r == RoleChargePoint {
		return kindSHA256
	}
	return kindBcrypt
}

// User is one account, without its password: nothing outside this package
// ever sees a hash, so none can be logged or served by accident.
type User struct {
	// Name is the login name: the charge point identity for RoleChargePoint,
	// the MQTT username otherwise.
	Name string
	Role Role
	// Pub and Sub are MQTT topic filters (with %u and %c placeholders) the
	// user may publish to and subscribe to; see MayPublish and MaySubscribe.
	Pub, Sub []string
	// MinProfile is the lowest OCPP security profile a chargepoint user
	// may connect with (2: TLS, 3: TLS with a client certificate); 0 for
	// no minimum. A charge point that has moved up a profile must not be
	// admitted below it again, or an attacker could downgrade it
	// [OCPP 2.0.1 A00.FR.002, A00.FR.005].
	MinProfile int
}

// clone copies u's slices, so a User handed out cannot change the DB.
func (u User) clone() User {
	u.Pub = slices.Clone(u.Pub)
	u.Sub = slices.Clone(u.Sub)
	return u
}

// ErrInvalid is wrapped by every *FieldError, so callers can tell a bad users
// file (or a bad user given to AddUser) from an I/O error with errors.Is.
var ErrInvalid = errors.New("users: invalid")

// ErrExists is returned by AddUser and Import for a name that is already in
// the file: replacing an account's password must be asked for (SetUser).
var ErrExists = errors.New("users: user already exists")

// ErrNotFound is returned by RemoveUser for a name that is not in the file.
var ErrNotFound = errors.New("users: no such user")

// FieldError is a problem with one field of the users file, so the message can
// name it as the file spells it: "users[3].role: unknown role ... (line 14)".
type FieldError struct {
	Path string
	Msg  string
}

// Error implements error as "path: message".
func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// cacheSize bounds a DB's cache of successful bcrypt checks: enough for every
// MQTT client and admin session of a large site, small enough (about 200 KB)
// not to matter.
const cacheSize = 4096

// DB is a loaded users file. It is immutable once loaded and safe for
// concurrent use; to reload, Load a new DB and swap it in (the old one's
// cache of successful checks goes with it, so a removed user or a changed
// password takes effect at once).
type DB struct {
	users []entry
	index map[string]int

	// dummies are verified in place of a real credential when a name is
	// unknown (or has another role), so that failure costs the same.
	dummySHA    credential
	dummyBcrypt *credential // nil when the file has no bcrypt users

	cacheKey [32]byte // random per DB: cache keys reveal nothing across DBs
	mu       sync.Mutex
	cache    map[[32]byte]struct{} // guarded by mu
	ring     [][32]byte            // guarded by mu; insertion order, for eviction
	next     int                   // guarded by mu; oldest slot of ring once full
}

// entry is a user and its credential.
type entry struct {
	user   User
	cred   credential
	stored string // the password field as in the file, for SameAs
}

// Load reads and parses the users file at path.
func Load(path string) (*DB, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	db, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("users: %s:\n%w", path, err)
	}
	return db, nil
}

// Parse parses a users file. Every problem is reported at once (joined with
// errors.Join), each as a *FieldError naming the entry: unknown keys,
// missing or duplicate names, unknown roles, a password that is not a stored
// form (so plain text can never be loaded), or one of the wrong form for its
// role, and invalid topic filters. An empty file is a DB with no users.
func Parse(data []byte) (*DB, error) {
	users, errs := parseFile(data)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return newDB(users)
}

// newDB indexes entries and makes the dummy credentials.
func newDB(users []entry) (*DB, error) {
	db := &DB{users: users, index: make(map[string]int, len(users)), cache: map[[32]byte]struct{}{}}
	costs := map[int]int{}
	for i, e := range users {
		db.index[e.user.Name] = i
		if e.cred.kind == kindBcrypt {
			costs[e.cred.cost]++
		}
	}
	var err error
	if db.dummySHA, err = dummyCredential(kindSHA256, 0); err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	if len(costs) > 0 {
		// The most common cost, so an unknown name costs what a wrong
		// password of a typical user costs (ties: the higher cost).
		best, n := 0, 0
		for c, k := range costs {
			if k > n || k == n && c > best {
				best, n = c, k
			}
		}
		d, err := dummyCredential(kindBcrypt, best)
		if err != nil {
			return nil, fmt.Errorf("users: %w", err)
		}
		db.dummyBcrypt = &d
	}
	if _, err := rand.Read(db.cacheKey[:]); err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	return db, nil
}

// Len is the number of users, for logs and metrics after a (re)load.
func (db *DB) Len() int { return len(db.users) }

// Users returns every user in file order (for listings such as the admin
// API). The slice and the users are copies.
func (db *DB) Users() []User {
	out := make([]User, len(db.users))
	for i, e := range db.users {
		out[i] = e.user.clone()
	}
	return out
}

// SameAs reports whether name is the same account in db and old: in both,
// with the same role, pub and sub rules, minimum profile and stored
// password, or in neither.
// A reload uses it to close the sessions of users that were removed or
// changed, since they would not be admitted again as they are. A password
// written anew counts as changed even if it is the same password (its salt
// is new), which errs on the side of closing. A nil old holds no users.
func (db *DB) SameAs(old *DB, name string) bool {
	i, inNew := db.index[name]
	var j int
	inOld := false
	if old != nil {
		j, inOld = old.index[name]
	}
	if !inNew || !inOld {
		return inNew == inOld
	}
	a, b := &db.users[i], &old.users[j]
	return a.user.Role == b.user.Role && slices.Equal(a.user.Pub, b.user.Pub) &&
		slices.Equal(a.user.Sub, b.user.Sub) && a.stored == b.stored && a.user.MinProfile == b.user.MinProfile
}

// Lookup returns the user called name without checking a password: for a
// session that was authenticated earlier, or to tell "unknown" from "wrong
// role" in a log line. Never use it to decide a login; use Check.
func (db *DB) Lookup(name string) (User, bool) {
	i, ok := db.index[name]
	if !ok {
		return User{}, false
	}
	return db.users[i].user.clone(), true
}

// Check reports whether password is name's password, and returns the user.
//
// The comparison is in constant time. A failure for an unknown name costs
// what a wrong password costs: it verifies against a dummy bcrypt hash when
// the file has any bcrypt (mqtt, admin) users, so people's account names
// cannot be probed by timing. A wrong charge point key fails in microseconds,
// so timing does tell charge point identities from unknown names; they are
// not secret (they are in the OCPP URL and on the charger's label). A server
// that accepts only some roles should call CheckRole instead, which also
// keeps unknown names on the OCPP port from costing bcrypt time.
//
// A successful bcrypt check is remembered (keyed by an HMAC of name and
// password under a key of this DB, at most 4,096 of them, oldest dropped
// first), so a reconnecting MQTT client or a polling admin tool pays bcrypt
// once per DB. A failed check is never remembered.
func (db *DB) Check(name, password string) (User, bool) {
	return db.CheckRole(name, password)
}

// CheckRole is Check for a login that only some roles may make (the OCPP
// server passes RoleChargePoint; the MQTT hook passes RoleMQTT and RoleAdmin).
// A user of another role fails exactly as an unknown name does. No roles means
// any role. The dummy verified for an unknown name is of the kind the roles
// store: SHA-256 for charge points alone, bcrypt otherwise (if the file has
// bcrypt users; without any there is no account name to hide).
func (db *DB) CheckRole(name, password string, roles ...Role) (User, bool) {
	i, found := db.index[name]
	if found && (len(roles) == 0 || slices.Contains(roles, db.users[i].user.Role)) {
		e := &db.users[i]
		if e.cred.kind != kindBcrypt {
			if e.cred.verify(password) {
				return e.user.clone(), true
			}
			return User{}, false
		}
		key := db.cacheKeyFor(name, password)
		if db.cached(key) {
			return e.user.clone(), true
		}
		if e.cred.verify(password) {
			db.remember(key)
			return e.user.clone(), true
		}
		return User{}, false
	}
	db.dummyFor(roles).verify(password)
	return User{}, false
}

// dummyFor is the credential to verify when a login for roles (none: any)
// finds no user: bcrypt if any of the roles stores bcrypt and the file has
// bcrypt users, else SHA-256.
func (db *DB) dummyFor(roles []Role) *credential {
	if db.dummyBcrypt != nil && (len(roles) == 0 || slices.ContainsFunc(roles, func(r Role) bool { return r.storedKind() == kindBcrypt })) {
		return db.dummyBcrypt
	}
	return &db.dummySHA
}

// cacheKeyFor is HMAC-SHA256(db.cacheKey, name NUL password); names have no
// control characters, so the encoding is unambiguous.
func (db *DB) cacheKeyFor(name, password string) [32]byte {
	m := hmac.New(sha256.New, db.cacheKey[:])
	io.WriteString(m, name)
	m.Write([]byte{0})
	io.WriteString(m, password)
	var k [32]byte
	m.Sum(k[:0])
	return k
}

// cached reports whether key is in the cache of successful checks.
func (db *DB) cached(key [32]byte) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	_, ok := db.cache[key]
	return ok
}

// remember adds key, dropping the oldest key once cacheSize are held.
func (db *DB) remember(key [32]byte) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if _, ok := db.cache[key]; ok {
		return
	}
	if len(db.ring) < cacheSize {
		db.ring = append(db.ring, key)
	} else {
		delete(db.cache, db.ring[db.next])
		db.ring[db.next] = key
		db.next = (db.next + 1) % cacheSize
	}
	db.cache[key] = struct{}{}
}

// cacheLen is the number of remembered checks (for tests).
func (db *DB) cacheLen() int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return len(db.cache)
}

// checkName reports what is wrong with a user name, or "".
func checkName(name string) string {
	switch {
	case name == "":
		return "empty name"
	case !utf8.ValidString(name):
		return "name is not valid UTF-8"
	case strings.ContainsRune(name, ':'):
		// RFC 7617 §2: the user-id of Basic auth cannot contain a colon.
		return "name contains ':' (HTTP Basic auth cannot carry it)"
	case strings.ContainsFunc(name, unicode.IsControl):
		return "name contains a control character"
	case len(name) > 65535:
		// [MQTT-1.5.3] strings are at most 65,535 bytes.
		return "name longer than 65535 bytes"
	}
	return ""
}

// fileKeys lists the keys a user entry may have, for error messages.
const fileKeys = "name, role, password, pub, sub, min_profile"

// isFileKey reports whether k is one of fileKeys.
func isFileKey(k string) bool {
	switch k {
	case "name", "role", "password", "pub", "sub", "min_profile":
		return true
	}
	return false
}

// parseFile walks the YAML tree by hand (rather than decoding into a struct
// with KnownFields) so that each error names its entry and line.
func parseFile(data []byte) ([]entry, []error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, []error{&FieldError{Path: "(file)", Msg: err.Error()}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, []error{&FieldError{Path: "(file)", Msg: "more than one YAML document"}}
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, []error{&FieldError{Path: "(top level)", Msg: fmt.Sprintf("want a mapping with the key users (line %d)", root.Line)}}
	}
	var errs []error
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch {
		case k.Value != "users":
			errs = append(errs, &FieldError{Path: k.Value, Msg: fmt.Sprintf("unknown key (line %d); known keys here: users", k.Line)})
		case list != nil:
			errs = append(errs, &FieldError{Path: "users", Msg: fmt.Sprintf("given twice (line %d)", k.Line)})
		default:
			list = v
		}
	}
	if list == nil || list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		return nil, errs
	}
	if list.Kind != yaml.SequenceNode {
		return nil, append(errs, &FieldError{Path: "users", Msg: fmt.Sprintf("want a list of users (line %d)", list.Line)})
	}
	var users []entry
	seen := map[string]int{}
	for i, n := range list.Content {
		e, ok, es := parseEntry(fmt.Sprintf("users[%d]", i), n)
		errs = append(errs, es...)
		if !ok {
			continue
		}
		if j, dup := seen[e.user.Name]; dup {
			errs = append(errs, &FieldError{Path: fmt.Sprintf("users[%d].name", i),
				Msg: fmt.Sprintf("%q is also users[%d] (line %d)", e.user.Name, j, n.Line)})
			continue
		}
		seen[e.user.Name] = i
		users = append(users, e)
	}
	return users, errs
}

// parseEntry parses one user mapping; ok is false if it has any error.
func parseEntry(path string, n *yaml.Node) (entry, bool, []error) {
	var errs []error
	bad := func(p string, line int, format string, args ...any) {
		errs = append(errs, &FieldError{Path: p, Msg: fmt.Sprintf(format, args...) + fmt.Sprintf(" (line %d)", line)})
	}
	if n.Kind != yaml.MappingNode {
		bad(path, n.Line, "want a mapping with the keys %s", fileKeys)
		return entry{}, false, errs
	}
	fields := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := path + "." + k.Value
		switch {
		case !isFileKey(k.Value):
			bad(p, k.Line, "unknown key; known keys here: %s", fileKeys)
		case fields[k.Value] != nil:
			bad(p, k.Line, "given twice")
		default:
			fields[k.Value] = v
		}
	}
	scalar := func(key string) (string, int, bool) {
		v := fields[key]
		if v == nil {
			bad(path+"."+key, n.Line, "missing")
			return "", 0, false
		}
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			bad(path+"."+key, v.Line, "want a string")
			return "", 0, false
		}
		return v.Value, v.Line, true
	}
	filters := func(key string) []string {
		v := fields[key]
		if v == nil || v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			return nil
		}
		if v.Kind != yaml.SequenceNode {
			bad(path+"."+key, v.Line, "want a list of topic filters")
			return nil
		}
		out := []string{}
		for i, f := range v.Content {
			if f.Kind != yaml.ScalarNode || f.Tag == "!!null" {
				bad(fmt.Sprintf("%s.%s[%d]", path, key, i), f.Line, "want a topic filter (a string)")
				continue
			}
			out = append(out, f.Value)
		}
		return out
	}

	var e entry
	name, nameLine, okName := scalar("name")
	role, roleLine, okRole := scalar("role")
	password, pwLine, okPW := scalar("password")
	e.user = User{Name: name, Role: Role(role), Pub: filters("pub"), Sub: filters("sub")}
	if v := fields["min_profile"]; v != nil {
		n, err := strconv.Atoi(v.Value)
		switch {
		case v.Kind != yaml.ScalarNode || err != nil || n < 1 || n > 3:
			bad(path+".min_profile", v.Line, "want 1, 2 or 3 (the OCPP security profile)")
		case okRole && Role(role) != RoleChargePoint:
			bad(path+".min_profile", v.Line, "only a chargepoint user has a security profile")
		default:
			e.user.MinProfile = n
		}
	}
	if okName {
		if msg := checkName(name); msg != "" {
			bad(path+".name", nameLine, "%s", msg)
		}
	}
	if okRole && !e.user.Role.valid() {
		bad(path+".role", roleLine, "unknown role %q; want chargepoint, mqtt or admin", role)
		okRole = false
	}
	if okPW {
		c, err := parseCredential(password)
		switch {
		case err != nil:
			bad(path+".password", pwLine, "%v", err)
		case okRole && c.kind != e.user.Role.storedKind():
			bad(path+".password", pwLine, "%s", wrongKind(e.user.Role))
		default:
			e.cred, e.stored = c, password
		}
	}
	for _, fe := range checkACL(e.user) {
		line := n.Line
		if v := fields[fe.key]; v != nil {
			line = v.Line
			if fe.index >= 0 && fe.index < len(v.Content) {
				line = v.Content[fe.index].Line
			}
		}
		p := path + "." + fe.key
		if fe.index >= 0 {
			p = fmt.Sprintf("%s[%d]", p, fe.index)
		}
		bad(p, line, "%s", fe.msg)
	}
	return e, len(errs) == 0, errs
}

// wrongKind explains why a role needs its stored form.
func wrongKind(r Role) string {
	if r == RoleChargePoint {
		return `a charge point key must be stored as "sha256:..." (bcrypt would make a reconnect storm take minutes)`
	}
	return fmt.Sprintf(`a %s user's password must be stored as "bcrypt:..." (people's passwords need a slow hash)`, r)
}

// aclError is a problem with a user's pub or sub list; index is -1 for the
// list as a whole.
type aclError struct {
	key   string
	index int
	msg   string
}

// checkACL reports what is wrong with u's pub and sub lists for its role.
func checkACL(u User) []aclError {
	var errs []aclError
	for _, l := range []struct {
		key     string
		filters []string
	}{{"pub", u.Pub}, {"sub", u.Sub}} {
		if len(l.filters) == 0 {
			continue
		}
		switch u.Role {
		case RoleChargePoint:
			errs = append(errs, aclError{l.key, -1, "charge points have no MQTT access; pub and sub are for mqtt users"})
			continue
		case RoleAdmin:
			errs = append(errs, aclError{l.key, -1, "admins pass every ACL; pub and sub are for mqtt users"})
			continue
		}
		for i, f := range l.filters {
			msg := checkFilter(f)
			if msg == "" && strings.HasPrefix(f, "$share/") {
				msg = "write the filter without $share/<group>/ (a shared subscription is checked as its filter)"
			}
			if msg != "" {
				errs = append(errs, aclError{l.key, i, fmt.Sprintf("topic filter %q: %s", f, msg)})
			}
		}
	}
	return errs
}
