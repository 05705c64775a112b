package access

import "strings"

// Covers reports whether pattern, a topic filter, matches every topic that filter matches, so that
// a read ACL given as patterns can answer both questions mochi asks (a filter on SUBSCRIBE, a
// topic on each delivery) with one rule: allow a filter that some pattern covers. A topic is a
// filter without wildcards, covered when the pattern matches it.
//
// It follows MQTT's matching: '+' is one level, a trailing '#' is any number of levels including
// none ("a/#" covers "a"), and a wildcard in the first level does not match a topic starting with
// '$' [MQTT-4.7.2-1], so "#" does not cover "$SYS/#". It is conservative: it may answer false for
// a filter covered only through an equivalence of wildcards ("+/#" matches all "#" does), never
// true for one that is not covered. Shared subscriptions' "$share/<group>/" prefix must be removed
// first (the Hook does before it asks MaySubscribe).
func Covers(pattern, filter string) bool {
	p, f := strings.Split(pattern, "/"), strings.Split(filter, "/")
	for i, pl := range p {
		if i == 0 && (pl == "+" || pl == "#") && strings.HasPrefix(f[0], "$") {
			return false
		}
		if pl == "#" {
			return i == len(p)-1 // anywhere else it is no valid pattern, which covers nothing
		}
		if i >= len(f) || f[i] == "#" {
			return false
		}
		if pl != "+" && (f[i] == "+" || f[i] != pl) {
			return false
		}
	}
	return len(f) == len(p)
}
