package users

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// newFileComment heads a users file that AddUser, SetUser or Import creates.
const newFileComment = "chargemq users file (docs/security.md). Edit it with `chargemq users`:\n" +
	"passwords are stored as hashes, never as plain text."

// AddUser adds u, with password stored in the form its role needs (see
// HashPassword; cost is the bcrypt cost, 0 for DefaultCost), to the users file
// at path, creating the file if it does not exist. A name already in the file
// is an error wrapping ErrExists: changing a key or password is SetUser, so a
// typo in a name cannot silently take over an account. The warning, if not
// empty, is advice for the person adding the user (a charge point key under
// MinKeyLength characters, an mqtt user with no rules, …); the user is added
// all the same.
//
// The file is rewritten atomically (a temporary file in the same directory,
// fsync, rename) with mode 0600, keeping its comments; it is left alone if it
// does not parse, and the new content is checked to load before it is
// written. Two edits at the same moment are not serialised: the last rename
// wins.
func AddUser(path string, u User, password string, cost int) (warning string, err error) {
	return putUser(path, u, password, cost, false)
}

// SetUser is AddUser that replaces a user of the same name (keeping the
// entry's place and comments in the file), for key rotation and role or ACL
// changes. A new name is added.
func SetUser(path string, u User, password string, cost int) (warning string, err error) {
	return putUser(path, u, password, cost, true)
}

