package schemas

import (
	"encoding/json"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

var scanCases = []string{
	`{}`, ` {} `, `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{"a":}`, `{,}`, `{"a":1 "b":2}`, `{1:2}`, `{"a":[1,2,]}`,
	`[]`, `[1]`, `[1,]`, `[,1]`, `[1 2]`, `"x"`, `"\x"`, `"\u12"`, `"\u12g4"`, `"\uD83D\uDE00"`, "\"\x01\"",
	"\"\xff\"", `"\/"`, `"`, `"\`, `true`, `tru`, `truex`, `null`, `nul`, `false`, `-`, `-0`, `01`, `1.`, `.5`,
	`1.5e`, `1.5e+`, `1.5e+3`, `1E-3`, `-1.0e00001`, `1e99999999999999999999`, `+1`, `Infinity`, `NaN`, ``,
	` `, "\ufeff{}", "{\u00a0}", `{"a":{"b":{"c":[{}]}}}`, `{"a":"b"}}`, `[[[]]`, `{"\u0000":"\u0000"}`,
}

// TestScanMatchesJSONValid holds the scanner to encoding/json's idea of valid JSON, including its
// nesting limit.
func TestScanMatchesJSONValid(t *testing.T) {
	t.Parallel()
	cases := append([]string(nil), scanCases...)
	for _, depth := range []int{maxDepth - 1, maxDepth, maxDepth + 1} {
		cases = append(cases, strings.Repeat("[", depth)+strings.Repeat("]", depth))
		cases = append(cases, `{"a":`+strings.Repeat("[", depth-1)+strings.Repeat("]", depth-1)+`}`)
	}
	s := set16(t)
	for _, c := range cases {
		data := []byte(c)
		end := skipValue(data, skipWS(data, 0), 0)
		whole := end >= 0 && skipWS(data, end) == len(data)
		if whole != json.Valid(data) {
			t.Errorf("%.40q: scanner says %v (end %d), json.Valid %v", c, whole, end, !whole)
		}
		// The validating walk must agree on syntax too, with any schema.
		if !strings.HasPrefix(strings.TrimLeft(c, " \t\r\n"), "{") {
			continue
		}
		for _, a := range []string{"Heartbeat", "MeterValues", "DataTransfer"} {
			f := s.Check(a, false, data)
			notJSON := f != nil && f.Violations[0].Message == "payload is not a JSON object"
			if notJSON == json.Valid(data) {
				t.Errorf("%.40q %s: Check %v, json.Valid %v", c, a, describe(f), json.Valid(data))
			}
		}
	}
}

// TestDecodeMatchesEncodingJSON holds appendDecoded to what encoding/json makes of a string.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	cases := []string{`abc`, `\"\\\/\b\f\n\r\t`, `\u00e9`, `\u00E9x`, `\ud83d\ude00`, `\ud83d`, `\ud83dx`,
		`\ude00`, `\ud83d\ud83d\ude00`, `\ud83d\u0041`, `\uffff`, `\u0000`, "\xff", "\xc3", "\xc3\xa9", "\xed\xa0\x80",
		"\xef\xbf\xbd", "a\xf0\x9f\x98", `\u002`, "é😀"}
	r := rand.New(rand.NewPCG(4, 4))
	pieces := []string{`a`, `\u00e9`, `\ud83d`, `\ude00`, "\xff", "\xe2\x82", "€", `\n`, `\\`, `\u0041`}
	for range 2000 {
		var b strings.Builder
		for range r.IntN(8) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		cases = append(cases, b.String())
	}
	for _, c := range cases {
		raw := []byte(c)
		quoted := append(append([]byte{'"'}, raw...), '"')
		var want string
		if json.Unmarshal(quoted, &want) != nil {
			continue // not a valid string, never decoded
		}
		end, fl := scanString(quoted, 0)
		if end != len(quoted) {
			t.Fatalf("%q: scanString end %d", c, end)
		}
		if got := string(decodeString(nil, raw, fl)); got != want {
			t.Errorf("%q: decoded %q, encoding/json %q", c, got, want)
		}
	}
}

// TestNumbersMatchBigRat holds the decimal arithmetic to gojsonschema's big.Rat: comparison,
// multipleOf and the integer test.
func TestNumbersMatchBigRat(t *testing.T) {
	t.Parallel()
	nums := []string{"0", "-0", "1", "-1", "1.0", "10", "100e-2", "1.5", "0.1", "0.30000000000000004", "16.1",
		"16.15", "1.61e1", "161e-1", "1e400", "1e-400", "-1e400", "0e99999999999999999999", "1e1000001",
		"123456789012345678901234567890", "9223372036854775808", "0.000", "1E+2",
		"2.5e-1", "7", "49", "0.7", "2", "-2", "0.2", "2.51", "-2.49", "1234567890123456789", "123456789012345678911", "1e-9223372036854775808", "1e9223372036854775807", "1e9223372036854775808"}
	r := rand.New(rand.NewPCG(5, 5))
	for range 3000 {
		var b strings.Builder
		if r.IntN(3) == 0 {
			b.WriteByte('-')
		}
		if r.IntN(4) == 0 {
			b.WriteByte('0')
		} else {
			b.WriteString(strconv.Itoa(1 + r.IntN(99999)))
		}
		if r.IntN(2) == 0 {
			b.WriteString("." + strconv.Itoa(r.IntN(100000)))
		}
		if r.IntN(2) == 0 {
			b.WriteString("e" + strconv.Itoa(r.IntN(40)-20))
		}
		nums = append(nums, b.String())
	}
	bounds := []string{"0", "0.1", "0.5", "1", "3", "7", "100", "-2.5", "2.5", "0.25", "1e3", "12345678901234567891", "0.000001"}
	for _, text := range nums {
		data := []byte(text)
		end, n := scanNumber(data, 0)
		if end != len(data) {
			t.Fatalf("%s: end %d", text, end)
		}
		rat, ok := new(big.Rat).SetString(text)
		if got, want := n.ratInteger(), ok && rat.IsInt(); got != want {
			t.Errorf("%s: ratInteger %v, big.Rat %v", text, got, want)
		}
		if !ok {
			continue
		}
		for _, bt := range bounds {
			d, err := parseBound(bt)
			if err != nil {
				t.Fatal(err)
			}
			br, _ := new(big.Rat).SetString(bt)
			if got, want := cmpNum(&n, d), rat.Cmp(br); got != want {
				t.Errorf("cmp(%s, %s) = %d, big.Rat %d", text, bt, got, want)
			}
			if br.Sign() > 0 && d.setMultiple() {
				if got, want := d.isMultiple(&n), new(big.Rat).Quo(rat, br).IsInt(); got != want {
					t.Errorf("%s multipleOf %s: %v, big.Rat %v", text, bt, got, want)
				}
			}
		}
	}
}
