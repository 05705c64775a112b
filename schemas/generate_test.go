package schemas

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// genPayload returns a random payload for the compiled schema root, for the differential tests:
// mostly close to valid, with wrong types, missing, unknown and repeated members, strings and
// numbers at and around every limit, escapes, invalid UTF-8 and odd whitespace, so that every
// keyword and path of both engines is exercised. It is deterministic for a given r.
func genPayload(r *rand.Rand, root *node) []byte {
	g := &generator{r: r}
	g.value(root, 0)
	return g.b
}

type generator struct {
	r *rand.Rand
	b []byte
}

func (g *generator) chance(p float64) bool { return g.r.Float64() < p }

func (g *generator) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

func (g *generator) ws() {
	for g.chance(0.04) {
		g.b = append(g.b, " \n\t\r"[g.r.IntN(4)])
	}
}

func (g *generator) value(n *node, depth int) {
	if n != nil && n.ref != nil {
		n = n.ref
	}
	g.ws()
	defer g.ws()
	if n == nil || depth > 10 || g.chance(0.03) {
		g.any(depth)
		return
	}
	var kinds []typeSet
	for _, t := range []typeSet{tNull, tBoolean, tObject, tArray, tNumber, tInteger, tString} {
		if n.types&t != 0 {
			kinds = append(kinds, t)
		}
	}
	if n.types == 0 {
		switch {
		case len(n.names) > 0 || n.closed:
			kinds = []typeSet{tObject}
		case n.items != nil || n.minItems >= 0 || n.maxItems >= 0:
			kinds = []typeSet{tArray}
		case n.strChecks:
			kinds = []typeSet{tString}
		case n.numChecks:
			kinds = []typeSet{tNumber}
		default:
			g.any(depth)
			return
		}
	}
	switch kinds[g.r.IntN(len(kinds))] {
	case tNull:
		g.b = append(g.b, "null"...)
	case tBoolean:
		g.b = append(g.b, g.pick([]string{"true", "false"})...)
	case tObject:
		g.object(n, depth)
	case tArray:
		g.array(n, depth)
	case tNumber:
		g.number(n, false)
	case tInteger:
		g.number(n, true)
	case tString:
		g.string(n)
	}
}

func (g *generator) object(n *node, depth int) {
	required := make(map[int]bool)
	for _, j := range n.required {
		required[j] = true
	}
	var members []int
	for j := range n.names {
		if required[j] && g.chance(0.93) || !required[j] && g.chance(0.5) {
			members = append(members, j)
		}
	}
	if g.chance(0.4) {
		g.r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	}
	if len(members) > 0 && g.chance(0.03) {
		members = append(members, members[g.r.IntN(len(members))])
	}
	g.b = append(g.b, '{')
	for i, j := range members {
		if i > 0 {
			g.b = append(g.b, ',')
		}
		g.key(n.names[j])
		if j < len(n.props) {
			g.value(n.props[j], depth+1)
		} else {
			g.any(depth + 1)
		}
	}
	for g.chance(0.06) {
		if len(members) > 0 || g.b[len(g.b)-1] != '{' {
			g.b = append(g.b, ',')
		}
		g.key(g.pick([]string{"zz", "aa", "x.y", "é", "", "Zz", "zz"}))
		g.any(depth + 1)
		members = append(members, -1)
	}
	g.ws()
	g.b = append(g.b, '}')
}

func (g *generator) key(name string) {
	g.ws()
	if name != "" && name[0] < 0x80 && g.chance(0.05) {
		g.b = append(g.b, `"\u00`...)
		g.b = strconv.AppendInt(g.b, int64(name[0])>>4, 16)
		g.b = strconv.AppendInt(g.b, int64(name[0])&15, 16)
		g.b = append(g.b, name[1:]...)
		g.b = append(g.b, '"')
	} else {
		g.b = strconv.AppendQuote(g.b, name)
	}
	g.ws()
	g.b = append(g.b, ':')
}

func (g *generator) array(n *node, depth int) {
	limit := 4
	if n.maxItems >= 0 {
		limit = n.maxItems + 2
	}
	if n.minItems > 0 && limit < n.minItems+2 {
		limit = n.minItems + 2
	}
	count := g.r.IntN(limit)
	if depth > 4 {
		count = min(count, 1)
	}
	g.b = append(g.b, '[')
	for i := range count {
		if i > 0 {
			g.b = append(g.b, ',')
		}
		g.value(n.items, depth+1)
	}
	g.ws()
	g.b = append(g.b, ']')
}

var (
	dateTimes = []string{"2024-05-01T10:00:00Z", "2024-05-01T10:00:00.123+02:00", "2024-05-01t10:00:00z",
		"2016-12-31T23:59:60Z", "2024-05-01T10:00:00", "2024-05-01", "2024-02-30T00:00:00Z", "",
		"2024-05-01T10:00:00\\u005a", "2024-05-01 10:00:00Z", "2024-05-01T10:00:00+0200"}
	uris = []string{"ftp://user:pw@host/diag", "https://example.com/fw.bin", "https:\\/\\/example.com\\/fw.bin",
		"urn:isbn:0451450523", "ftp://[2001:db8::1]:21/", "http://[::1]:8080/x", "/uploads", "host/x",
		"ftp://host/a b", "https://h:port/", "http://a:1:2/", "ftp://a:1:2/", "http://h%41/", "http://h%c3%a9/",
		"http://[1.2.3.4]/", "http://[::1%25en0]/", "ftp://host/%zz", "ftp://h/é", "x:", "a#b#c"}
	pieces = []string{"a", "Z", "0", " ", "é", "😀", `\n`, `\"`, `\\`, `\/`, `\u00e9`, `\ud83d\ude00`,
		`\ud800`, `\udc00x`, "\xff", "\xc3", "<", "&", "\u2028", `\u0000`, "."}
)