// putUser is AddUser and SetUser.
func putUser(path string, u User, password string, cost int, replace bool) (string, error) {
	warnings, err := checkNewUser("", u, password)
	if err != nil {
		return "", fmt.Errorf("users: %q: %w", u.Name, err)
	}
	stored, err := HashPassword(u.Role, password, cost)
	if err != nil {
		return "", err
	}
	err = editFile(path, func(seq *yaml.Node) error {
		i := findUser(seq, u.Name)
		switch {
		case i < 0:
			seq.Content = append(seq.Content, userNode(u, stored))
		case !replace:
			return fmt.Errorf("%w: %q", ErrExists, u.Name)
		default:
			n := userNode(u, stored)
			keepComments(seq.Content[i], n)
			seq.Content[i] = n
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return strings.Join(warnings, "; "), nil
}

// RemoveUser removes the user called name from the users file at path, or
// returns an error wrapping ErrNotFound. The file is rewritten as by AddUser.
func RemoveUser(path, name string) error {
	return editFile(path, func(seq *yaml.Node) error {
		i := findUser(seq, name)
		if i < 0 {
			return fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		seq.Content = append(seq.Content[:i], seq.Content[i+1:]...)
		return nil
	})
}

// List returns the users in the file at path, in file order, without their
// passwords. A missing file is an error, as is an invalid one.
func List(path string) ([]User, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	entries, errs := parseFile(data)
	if len(errs) > 0 {
		return nil, fmt.Errorf("users: %s:\n%w", path, errors.Join(errs...))
	}
	out := make([]User, len(entries))
	for i, e := range entries {
		out[i] = e.user
	}
	return out, nil
}

// Import adds the users of a CSV file (lines "name,password,role"; the role may
// be left out for a charge point; a first line "name,password[,role]" is a
// header; lines starting with '#' are comments; a UTF-8 byte order mark, as
// spreadsheets write, is skipped) to the users file at path, creating it if
// missing. It is all or nothing: any bad line, a name already in the file
// (ErrExists) or repeated in the CSV fails the import, naming every such
// line, and leaves the file alone. The warnings are AddUser's, one per
// remark, prefixed by the CSV line. mqtt users are imported without rules:
// add their pub and sub lists to the file afterwards.
func Import(path string, in io.Reader, cost int) (added int, warnings []string, err error) {
	type row struct {
		line     int
		user     User
		password string
	}
	br := bufio.NewReader(in)
	if bom, err := br.Peek(3); err == nil && bytes.Equal(bom, []byte("\uFEFF")) {
		br.Discard(3)
	}
	r := csv.NewReader(br)
	r.FieldsPerRecord = -1
	r.Comment = '#'
	var rows []row
	var errs []error
	seen := map[string]int{}
	for first := true; ; first = false {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, nil, fmt.Errorf("users: CSV: %w", err)
		}
		line, _ := r.FieldPos(0)
		at := fmt.Sprintf("line %d", line)
		if first && len(rec) >= 2 && strings.EqualFold(strings.TrimSpace(rec[0]), "name") &&
			strings.EqualFold(strings.TrimSpace(rec[1]), "password") {
			continue
		}
		if len(rec) < 2 || len(rec) > 3 {
			errs = append(errs, &FieldError{Path: at, Msg: fmt.Sprintf("want name,password[,role], got %d fields", len(rec))})
			continue
		}
		u := User{Name: rec[0], Role: RoleChargePoint}
		if len(rec) == 3 && strings.TrimSpace(rec[2]) != "" {
			u.Role = Role(strings.ToLower(strings.TrimSpace(rec[2])))
		}
		ws, err := checkNewUser(at+": ", u, rec[1])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if j, dup := seen[u.Name]; dup {
			errs = append(errs, &FieldError{Path: at, Msg: fmt.Sprintf("%q is also on line %d", u.Name, j)})
			continue
		}
		seen[u.Name] = line
		for _, w := range ws {
			warnings = append(warnings, fmt.Sprintf("%s: %s: %s", at, u.Name, w))
		}
		rows = append(rows, row{line, u, rec[1]})
	}
	if len(errs) > 0 {
		return 0, nil, fmt.Errorf("users: CSV:\n%w", errors.Join(errs...))
	}
	nodes := make([]*yaml.Node, 0, len(rows))
	err = editFile(path, func(seq *yaml.Node) error {
		var errs []error
		for _, rw := range rows {
			if findUser(seq, rw.user.Name) >= 0 {
				errs = append(errs, fmt.Errorf("line %d: %w: %q (users add --replace changes a key)", rw.line, ErrExists, rw.user.Name))
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("users: CSV:\n%w", errors.Join(errs...))
		}
		// Hash only once the import is known to go through: mqtt rows cost
		// a bcrypt each.
		for _, rw := range rows {
			stored, err := HashPassword(rw.user.Role, rw.password, cost)
			if err != nil {
				return fmt.Errorf("line %d: %w", rw.line, err)
			}
			nodes = append(nodes, userNode(rw.user, stored))
		}
		seq.Content = append(seq.Content, nodes...)
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return len(rows), warnings, nil
}

// checkNewUser validates a user about to be written and returns the advice
// for the person adding it. FieldError paths start with prefix.
func checkNewUser(prefix string, u User, password string) (warnings []string, err error) {
	var errs []error
	bad := func(path, msg string) { errs = append(errs, &FieldError{Path: prefix + path, Msg: msg}) }
	if msg := checkName(u.Name); msg != "" {
		bad("name", msg)
	}
	if !u.Role.valid() {
		bad("role", fmt.Sprintf("unknown role %q; want chargepoint, mqtt or admin", u.Role))
	}
	for _, fe := range checkACL(u) {
		p := fe.key
		if fe.index >= 0 {
			p = fmt.Sprintf("%s[%d]", p, fe.index)
		}
		bad(p, fe.msg)
	}
	switch {
	case u.MinProfile < 0 || u.MinProfile > 3:
		bad("min_profile", "want 1, 2 or 3 (the OCPP security profile)")
	case u.MinProfile > 0 && u.Role != RoleChargePoint:
		bad("min_profile", "only a chargepoint user has a security profile")
	}
	switch {
	case password == "":
		bad("password", "empty")
	case u.Role != RoleChargePoint && len(password) > maxBcryptPassword:
		bad("password", "longer than 72 bytes (bcrypt reads no more)")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	if u.Role == RoleChargePoint && len(password) < MinKeyLength {
		warnings = append(warnings, fmt.Sprintf("charge point key shorter than %d characters (OCPP A00.FR.205 wants 16 or more)", MinKeyLength))
	}
	if u.Role == RoleMQTT && len(u.Pub) == 0 && len(u.Sub) == 0 {
		warnings = append(warnings, "mqtt user without pub or sub rules: it may connect but neither publish nor subscribe")
	}
	if strings.ContainsAny(u.Name, "+#/") {
		for _, f := range append(append([]string{}, u.Pub...), u.Sub...) {
			if strings.Contains(f, "%u") {
				warnings = append(warnings, "name contains '+', '#' or '/', so rules with %u never match for it")
				break
			}
		}
	}
	if strings.TrimFunc(u.Name, unicode.IsSpace) != u.Name {
		warnings = append(warnings, "name starts or ends with a space (kept as given)")
	}
	if strings.TrimFunc(password, unicode.IsSpace) != password {
		warnings = append(warnings, "password starts or ends with a space (kept as given)")
	}
	return warnings, nil
}

// editFile applies edit to the users list of the file at path (an empty list
// for a missing file) and writes the result atomically. The file must parse
// before, and the result must parse after, or nothing is written. A symbolic
// link is followed, so the file it points to is the one replaced.
func editFile(path string, edit func(seq *yaml.Node) error) error {
	target, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		target = path
	} else if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	data, err := os.ReadFile(target)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("users: %w", err)
	}
	if _, errs := parseFile(data); len(errs) > 0 {
		return fmt.Errorf("users: %s: fix the file first:\n%w", path, errors.Join(errs...))
	}

	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("users: %s: %w", path, err) // parseFile accepted it: unreachable
	}
	if doc.Kind == 0 { // empty or missing file
		doc = yaml.Node{Kind: yaml.DocumentNode, HeadComment: newFileComment}
	}
	if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
		doc.Content = []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}
	}
	root := doc.Content[0]
	var seq *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "users" {
			seq = root.Content[i+1]
		}
	}
	if seq == nil {
		seq = &yaml.Node{}
		root.Content = append(root.Content, strNode("users"), seq)
	}
	if seq.Kind != yaml.SequenceNode { // "users:" with nothing after it
		*seq = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: seq.Line}
	}
	if err := edit(seq); err != nil {
		return err
	}

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("users: encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("users: encode: %w", err)
	}
	if _, errs := parseFile(buf.Bytes()); len(errs) > 0 {
		return fmt.Errorf("users: the edited file would not load (a bug; nothing written):\n%w", errors.Join(errs...))
	}
	if err := writeAtomic(target, buf.Bytes()); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	return nil
}

