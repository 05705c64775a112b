package topic

import (
	"errors"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mount, tmpl string
		want        string // substring of the error
	}{
		{"ocpp/", "cp/${foo}", `unknown placeholder "${foo}"`},
		{"ocpp/", "cp/${CID}", `unknown placeholder "${CID}"`},
		{"ocpp/", "cp/${ cid }", `unknown placeholder "${ cid }"`},
		{"ocpp/", "cp/${}", `unknown placeholder "${}"`},
		{"ocpp/", "cp/${cid}/${Action}", `unknown placeholder "${Action}"`},
		{"ocpp/", "cp/${uniqueid}", `unknown placeholder "${uniqueid}"`},
		{"ocpp/", "cp/${a${cid}}", `unknown placeholder "${a${cid}"`},
		{"ocpp/", "cp/${cid", `unterminated placeholder "${cid"`},
		{"ocpp/", "cp/${", `unterminated placeholder "${"`},
		{"ocpp/", "cp/${cid}/${action", `unterminated placeholder "${action"`},
		{"ocpp/${cid}/", "cp", "placeholders are not supported in the mountpoint"},
		{"ocpp/$", "{cid}", "placeholders are not supported in the mountpoint"},
		{"", "", "empty topic"},
		{"ocpp/", "cp/+", `contains '+'`},
		{"ocpp/", "cp/#", `contains '#'`},
		{"ocpp/", "cp/${cid}/#", `contains '#'`},
		{"oc+pp/", "cp/${cid}", `contains '+'`},
		{"ocpp/", "cp/\x00/${cid}", `contains '\x00'`},
		{"ocpp/", "cp/\xff", "not valid UTF-8"},
		{"$SYS/", "cp/${cid}", "must not start with '$'"},
		{"$ocpp/", "cp/${cid}", "must not start with '$'"},
		{"", "$x", "must not start with '$'"},
		{"", "${cid}", "must start with literal text"},
		{"", "${cid}/cp", "must start with literal text"},
		{"", "${action}", "must start with literal text"},
	}
	for _, c := range cases {
		t.Run(c.mount+"|"+c.tmpl, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(c.mount, c.tmpl)
			if err == nil {
				t.Fatalf("Parse(%q, %q) = nil error, want %q", c.mount, c.tmpl, c.want)
			}
			if !errors.Is(err, ErrInvalidTemplate) {
				t.Errorf("error %v does not wrap ErrInvalidTemplate", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestParseOK(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mount, tmpl, filter string
		hasCID              bool
	}{
		{"ocpp/", "cp/${cid}", "ocpp/cp/+", true},
		{"ocpp/", "cp/${clientid}", "ocpp/cp/+", true},
		{"ocpp/", "cp/${cid}/Reply", "ocpp/cp/+/Reply", true},
		{"ocpp/", "cs/${cid}", "ocpp/cs/+", true},
		{"ocpp/", "presence/${cid}", "ocpp/presence/+", true},
		{"ocpp/", "cp/${cid}/${action}/${id}/${type}", "ocpp/cp/+/+/+/+", true},
		{"ocpp/", "cp/${cid}-${action}", "ocpp/cp/+", true},
		{"ocpp/", "cp/x${cid}y/z", "ocpp/cp/+/z", true},
		{"ocpp/", "cp/all", "ocpp/cp/all", false},
		{"ocpp/", "cp/${action}", "ocpp/cp/+", false},
		{"", "/${cid}", "/+", true},
		{"", "a//${cid}//", "a//+//", true},
		{"", "cp/${cid}", "cp/+", true},
		{"ocpp", "${cid}", "+", true}, // plain concatenation, as EMQX does: one level "ocpp${cid}"
		{"site/1/ocpp/", "${cid}/up", "site/1/ocpp/+/up", true},
		{"ocpp/", "cp/$x/${cid}", "ocpp/cp/$x/+", true},       // '$' not before '{' is literal
		{"ocpp/", "cp/{cid}/${cid}", "ocpp/cp/{cid}/+", true}, // so is '{'
		{"ocpp/", "cp/}/${cid}", "ocpp/cp/}/+", true},
		{"ocpp/", "zählpunkt/${cid}", "ocpp/zählpunkt/+", true},
		{"ocpp/", "", "ocpp/", false},
	}
	for _, c := range cases {
		t.Run(c.mount+"|"+c.tmpl, func(t *testing.T) {
			t.Parallel()
			tp, err := Parse(c.mount, c.tmpl)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := tp.String(); got != c.mount+c.tmpl {
				t.Errorf("String() = %q, want %q", got, c.mount+c.tmpl)
			}
			if got := tp.Filter(); got != c.filter {
				t.Errorf("Filter() = %q, want %q", got, c.filter)
			}
			if got := tp.HasCID(); got != c.hasCID {
				t.Errorf("HasCID() = %v, want %v", got, c.hasCID)
			}
		})
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	all := MustParse("ocpp/", "cp/${cid}/${action}/${id}/${type}")
	cases := []struct {
		name string
		tp   Template
		v    Values
		want string
	}{
		{"default upstream", MustParse("ocpp/", "cp/${cid}"), Values{CID: "CP001"}, "ocpp/cp/CP001"},
		{"clientid alias", MustParse("ocpp/", "cp/${clientid}"), Values{CID: "CP001"}, "ocpp/cp/CP001"},
		{"reply", MustParse("ocpp/", "cp/${cid}/Reply"), Values{CID: "CP001"}, "ocpp/cp/CP001/Reply"},
		{"no placeholders", MustParse("ocpp/", "cp/all"), Values{CID: "x"}, "ocpp/cp/all"},
		{"all fields", all, Values{CID: "CP1", Action: "BootNotification", ID: "42", Type: 2}, "ocpp/cp/CP1/BootNotification/42/2"},
		{"type 3", all, Values{CID: "a", Action: "b", ID: "c", Type: 3}, "ocpp/cp/a/b/c/3"},
		{"type 4", all, Values{CID: "a", Action: "b", ID: "c", Type: 4}, "ocpp/cp/a/b/c/4"},
		{"negative type", all, Values{CID: "a", Action: "b", ID: "c", Type: -1}, "ocpp/cp/a/b/c/-1"},
		{"empty values", all, Values{}, "ocpp/cp////0"},
		{"id slash", all, Values{CID: "a", Action: "b", ID: "x/y", Type: 2}, "ocpp/cp/a/b/x%2Fy/2"},
		{"id plus", all, Values{CID: "a", Action: "b", ID: "x+y", Type: 2}, "ocpp/cp/a/b/x%2By/2"},
		{"id hash", all, Values{CID: "a", Action: "b", ID: "#", Type: 2}, "ocpp/cp/a/b/%23/2"},
		{"id percent", all, Values{CID: "a", Action: "b", ID: "100%", Type: 2}, "ocpp/cp/a/b/100%25/2"},
		{"id NUL", all, Values{CID: "a", Action: "b", ID: "a\x00b", Type: 2}, "ocpp/cp/a/b/a%00b/2"},
		{"id already escaped", all, Values{CID: "a", Action: "b", ID: "%2F", Type: 2}, "ocpp/cp/a/b/%252F/2"},
		{"id all specials", all, Values{CID: "a", Action: "b", ID: "/+#%\x00", Type: 2}, "ocpp/cp/a/b/%2F%2B%23%25%00/2"},
		{"action slash", all, Values{CID: "a", Action: "../x", ID: "1", Type: 2}, "ocpp/cp/a/..%2Fx/1/2"},
		{"action unicode", all, Values{CID: "a", Action: "Zählerstand", ID: "1", Type: 2}, "ocpp/cp/a/Zählerstand/1/2"},
		{"id dollar", all, Values{CID: "a", Action: "b", ID: "$SYS", Type: 2}, "ocpp/cp/a/b/$SYS/2"},
		{"id spaces", all, Values{CID: "a", Action: "b", ID: " x ", Type: 2}, "ocpp/cp/a/b/ x /2"},
		{"cid percent verbatim", MustParse("ocpp/", "cs/${cid}"), Values{CID: "a%b"}, "ocpp/cs/a%b"},
		{"cid percent-like verbatim", MustParse("ocpp/", "cs/${cid}"), Values{CID: "a%2Fb"}, "ocpp/cs/a%2Fb"},
		{"cid slash escaped anyway", MustParse("ocpp/", "cs/${cid}"), Values{CID: "a/b"}, "ocpp/cs/a%2Fb"},
		{"cid wildcards escaped anyway", MustParse("ocpp/", "cs/${cid}"), Values{CID: "+#"}, "ocpp/cs/%2B%23"},
		{"cid NUL escaped anyway", MustParse("ocpp/", "cs/${cid}"), Values{CID: "\x00"}, "ocpp/cs/%00"},
		{"cid unicode", MustParse("ocpp/", "cs/${cid}"), Values{CID: "ladepunkt-ü"}, "ocpp/cs/ladepunkt-ü"},
		{"cid twice", MustParse("ocpp/", "${cid}/${clientid}"), Values{CID: "x"}, "ocpp/x/x"},
		{"mixed level", MustParse("ocpp/", "cp/${cid}-${type}"), Values{CID: "x", Type: 3}, "ocpp/cp/x-3"},
		{"zero template", Template{}, Values{CID: "x"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := c.tp.Render(c.v); got != c.want {
				t.Errorf("Render(%+v) = %q, want %q", c.v, got, c.want)
			}
		})
	}
}

func TestRenderAllocs(t *testing.T) {
	tp := MustParse("ocpp/", "cp/${cid}/${action}/${id}/${type}")
	v := Values{CID: "CP001", Action: "Heart/beat", ID: "42", Type: 2}
	if n := testing.AllocsPerRun(100, func() { _ = tp.Render(v) }); n > 1 {
		t.Errorf("Render allocates %v times, want ≤ 1", n)
	}
	lit := MustParse("ocpp/", "cp/all")
	if n := testing.AllocsPerRun(100, func() { _ = lit.Render(v) }); n != 0 {
		t.Errorf("Render of a literal template allocates %v times, want 0", n)
	}
}

func TestParseDownstreamErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mount, tmpl string
		want        string
	}{
		{"ocpp/", "cs/all", "must hold ${cid}"},
		{"ocpp/", "cs/${cid}/${cid}", "exactly once"},
		{"ocpp/", "cs/${cid}/${clientid}", "exactly once"},
		{"ocpp/", "cs/${cid}/${action}", "may hold only ${cid}"},
		{"ocpp/", "cs/${id}", "may hold only ${cid}"},
		{"ocpp/", "cs/${type}/${cid}", "may hold only ${cid}"},
		{"ocpp/", "cs/x${cid}", "whole level"},
		{"ocpp/", "cs/${cid}x", "whole level"},
		{"ocpp/", "cs/${cid}-in/x", "whole level"},
		{"ocpp", "${cid}", "whole level"},
		{"ocpp/", "cs/${foo}", "unknown placeholder"}, // Parse's errors come through
		{"", "${cid}", "must start with literal text"},
	}
	for _, c := range cases {
		t.Run(c.mount+"|"+c.tmpl, func(t *testing.T) {
			t.Parallel()
			_, err := ParseDownstream(c.mount, c.tmpl)
			if err == nil {
				t.Fatalf("ParseDownstream(%q, %q) = nil error, want %q", c.mount, c.tmpl, c.want)
			}
			if !errors.Is(err, ErrInvalidTemplate) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q: want ErrInvalidTemplate containing %q", err, c.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	def := MustParseDownstream("ocpp/", "cs/${cid}")
	mid := MustParseDownstream("site/", "cmd/${clientid}/in")
	root := MustParseDownstream("", "/${cid}")
	cases := []struct {
		name  string
		d     Downstream
		topic string
		cid   string
		ok    bool
	}{
		{"plain", def, "ocpp/cs/CP001", "CP001", true},
		{"percent verbatim", def, "ocpp/cs/a%b", "a%b", true},
		{"escaped slash stays escaped", def, "ocpp/cs/a%2Fb", "a%2Fb", true},
		{"unicode", def, "ocpp/cs/zähler", "zähler", true},
		{"dollar inside", def, "ocpp/cs/$x", "$x", true},
		{"spaces", def, "ocpp/cs/ a ", " a ", true},
		{"empty cid level", def, "ocpp/cs/", "", false},
		{"no cid level", def, "ocpp/cs", "", false},
		{"extra level", def, "ocpp/cs/CP001/x", "", false},
		{"extra empty level", def, "ocpp/cs/CP001/", "", false},
		{"two levels", def, "ocpp/cs/a/b", "", false},
		{"wrong prefix", def, "ocpp/cp/CP001", "", false},
		{"case differs", def, "OCPP/cs/CP001", "", false},
		{"no mountpoint", def, "cs/CP001", "", false},
		{"mountpoint only", def, "ocpp/", "", false},
		{"empty topic", def, "", "", false},
		{"leading slash", def, "/ocpp/cs/CP001", "", false},
		{"sys topic", def, "$SYS/ocpp/cs/CP001", "", false},
		{"dollar mountpoint", def, "$ocpp/cs/CP001", "", false},
		{"prefix glued", def, "ocpp/csCP001", "", false},
		{"plus", def, "ocpp/cs/+", "", false},
		{"hash", def, "ocpp/cs/#", "", false},
		{"plus inside", def, "ocpp/cs/a+b", "", false},
		{"NUL", def, "ocpp/cs/a\x00", "", false},
		{"share prefix", def, "$share/g/ocpp/cs/CP001", "", false},
		{"mid plain", mid, "site/cmd/CP1/in", "CP1", true},
		{"mid empty cid", mid, "site/cmd//in", "", false},
		{"mid missing suffix", mid, "site/cmd/CP1", "", false},
		{"mid wrong suffix", mid, "site/cmd/CP1/out", "", false},
		{"mid suffix glued", mid, "site/cmd/CP1in", "", false},
		{"mid cid with slash", mid, "site/cmd/a/b/in", "", false},
		{"mid overlap prefix suffix", mid, "site/cmd/in", "", false},
		{"root plain", root, "/x", "x", true},
		{"root empty", root, "/", "", false},
		{"root no slash", root, "x", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cid, ok := c.d.Match(c.topic)
			if cid != c.cid || ok != c.ok {
				t.Errorf("%s.Match(%q) = %q, %v; want %q, %v", c.d, c.topic, cid, ok, c.cid, c.ok)
			}
		})
	}
}

func TestMatchRenderRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tmpl := range []string{"cs/${cid}", "cs/${clientid}/cmd", "a/b/c/${cid}/d/e"} {
		d := MustParseDownstream("ocpp/", tmpl)
		for _, cid := range []string{"CP001", "a%b", "zähler", "x y", "$", "%", "%%2F"} {
			topic := d.Render(Values{CID: cid})
			got, ok := d.Match(topic)
			if !ok || got != cid {
				t.Errorf("%s: Match(Render(%q)) = %q, %v", d, cid, got, ok)
			}
			if !filterMatches(d.Filter(), topic) {
				t.Errorf("%s: Filter %q does not match %q", d, d.Filter(), topic)
			}
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	d := MustParseDownstream("ocpp/", "cs/${cid}")
	for _, topic := range []string{"ocpp/cs/CP001", "ocpp/cp/CP001", "sensors/x"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = d.Match(topic) }); n != 0 {
			t.Errorf("Match(%q) allocates %v times", topic, n)
		}
	}
}

func TestOverlap(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b string // templates under "ocpp/"
		want bool
	}{
		{"cp/${cid}", "cs/${cid}", false},
		{"cp/${cid}/Reply", "cs/${cid}", false},
		{"presence/${cid}", "cs/${cid}", false},
		{"cp/${cid}", "cp/${cid}", true},
		{"cp/${cid}", "cp/${clientid}", true},
		{"cp/${cid}", "cp/x", true},
		{"cp/${cid}", "${action}/x", true}, // "ocpp/cp/X" vs "ocpp/x/..": both are 3 levels with a "+" each
		{"${action}/${cid}", "cs/${cid}", true},
		{"cp/${cid}", "cp/${cid}/Reply", false},
		{"cp-${cid}", "cs-${cid}", true}, // conservative: both are "ocpp/+"
		{"cp/a", "cp/b", false},
		{"cp/a", "cp/a", true},
		{"cp/${cid}/${action}", "cp/${cid}/Reply", true},
		{"", "", true},
	}
	for _, c := range cases {
		a, b := MustParse("ocpp/", c.a), MustParse("ocpp/", c.b)
		if got := Overlap(a, b); got != c.want {
			t.Errorf("Overlap(%q, %q) = %v, want %v", a, b, got, c.want)
		}
		if got := Overlap(b, a); got != c.want {
			t.Errorf("Overlap(%q, %q) = %v, want %v (not symmetric)", b, a, got, c.want)
		}
	}
}

func TestFiltersOverlap(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b string
		want bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"+/+", "a/b", true},
		{"+", "a/b", false},
		{"#", "a/b", true},
		{"#", "", true},
		{"a/#", "a", true}, // "#" matches the parent level
		{"a/#", "a/b/c", true},
		{"a/#", "b/#", false},
		{"a/+/c", "a/b/#", true},
		{"a/+/c", "a/b/d", false},
		{"a/b", "a/b/c", false},
		{"a/b/", "a/b", false},
		{"a/b/", "a/b/+", true},
		{"", "", true},
		{"", "+", true},
		{"/", "+/+", true},
		{"/", "+", false},
		{"ocpp/cs/+", "ocpp/cp/+", false},
		{"ocpp/cs/+", "ocpp/#", true},
		{"ocpp/cs/+", "ocpp/+/+/#", true},
	}
	for _, c := range cases {
		if got := FiltersOverlap(c.a, c.b); got != c.want {
			t.Errorf("FiltersOverlap(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := FiltersOverlap(c.b, c.a); got != c.want {
			t.Errorf("FiltersOverlap(%q, %q) = %v, want %v (not symmetric)", c.b, c.a, got, c.want)
		}
	}
}

func TestUnder(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mount, topic string
		want         bool
	}{
		{"ocpp/", "ocpp/cp/x", true},
		{"ocpp/", "ocpp/", true},
		{"ocpp/", "ocpp", false},
		{"ocpp/", "ocppx/cp", false},
		{"ocpp/", "OCPP/cp/x", false},
		{"ocpp/", "x/ocpp/cp", false},
		{"ocpp/", "$SYS/ocpp/", false},
		{"ocpp/", "", false},
		{"", "anything", true},
		{"", "", true},
		{"ocpp", "ocppcp/x", true}, // plain prefix, as the mountpoint is concatenated
	}
	for _, c := range cases {
		if got := Under(c.mount, c.topic); got != c.want {
			t.Errorf("Under(%q, %q) = %v, want %v", c.mount, c.topic, got, c.want)
		}
	}
}

