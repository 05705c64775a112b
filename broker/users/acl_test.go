package users

import (
	"strings"
	"testing"
)

// TestCovers is the filter-covers-filter table: rule f covers r when every
// topic r matches is matched by f. Topic names are filters without wildcards,
// so the same function answers publish checks.
func TestCovers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		f, r string
		want bool
	}{
		// Topics against filters.
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a", false},
		{"a", "a/b", false},
		{"a/b", "a/b/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/", true}, // '+' matches an empty level
		{"a/+", "a", false},
		{"a/+", "a/b/c", false},
		{"+", "a", true},
		{"+/+", "/a", true},
		{"/+", "/a", true},
		{"+", "/a", false},
		{"#", "a", true},
		{"#", "a/b/c", true},
		{"#", "/", true},
		{"a/#", "a", true}, // [MQTT-4.7.1-2] '#' matches the parent
		{"a/#", "a/", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"a/#", "b/a", false},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"a/+/#", "a/b", true},
		{"a/+/#", "a", false},
		{"A/b", "a/b", false}, // case matters
		{"a b/c", "a b/c", true},
		{"ä/ö", "ä/ö", true},
		// $ topics [MQTT-4.7.2-1].
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"+/#", "$SYS", false},
		{"$SYS/#", "$SYS/broker/load", true},
		{"$SYS/+", "$SYS/x", true},
		{"$SYS", "$SYS", true},
		{"a/#", "a/$b", true}, // only the first level is special
		{"$share/#", "$share/x", true},

		// Filters against filters.
		{"a/#", "a/b/+", true},
		{"a/#", "a/#", true},
		{"a/#", "a/+", true},
		{"a/#", "a/+/#", true},
		{"a/+", "a/#", false},
		{"a/+", "a/+", true},
		{"a/+", "a/+/b", false},
		{"a/b", "a/+", false},
		{"a/+/c", "a/+/c", true},
		{"a/+/c", "a/+/+", false},
		{"a/+/+", "a/+/c", true},
		{"+/+", "+/b", true},
		{"+/b", "+/+", false},
		{"#", "#", true},
		{"#", "+", true},
		{"#", "+/#", true},
		{"#", "a/#", true},
		{"+", "#", false},
		{"+", "+", true},
		{"+/#", "#", true},      // both match every non-$ topic
		{"+/#", "+/#", true},    //
		{"+/+/#", "#", false},   // "a" has one level
		{"a/+/#", "a/#", false}, // "a/#" matches "a"
		{"a/b/#", "a/b", true},
		{"a/b/#", "a/b/#", true},
		{"a/b/#", "a/+", false},
		{"a/b/#", "a/#", false},
		{"a/#", "#", false},
		{"+/#", "$SYS/#", false},
		{"#", "$SYS/#", false},
		{"$SYS/#", "$SYS/#", true},
		{"$SYS/#", "+/#", false}, // "+/#" matches no $ topic, but also a/b
		{"#", "+/$x", true},      // only the first level is special
		{"/#", "/+", true},
		{"/#", "+", false},
	}
	for _, tt := range tests {
		if got := covers(tt.f, tt.r, "u", "c"); got != tt.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tt.f, tt.r, got, tt.want)
		}
	}
}

func TestLevelEqual(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p, v string
		want bool
	}{
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"%u", "alice", true},
		{"%u", "alic", false},
		{"%u", "alicee", false},
		{"%c", "dev-1", true},
		{"dev-%c", "dev-dev-1", true},
		{"%u-%c", "alice-dev-1", true},
		{"%u-%c", "alice-dev-2", false},
		{"x%uy", "xalicey", true},
		{"x%uy", "xalice", false},
		{"%%u", "%alice", true},
		{"50%", "50%", true},
		{"50%x", "50%x", true},
		{"50%x", "50%y", false},
		{"%", "%", true},
		{"%U", "%U", true}, // only %u and %c are placeholders
		{"%U", "alice", false},
		{"", "", true},
		{"%u", "", false},
	}
	for _, tt := range tests {
		if got := levelEqual(tt.p, tt.v, "alice", "dev-1"); got != tt.want {
			t.Errorf("levelEqual(%q, %q) = %v, want %v", tt.p, tt.v, got, tt.want)
		}
	}
}