func (g *generator) string(n *node) {
	g.b = append(g.b, '"')
	defer func() { g.b = append(g.b, '"') }()
	switch {
	case n.enum != nil && g.chance(0.85):
		e := n.enum[g.r.IntN(len(n.enum))]
		if g.chance(0.05) {
			e = strings.ToLower(e)
		} else if g.chance(0.05) {
			e += "x"
		}
		g.b = append(g.b, strings.ReplaceAll(strconv.Quote(e), `"`, "")...)
		return
	case n.format == fmtDateTime && g.chance(0.9):
		g.b = append(g.b, g.pick(dateTimes)...)
		return
	case n.format == fmtURI && g.chance(0.9):
		g.b = append(g.b, g.pick(uris)...)
		return
	}
	length := g.r.IntN(6)
	if n.maxLength >= 0 && g.chance(0.7) {
		length = max(0, n.maxLength+g.r.IntN(3)-1)
	}
	if n.minLength > 0 && g.chance(0.3) {
		length = max(0, n.minLength+g.r.IntN(3)-1)
	}
	for range length {
		if g.chance(0.9) {
			g.b = append(g.b, "abcxyz019"[g.r.IntN(9)])
		} else {
			g.b = append(g.b, g.pick(pieces)...)
		}
	}
}

var numbers = []string{"0", "-0", "1", "-1", "7", "1.0", "1.5", "1e2", "1E+2", "1e-1", "2.50", "0.0",
	"1e400", "-1e400", "1e-400", "1e1000001", "1.0e1000", "0e99999999999999999999",
	"123456789012345678901234567890", "9007199254740993", "16.1", "1.61e1", "0.30000000000000004",
	"16.15", "0.1", "100", "101", "-0.0000001", "1e-7", "99.99999999999999999"}

func (g *generator) number(n *node, integer bool) {
	switch {
	case n.multipleOf != nil && g.chance(0.6):
		k := g.r.IntN(400) - 50
		text := strconv.Itoa(k)
		if d := n.multipleOf; d.mexp < 0 {
			text = scaled(k, int(-d.mexp), d.mant)
		} else if d.mant != 1 || d.mexp != 0 {
			text = strconv.Itoa(k*int(d.mant)) + "e" + strconv.Itoa(int(d.mexp))
		}
		if g.chance(0.2) {
			text += g.pick([]string{"5", "00000000001", "0000001", "e1", "e-1"})
			if !strings.ContainsAny(text, ".e") {
				text += ".0"
			}
		}
		g.b = append(g.b, text...)
	case (n.minimum != nil || n.maximum != nil) && g.chance(0.6):
		d := n.minimum
		if d == nil || n.maximum != nil && g.chance(0.5) {
			d = n.maximum
		}
		g.b = append(g.b, d.text...)
		if g.chance(0.5) {
			g.b = append(g.b, g.pick([]string{"1", ".5", "e0", "0", ".0000000000000000001"})...)
		}
	case integer && g.chance(0.7):
		g.b = strconv.AppendInt(g.b, int64(g.r.IntN(2000)-100), 10)
	default:
		g.b = append(g.b, g.pick(numbers)...)
	}
}

// scaled returns k × 10^-digits × mant as decimal text.
func scaled(k, digits int, mant uint64) string {
	v := strconv.Itoa(k * int(mant))
	neg := strings.HasPrefix(v, "-")
	v = strings.TrimPrefix(v, "-")
	for len(v) <= digits {
		v = "0" + v
	}
	v = v[:len(v)-digits] + "." + v[len(v)-digits:]
	if neg {
		v = "-" + v
	}
	return v
}

// any appends a random JSON value of any type.
func (g *generator) any(depth int) {
	switch k := g.r.IntN(9); {
	case k == 0:
		g.b = append(g.b, "null"...)
	case k == 1:
		g.b = append(g.b, "true"...)
	case k == 2 || k == 3:
		g.b = append(g.b, g.pick(numbers)...)
	case k == 4 || k == 5:
		g.string(&node{minLength: -1, maxLength: -1})
	case k == 6 && depth < 6:
		g.b = append(g.b, '[')
		for i := range g.r.IntN(3) {
			if i > 0 {
				g.b = append(g.b, ',')
			}
			g.any(depth + 1)
		}
		g.b = append(g.b, ']')
	case k == 7 && depth < 6:
		g.b = append(g.b, '{')
		for i := range g.r.IntN(3) {
			if i > 0 {
				g.b = append(g.b, ',')
			}
			g.key(g.pick([]string{"a", "b", "zz", "a"}))
			g.any(depth + 1)
		}
		g.b = append(g.b, '}')
	default:
		g.b = append(g.b, `"s"`...)
	}
}
