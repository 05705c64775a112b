package schemas

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strconv"
)

// This file does the number arithmetic of the compiled validator exactly, on the decimal digits
// of the payload, where gojsonschema uses big.Rat: comparing with minimum and maximum, testing
// multipleOf and telling integers from other numbers, all without allocating.

// norm returns the significant digits of n as positions [first, last) in the sequence ip+fp, and
// the decimal point position p such that |n| = 0.d[first]…d[last-1] × 10^p. ok is false for 0.
func (n *num) norm() (first, last int, p int64, ok bool) {
	nd := len(n.ip) + len(n.fp)
	first = 0
	for first < nd && n.digit(first) == '0' {
		first++
	}
	if first == nd {
		return 0, 0, 0, false
	}
	last = nd
	for n.digit(last-1) == '0' {
		last--
	}
	return first, last, int64(len(n.ip)-first) + n.exp, true
}

func (n *num) digit(k int) byte {
	if k < len(n.ip) {
		return n.ip[k]
	}
	return n.fp[k-len(n.ip)]
}

// ratInteger reports whether gojsonschema takes n for an integer: big.Rat.SetString must succeed
// and the value be whole, so 1.0 and 1e2 are integers. SetString fails — and gojsonschema then
// calls the number not an integer — when the exponent does not fit an int64, or when, for a
// non-zero mantissa, exponent minus fraction digits exceeds ±10^6 (math/big's guard against huge
// powers): 1e1000001 is not an integer to gojsonschema, so not to us either.
func (n *num) ratInteger() bool {
	if !n.expOK {
		return false
	}
	if len(n.fp) == 0 && n.exp == 0 {
		return true // the common case: plain digits
	}
	first, last, p, ok := n.norm()
	if !ok {
		return true
	}
	if e5 := n.exp - int64(len(n.fp)); e5 > 1e6 || e5 < -1e6 {
		return false
	}
	return p-int64(last-first) >= 0
}

// bound is a number from a schema (minimum, maximum, multipleOf), normalized like num.norm.
type bound struct {
	zero   bool
	neg    bool
	digits string // significant digits, no leading or trailing zeros
	p      int64  // |value| = 0.digits × 10^p

	// multipleOf only: value = mant × 10^mexp, and the value as a float64 for the tolerance test.
	mant  uint64
	mexp  int64
	float float64
	// text is the value as gojsonschema's messages print it (a *big.Float).
	text string
}

// parseBound reads a number from a schema document (a json.Number's text).
func parseBound(s string) (*bound, error) {
	b := []byte(s)
	end, n := scanNumber(b, 0)
	if end != len(b) || !n.expOK {
		return nil, fmt.Errorf("number %q", s)
	}
	d := &bound{neg: n.neg}
	first, last, p, ok := n.norm()
	if !ok {
		d.zero, d.neg = true, false
	} else {
		ds := make([]byte, 0, last-first)
		for k := first; k < last; k++ {
			ds = append(ds, n.digit(k))
		}
		d.digits, d.p = string(ds), p
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("number %q", s)
	}
	bf := new(big.Float).SetRat(r)
	d.text = fmt.Sprint(bf)
	d.float, _ = bf.Float64()
	return d, nil
}

// setMultiple prepares d for multipleOf; false when its mantissa does not fit 64 bits (such a
// schema is left to gojsonschema).
func (d *bound) setMultiple() bool {
	if d.zero || d.neg || len(d.digits) > 19 {
		return false
	}
	m, err := strconv.ParseUint(d.digits, 10, 64)
	if err != nil {
		return false
	}
	d.mant, d.mexp = m, d.p-int64(len(d.digits))
	return true
}

// cmpNum compares n with d: -1, 0 or +1, exactly.
func cmpNum(n *num, d *bound) int {
	first, last, p, ok := n.norm()
	sa := 0
	if ok {
		sa = 1
		if n.neg {
			sa = -1
		}
	}
	sb := 0
	if !d.zero {
		sb = 1
		if d.neg {
			sb = -1
		}
	}
	if sa != sb || sa == 0 {
		return cmpInt(sa, sb)
	}
	// Same sign, both non-zero: compare magnitudes, then apply the sign.
	mag := cmpInt64(p, d.p)
	for k := 0; mag == 0; k++ {
		ha, hb := first+k < last, k < len(d.digits)
		switch {
		case !ha && !hb:
			return 0
		case !ha:
			mag = -1
		case !hb:
			mag = 1
		default:
			mag = cmpInt(int(n.digit(first+k)), int(d.digits[k]))
		}
	}
	return sa * mag
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// isMultiple reports whether n/d is an integer, exactly (gojsonschema's big.Rat test). With
// n = D × 10^v (D without trailing zeros) and d = M × 10^m: for v < m the quotient is not whole
// (10 does not divide D); otherwise it is iff M divides D × 10^(v-m), computed modulo M.
func (d *bound) isMultiple(n *num) bool {
	first, last, p, ok := n.norm()
	if !ok {
		return true
	}
	e := p - int64(last-first) - d.mexp
	if e < 0 {
		return false
	}
	m := d.mant
	if m == 1 {
		return true
	}
	var r uint64
	for k := first; k < last; k++ {
		r = mulAddMod(r, 10, uint64(n.digit(k)-'0'), m)
	}
	return mulAddMod(r, powMod(10%m, e, m), 0, m) == 0
}

// mulAddMod returns (a×b + c) mod m, for a, b < m (or small) and c < 10.
func mulAddMod(a, b, c, m uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	lo, carry := bits.Add64(lo, c, 0)
	hi += carry
	_, rem := bits.Div64(hi%m, lo, m)
	return rem
}

func powMod(b uint64, e int64, m uint64) uint64 {
	r := 1 % m
	for ; e > 0; e >>= 1 {
		if e&1 == 1 {
			r = mulAddMod(r, b, 0, m)
		}
		b = mulAddMod(b, b, 0, m)
	}
	return r
}

// multipleOfTolerance is ajv's (ocpp-rpc's) tolerance: value/multiple may be this far from an
// integer. gojsonschema divides exactly, which is right for decimal text like 16.1 but rejects what
// a charge point computing in binary floating point prints, e.g. 0.30000000000000004 for 0.1+0.2.
const multipleOfTolerance = 1e-6

// withinTolerance applies multipleOfTolerance to the number text of a payload value and the
// multiple as a float64, as both engines do after an exact miss.
func withinTolerance(text string, multiple float64) bool {
	v, err := strconv.ParseFloat(text, 64)
	if err != nil || multiple <= 0 {
		return false
	}
	q := v / multiple
	return math.Abs(math.Round(q)-q) < multipleOfTolerance
}