func TestMayPublish(t *testing.T) {
	t.Parallel()
	csms := User{Name: "csms", Role: RoleMQTT, Pub: []string{"ocpp/cs/#", "csms/%u/%c/+", "dev/%c"}}
	tests := []struct {
		name     string
		u        User
		clientID string
		topic    string
		want     bool
	}{
		{"in the list", csms, "c1", "ocpp/cs/CP001", true},
		{"deep in the list", csms, "c1", "ocpp/cs/CP001/x/y", true},
		{"parent of #", csms, "c1", "ocpp/cs", true},
		{"outside", csms, "c1", "ocpp/cp/CP001", false},
		{"prefix is not a level", csms, "c1", "ocpp/csx", false},
		{"placeholders", csms, "c1", "csms/csms/c1/state", true},
		{"other user's level", csms, "c1", "csms/other/c1/state", false},
		{"other client's level", csms, "c1", "csms/csms/c2/state", false},
		{"client id level", csms, "dev-7", "dev/dev-7", true},
		{"client id '#' does not widen", csms, "#", "dev/#", false},
		{"client id '+' does not widen", csms, "+", "dev/x", false},
		{"client id with '/' does not shift", csms, "a/b", "dev/a/b", false},
		{"empty client id", csms, "", "dev/", false},
		{"wildcard topic refused", csms, "c1", "ocpp/cs/+", false},
		{"# topic refused", csms, "c1", "ocpp/cs/#", false},
		{"empty topic", csms, "c1", "", false},
		{"NUL in topic", csms, "c1", "ocpp/cs/a\x00b", false},
		{"bad UTF-8", csms, "c1", "ocpp/cs/\xff", false},
		{"$ topic not under #", User{Name: "u", Role: RoleMQTT, Pub: []string{"#"}}, "c", "$SYS/x", false},
		{"# allows the rest", User{Name: "u", Role: RoleMQTT, Pub: []string{"#"}}, "c", "any/thing", true},
		{"name with + does not widen", User{Name: "a+", Role: RoleMQTT, Pub: []string{"u/%u"}}, "c", "u/a+", false},
		{"name with / does not shift", User{Name: "a/b", Role: RoleMQTT, Pub: []string{"u/%u"}}, "c", "u/a/b", false},
		{"bad rule ignored", User{Name: "u", Role: RoleMQTT, Pub: []string{"a/#/b", "x"}}, "c", "a/z/b", false},
		{"good rule after a bad one", User{Name: "u", Role: RoleMQTT, Pub: []string{"a/#/b", "x"}}, "c", "x", true},
		{"no rules", User{Name: "u", Role: RoleMQTT}, "c", "a", false},
		{"admin anywhere", User{Name: "root", Role: RoleAdmin}, "c", "ocpp/cs/CP001", true},
		{"admin $ topic", User{Name: "root", Role: RoleAdmin}, "c", "$SYS/x", true},
		{"admin invalid topic", User{Name: "root", Role: RoleAdmin}, "c", "a/+", false},
		{"charge point never", User{Name: "CP1", Role: RoleChargePoint, Pub: []string{"#"}}, "c", "a", false},
		{"no role never", User{Name: "x", Pub: []string{"#"}}, "c", "a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.u.MayPublish(tt.clientID, tt.topic); got != tt.want {
				t.Errorf("%+v.MayPublish(%q, %q) = %v, want %v", tt.u, tt.clientID, tt.topic, got, tt.want)
			}
		})
	}
}

