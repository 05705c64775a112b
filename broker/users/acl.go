package users

import (
	"strings"
	"unicode/utf8"
)

// MayPublish reports whether u may publish on topic, using client id clientID
// for the %c placeholder.
//
// u.Pub holds MQTT topic filters, and topic is allowed if one of them matches
// it. As in Mosquitto, "%u" in a filter stands for u.Name and "%c" for
// clientID; a rule whose placeholder value is empty or contains '+', '#' or
// '/' does not match at all, so a client cannot widen its rights by choosing
// a client id like "#". A filter starting with a wildcard does not match a
// topic starting with '$' [MQTT-4.7.2-1]. Admins may publish on any valid
// topic; charge points on none. The caller adds the rule that nobody may
// publish on the gateway's own topics. An invalid topic (empty, or containing
// a wildcard or NUL) is never allowed.
func (u User) MayPublish(clientID, topic string) bool {
	if checkTopic(topic) != "" {
		return false
	}
	switch u.Role {
	case RoleAdmin:
		return true
	case RoleMQTT:
		return u.anyCovers(u.Pub, clientID, topic)
	}
	return false
}

// MaySubscribe reports whether u may subscribe to filter, using clientID for
// the %c placeholder (see MayPublish for placeholders and the '$' rule).
//
// A filter is allowed only if every topic it can match is matched by one
// filter of u.Sub: "a/#" covers "a/b/+" and "a" (a "#" matches its parent
// level), "a/+" covers "a/b" but not "a/#". A shared subscription
// "$share/group/filter" [MQTT-4.8.2] is checked as its filter. A topic name is
// a filter without wildcards, so this also answers whether a message on a
// topic may be delivered to u. Admins may subscribe to any valid filter;
// charge points to none.
func (u User) MaySubscribe(clientID, filter string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		group, f, ok := strings.Cut(rest, "/")
		// [MQTT-4.8.2-2] the share name is at least one character and has
		// no '/', '+' or '#'.
		if !ok || group == "" || strings.ContainsAny(group, "+#") {
			return false
		}
		filter = f
	}
	if checkFilter(filter) != "" {
		return false
	}
	switch u.Role {
	case RoleAdmin:
		return true
	case RoleMQTT:
		return u.anyCovers(u.Sub, clientID, filter)
	}
	return false
}

// anyCovers reports whether one rule of rules, with u's placeholders filled
// in, covers the valid filter (or topic) f. The rules are not validated here
// (Parse did, and this runs on every delivery): covers itself makes sure an
// invalid rule can only match less, never more.
func (u User) anyCovers(rules []string, clientID, f string) bool {
	for _, rule := range rules {
		if placeholdersOK(rule, u.Name, clientID) && covers(rule, f, u.Name, clientID) {
			return true
		}
	}
	return false
}

// placeholdersOK reports whether the values rule's placeholders stand for are
// safe to put in a topic filter: not empty, and with no '+', '#' or '/' that
// would widen (or shift) the match.
func placeholdersOK(rule, name, clientID string) bool {
	bad := func(v string) bool { return v == "" || strings.ContainsAny(v, "+#/") }
	if strings.Contains(rule, "%u") && bad(name) {
		return false
	}
	if strings.Contains(rule, "%c") && bad(clientID) {
		return false
	}
	return true
}

// covers reports whether every topic matched by the valid filter r is matched
// by the rule f, in which %u and %c stand for name and clientID. When r is a
// topic name this is plain topic matching. It allocates nothing: it is called
// for every publish and every delivery. An invalid rule matches less than it
// seems to: a '#' that is not the last level matches nothing, and a level
// with a wildcard among other characters only itself, literally (which no
// valid topic level or filter level equals).
func covers(f, r, name, clientID string) bool {
	// [MQTT-4.7.2-1] a filter starting with a wildcard matches no topic
	// starting with '$'. A filter r starting with a wildcard matches no such
	// topic either, so only a literal '$' level needs the check.
	f0, _, _ := strings.Cut(f, "/")
	r0, _, _ := strings.Cut(r, "/")
	if strings.HasPrefix(r0, "$") && (f0 == "+" || f0 == "#") {
		return false
	}
	for first := true; ; first = false {
		fl, frest, fmore := strings.Cut(f, "/")
		if fl == "#" {
			return !fmore // [MQTT-4.7.1-2] the rest, however long, or nothing
		}
		rl, rrest, rmore := strings.Cut(r, "/")
		switch {
		case rl == "#":
			// r matches this level's parent too ("a/#" matches "a"), which
			// only a '#' here matches, except at the first level, which has
			// no parent: there "+/#" matches every topic, as "#" does.
			return first && fl == "+" && fmore && frest == "#"
		case rl == "+":
			if fl != "+" {
				return false
			}
		case fl != "+" && !levelEqual(fl, rl, name, clientID):
			return false
		}
		switch {
		case !fmore && !rmore:
			return true
		case !rmore:
			return frest == "#" // "a/#" matches "a" [MQTT-4.7.1-2]
		case !fmore:
			return false
		}
		f, r = frest, rrest
	}
}

// levelEqual reports whether the literal topic level v equals the rule level
// p with "%u" replaced by name and "%c" by clientID; any other '%' is literal.
func levelEqual(p, v, name, clientID string) bool {
	for {
		i := strings.IndexByte(p, '%')
		if i < 0 || i+1 == len(p) {
			return p == v
		}
		if !strings.HasPrefix(v, p[:i]) {
			return false
		}
		v = v[i:]
		var sub string
		switch p[i+1] {
		case 'u':
			sub = name
		case 'c':
			sub = clientID
		default:
			sub, p = "%", p[i+1:]
			if !strings.HasPrefix(v, sub) {
				return false
			}
			v = v[1:]
			continue
		}
		if !strings.HasPrefix(v, sub) {
			return false
		}
		v, p = v[len(sub):], p[i+2:]
	}
}

// checkTopic says what makes t an invalid topic name to publish on, or "".
func checkTopic(t string) string {
	switch {
	case t == "":
		return "empty" // [MQTT-4.7.3-1]
	case len(t) > 65535:
		return "longer than 65535 bytes"
	case !utf8.ValidString(t):
		return "not valid UTF-8" // [MQTT-1.5.3-1]
	case strings.ContainsRune(t, 0):
		return "contains NUL" // [MQTT-1.5.3-2]
	case strings.ContainsAny(t, "+#"):
		return "a topic name cannot contain wildcards" // [MQTT-3.3.2-2]
	}
	return ""
}

// checkFilter says what makes f an invalid topic filter, or "".
func checkFilter(f string) string {
	switch {
	case f == "":
		return "empty" // [MQTT-4.7.3-1]
	case len(f) > 65535:
		return "longer than 65535 bytes"
	case !utf8.ValidString(f):
		return "not valid UTF-8"
	case strings.ContainsRune(f, 0):
		return "contains NUL"
	}
	for rest, more := f, true; more; {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		switch {
		case level == "#" && more:
			return "'#' must be the last level" // [MQTT-4.7.1-2]
		case level != "#" && strings.ContainsRune(level, '#'):
			return "'#' must be a whole level" // [MQTT-4.7.1-2]
		case level != "+" && strings.ContainsRune(level, '+'):
			return "'+' must be a whole level" // [MQTT-4.7.1-3]
		}
	}
	return ""
}
