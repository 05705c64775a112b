package topic

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// validTopicName reports whether s may be an MQTT PUBLISH topic name: no wildcards
// [MQTT-3.3.2-2] and no NUL [MQTT-1.5.4-2].
func validTopicName(s string) bool {
	return !strings.ContainsAny(s, "+#\x00")
}

func FuzzRender(f *testing.F) {
	f.Add("CP001", "BootNotification", "42", 2)
	f.Add("a%b", "x/y", "+#%\x00", 3)
	f.Add("", "", "", 4)
	f.Add("a/b", "%2F", "%", -7)
	f.Add("zähler", "Zählerstand", "\xff", 0)
	tmpl := MustParse("ocpp/", "cp/${cid}/${action}/${id}/${type}")
	down := MustParseDownstream("ocpp/", "cs/${cid}")
	wantLevels := strings.Count(tmpl.String(), "/") + 1
	f.Fuzz(func(t *testing.T, cid, action, id string, typ int) {
		v := Values{CID: cid, Action: action, ID: id, Type: typ}
		got := tmpl.Render(v)
		if !validTopicName(got) {
			t.Fatalf("Render(%+v) = %q: not a valid topic name", v, got)
		}
		if utf8.ValidString(cid) && utf8.ValidString(action) && utf8.ValidString(id) && !utf8.ValidString(got) {
			t.Fatalf("Render(%+v) = %q: invalid UTF-8 from valid inputs", v, got)
		}
		levels := strings.Split(got, "/")
		if len(levels) != wantLevels {
			t.Fatalf("Render(%+v) = %q: %d levels, want %d", v, got, len(levels), wantLevels)
		}
		if !filterMatches(tmpl.Filter(), got) {
			t.Fatalf("Filter %q does not match %q", tmpl.Filter(), got)
		}
		if a, err := Unescape(levels[3]); err != nil || a != action {
			t.Fatalf("action level %q decodes to %q, %v; want %q", levels[3], a, err, action)
		}
		if i, err := Unescape(levels[4]); err != nil || i != id {
			t.Fatalf("id level %q decodes to %q, %v; want %q", levels[4], i, err, id)
		}
		// A cid the handshake accepts (non-empty, no '/', '+', '#', NUL) is in the topic verbatim.
		cidOK := cid != "" && !strings.ContainsAny(cid, "/+#\x00")
		if cidOK && levels[2] != cid {
			t.Fatalf("cid level %q, want %q verbatim", levels[2], cid)
		}
		dt := down.Render(v)
		if !validTopicName(dt) {
			t.Fatalf("downstream Render(%q) = %q: not a valid topic name", cid, dt)
		}
		m, ok := down.Match(dt)
		// A cid the handshake refuses still yields one level, which Match returns escaped.
		if (cidOK && (!ok || m != cid)) || (cid == "" && ok) || (ok && strings.ContainsAny(m, "/+#\x00")) {
			t.Fatalf("Match(Render(%q)) = %q, %v", cid, m, ok)
		}
	})
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "plain", "a/b+c#d%e\x00f", "%2F", "%", "ü", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if strings.ContainsAny(e, "/+#\x00") {
			t.Fatalf("Escape(%q) = %q still holds a separator, wildcard or NUL", s, e)
		}
		if !strings.ContainsAny(s, "/+#%\x00") && e != s {
			t.Fatalf("Escape(%q) = %q, want it unchanged", s, e)
		}
		if utf8.ValidString(s) != utf8.ValidString(e) {
			t.Fatalf("Escape(%q) = %q changed UTF-8 validity", s, e)
		}
		back, err := Unescape(e)
		if err != nil || back != s {
			t.Fatalf("Unescape(Escape(%q)) = %q, %v", s, back, err)
		}
	})
}

// FuzzParse checks that Parse never panics and that whatever it accepts renders valid topic
// names its Filter matches.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"cp/${cid}", "cs/${cid}/x", "${", "${cid", "a/${action}${id}${type}", "$x", "a/+/b"} {
		f.Add("ocpp/", s)
	}
	f.Fuzz(func(t *testing.T, mount, tmpl string) {
		tp, err := Parse(mount, tmpl)
		if err != nil {
			return
		}
		got := tp.Render(Values{CID: "c/+", Action: "a#", ID: "i%", Type: 2})
		if !validTopicName(got) || strings.HasPrefix(got, "$") {
			t.Fatalf("Parse(%q, %q) accepted; Render = %q is not a valid topic name", mount, tmpl, got)
		}
		if !filterMatches(tp.Filter(), got) {
			t.Fatalf("Filter %q does not match %q", tp.Filter(), got)
		}
		if d, err := ParseDownstream(mount, tmpl); err == nil {
			r := d.Render(Values{CID: "CP1"})
			if cid, ok := d.Match(r); !ok || cid != "CP1" {
				t.Fatalf("ParseDownstream(%q, %q): Match(%q) = %q, %v", mount, tmpl, r, cid, ok)
			}
		}
	})
}