func TestMaySubscribe(t *testing.T) {
	t.Parallel()
	csms := User{Name: "csms", Role: RoleMQTT, Sub: []string{"ocpp/#", "csms/%u/#", "dev/%c/+"}}
	tests := []struct {
		name     string
		u        User
		clientID string
		filter   string
		want     bool
	}{
		{"exact rule", csms, "c1", "ocpp/#", true},
		{"narrower", csms, "c1", "ocpp/cp/+", true},
		{"narrower with #", csms, "c1", "ocpp/cp/#", true},
		{"a topic", csms, "c1", "ocpp/cp/CP001", true},
		{"the rule's parent level", csms, "c1", "ocpp", true},
		{"wider", csms, "c1", "#", false},
		{"sibling", csms, "c1", "csms/other/#", false},
		{"own level", csms, "c1", "csms/csms/#", true},
		{"own level with +", csms, "c1", "csms/csms/+/x", true},
		{"+ in place of %u", csms, "c1", "csms/+/#", false},
		{"client level", csms, "c1", "dev/c1/x", true},
		{"client level +", csms, "c1", "dev/c1/+", true},
		{"client level # is wider", csms, "c1", "dev/c1/#", false}, // matches dev/c1 itself
		{"client id # does not widen", csms, "#", "dev/#", false},
		{"client id + does not widen", csms, "+", "dev/+/+", false},
		{"client id + literal", csms, "+", "dev/x/y", false},
		{"shared subscription", csms, "c1", "$share/g/ocpp/cp/+", true},
		{"shared subscription outside", csms, "c1", "$share/g/other/#", false},
		{"shared without filter", csms, "c1", "$share/g", false},
		{"shared with empty group", csms, "c1", "$share//ocpp/#", false},
		{"shared with wildcard group", csms, "c1", "$share/+/ocpp/#", false},
		{"invalid filter", csms, "c1", "ocpp/#/x", false},
		{"invalid +", csms, "c1", "ocpp/a+", false},
		{"empty filter", csms, "c1", "", false},
		{"$SYS not under #", User{Name: "u", Role: RoleMQTT, Sub: []string{"#"}}, "c", "$SYS/#", false},
		{"$SYS when listed", User{Name: "u", Role: RoleMQTT, Sub: []string{"$SYS/#"}}, "c", "$SYS/broker/+", true},
		{"+/# covers #", User{Name: "u", Role: RoleMQTT, Sub: []string{"+/#"}}, "c", "#", true},
		{"admin anything", User{Name: "root", Role: RoleAdmin}, "c", "#", true},
		{"admin $SYS", User{Name: "root", Role: RoleAdmin}, "c", "$SYS/#", true},
		{"admin shared", User{Name: "root", Role: RoleAdmin}, "c", "$share/g/#", true},
		{"admin invalid", User{Name: "root", Role: RoleAdmin}, "c", "a/#/b", false},
		{"charge point never", User{Name: "CP1", Role: RoleChargePoint, Sub: []string{"#"}}, "c", "a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.u.MaySubscribe(tt.clientID, tt.filter); got != tt.want {
				t.Errorf("%+v.MaySubscribe(%q, %q) = %v, want %v", tt.u, tt.clientID, tt.filter, got, tt.want)
			}
		})
	}
}

func TestCheckFilter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		f    string
		want string // substring; "" for valid
	}{
		{"a", ""}, {"a/b", ""}, {"/", ""}, {"//", ""}, {"+", ""}, {"#", ""}, {"+/+", ""},
		{"a/+/b", ""}, {"a/#", ""}, {"/#", ""}, {"$SYS/#", ""}, {"%u/%c", ""}, {"a b", ""},
		{"", "empty"},
		{"#/a", "last"}, {"a/#/b", "last"}, {"a#", "whole level"}, {"#a", "whole level"},
		{"a/b#", "whole level"}, {"a+", "whole level"}, {"+a", "whole level"}, {"a/++", "whole level"},
		{"a\x00", "NUL"}, {"\xff", "UTF-8"}, {strings.Repeat("a", 65536), "65535"},
	}
	for _, tt := range tests {
		got := checkFilter(tt.f)
		if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
			t.Errorf("checkFilter(%.20q) = %q, want %q", tt.f, got, tt.want)
		}
	}
}

// TestACLAllocs: the checks run on every publish and every delivery. Not
// parallel: AllocsPerRun counts the whole process's allocations.
func TestACLAllocs(t *testing.T) {
	u := User{Name: "csms", Role: RoleMQTT, Pub: []string{"ocpp/cs/#"}, Sub: []string{"ocpp/#", "csms/%u/%c/#"}}
	n := testing.AllocsPerRun(100, func() {
		u.MayPublish("c1", "ocpp/cs/CP001")
		u.MaySubscribe("c1", "csms/csms/c1/x")
		u.MaySubscribe("c1", "$share/g/ocpp/+/CP001")
	})
	if n != 0 {
		t.Errorf("%v allocations per check, want 0", n)
	}
}

func BenchmarkMaySubscribeTopic(b *testing.B) {
	u := User{Name: "csms", Role: RoleMQTT, Sub: []string{"a/#", "b/#", "c/#", "csms/%u/#", "ocpp/+/CP001/#"}}
	for b.Loop() {
		u.MaySubscribe("c1", "ocpp/cp/CP001/BootNotification")
	}
}