// findUser is the index in seq of the entry called name, or -1.
func findUser(seq *yaml.Node, name string) int {
	for i, n := range seq.Content {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == "name" && n.Content[j+1].Value == name {
				return i
			}
		}
	}
	return -1
}

// keepComments copies the comments of the entry old, and of its keys and
// values, to the entry n that replaces it.
func keepComments(old, n *yaml.Node) {
	copyComments := func(from, to *yaml.Node) {
		to.HeadComment, to.LineComment, to.FootComment = from.HeadComment, from.LineComment, from.FootComment
	}
	copyComments(old, n)
	for i := 0; i+1 < len(old.Content); i += 2 {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if old.Content[i].Value == n.Content[j].Value {
				copyComments(old.Content[i], n.Content[j])
				copyComments(old.Content[i+1], n.Content[j+1])
			}
		}
	}
}

// userNode is the YAML entry for u with the stored password.
func userNode(u User, stored string) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	add := func(k string, v *yaml.Node) { m.Content = append(m.Content, strNode(k), v) }
	add("name", strNode(u.Name))
	add("role", strNode(string(u.Role)))
	pw := strNode(stored)
	pw.Style = yaml.DoubleQuotedStyle
	add("password", pw)
	for _, l := range []struct {
		key     string
		filters []string
	}{{"pub", u.Pub}, {"sub", u.Sub}} {
		if len(l.filters) == 0 {
			continue
		}
		s := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for _, f := range l.filters {
			n := strNode(f)
			n.Style = yaml.DoubleQuotedStyle
			s.Content = append(s.Content, n)
		}
		add(l.key, s)
	}
	if u.MinProfile > 0 {
		add("min_profile", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(u.MinProfile)})
	}
	return m
}

// strNode is a string scalar; the encoder quotes it if it would read back as
// another type ("1234", "yes", "~").
func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// writeAtomic replaces path with data: a reader sees the old file or the new
// one, never a part, and after a crash the file is one or the other. The
// file gets mode 0600, since it holds password hashes.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename itself durable. Some file systems cannot sync a
	// directory; the file is in place either way, so that error is ignored.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