func TestEscape(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, out string }{
		{"", ""},
		{"plain", "plain"},
		{"a/b", "a%2Fb"},
		{"a+b", "a%2Bb"},
		{"a#b", "a%23b"},
		{"a%b", "a%25b"},
		{"\x00", "%00"},
		{"//", "%2F%2F"},
		{"%2F", "%252F"},
		{"ü/ß", "ü%2Fß"},
		{"$SYS", "$SYS"},
		{"a b\tc\n", "a b\tc\n"},
		{"\xff", "\xff"}, // invalid UTF-8 is kept, not repaired
	}
	for _, c := range cases {
		if got := Escape(c.in); got != c.out {
			t.Errorf("Escape(%q) = %q, want %q", c.in, got, c.out)
		}
		back, err := Unescape(c.out)
		if err != nil || back != c.in {
			t.Errorf("Unescape(%q) = %q, %v; want %q", c.out, back, err, c.in)
		}
	}
}

func TestUnescape(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, out string
		bad     bool
	}{
		{"", "", false},
		{"plain", "plain", false},
		{"%2f", "/", false},
		{"%2F", "/", false},
		{"%41%42", "AB", false},
		{"%C3%BC", "ü", false},
		{"100%25", "100%", false},
		{"%", "", true},
		{"a%", "", true},
		{"a%2", "", true},
		{"%2G", "", true},
		{"%G2", "", true},
		{"%%", "", true},
		{"% 2F", "", true},
		{"ok%2Fthen%", "", true},
	}
	for _, c := range cases {
		got, err := Unescape(c.in)
		if c.bad {
			if err == nil || !errors.Is(err, ErrInvalidEscape) {
				t.Errorf("Unescape(%q) = %q, %v; want ErrInvalidEscape", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.out {
			t.Errorf("Unescape(%q) = %q, %v; want %q", c.in, got, err, c.out)
		}
	}
}

func TestEscapeNoAllocWhenClean(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = Escape("BootNotification") }); n != 0 {
		t.Errorf("Escape of a clean value allocates %v times", n)
	}
}

// filterMatches is an independent MQTT matcher ('+' and a trailing '#'), used to check Filter.
func filterMatches(filter, topic string) bool {
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) {
			return false
		}
		if f != "+" && f != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}
