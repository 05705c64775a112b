package access

import "testing"

func TestCovers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern, filter string
		want            bool
	}{
		{"#", "#", true},
		{"#", "a", true},
		{"#", "a/b/c", true},
		{"#", "/a", true},
		{"#", "+/+", true},
		{"#", "$SYS/uptime", false},
		{"#", "$SYS/#", false},
		{"+", "$SYS", false},
		{"+/#", "$SYS/uptime", false},
		{"$SYS/#", "$SYS/uptime", true},
		{"$SYS/#", "$SYS/#", true},
		{"a/#", "a", true},
		{"a/#", "a/#", true},
		{"a/#", "a/+", true},
		{"a/#", "a/b/c", true},
		{"a/#", "a/+/c/#", true},
		{"a/#", "ab", false},
		{"a/#", "b/a", false},
		{"a/#", "#", false},
		{"a/#", "+/b", false},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"a/+", "a/#", false},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/+/c", true},
		{"a/+/c", "a/+/d", false},
		{"a/+/c", "a/+/+", false},
		{"a/b", "a/b", true},
		{"a/b", "a/+", false},
		{"a/b", "a/b/c", false},
		{"a/b", "a", false},
		{"a/b", "A/b", false},
		{"+/+", "a/b", true},
		{"+/+", "a", false},
		{"+", "", true},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"ocpp/#", "ocpp/cp/CP1", true},
		{"ocpp/#", "ocpp", true},
		{"ocpp/#", "ocppx/cp", false},
		{"ocpp/cp/+", "ocpp/cp/CP1/Reply", false},
		{"a/#/b", "a/x/b", false}, // not a valid pattern: covers nothing
		{"+/#", "#", false},       // conservative: "+/#" matches all "#" does
	}
	for _, c := range cases {
		if got := Covers(c.pattern, c.filter); got != c.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", c.pattern, c.filter, got, c.want)
		}
	}
}

func TestUnshare(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"$share/g/ocpp/#": "ocpp/#",
		"$SHARE/g/a":      "a",
		"$share/g/":       "",
		"$share/g":        "$share/g",
		"$shared/g/a":     "$shared/g/a",
		"ocpp/#":          "ocpp/#",
		"a/$share/g/b":    "a/$share/g/b",
	} {
		if got := unshare(in); got != want {
			t.Errorf("unshare(%q) = %q, want %q", in, got, want)
		}
	}
}
