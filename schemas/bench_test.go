package schemas

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func meterValues(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"connectorId":1,"transactionId":42,"meterValue":[{"timestamp":"2024-05-01T10:00:00.123Z","sampledValue":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"value":"%d.%d","context":"Sample.Periodic","format":"Raw","measurand":"Current.Import","phase":"L%d","location":"Outlet","unit":"A"}`, i, i, i%3+1)
	}
	b.WriteString(`]}]}`)
	return []byte(b.String())
}

// benchPayloads are the valid payloads the benchmarks and TestCheckAllocs use.
var benchPayloads = []struct {
	name    string
	action  string
	payload []byte
}{
	{"Heartbeat", "Heartbeat", []byte(`{}`)},
	{"StatusNotification", "StatusNotification", []byte(`{"connectorId":1,"errorCode":"NoError","status":"Charging","timestamp":"2024-05-01T10:00:00Z","info":"ok"}`)},
	{"BootNotification", "BootNotification", []byte(`{"chargePointVendor":"Acme","chargePointModel":"Fast-50","chargePointSerialNumber":"SN-0001","chargeBoxSerialNumber":"CB-0001","firmwareVersion":"1.2.3","iccid":"8931000000000000001","imsi":"262010000000001","meterType":"ACME-M1","meterSerialNumber":"M-0001"}`)},
	{"MeterValues20", "MeterValues", meterValues(20)},
}

// BenchmarkCheck measures one valid payload per iteration on one goroutine: the compiled
// validator (Check), the same payload framed as the OCPP frame parser hands it to Scan, the
// reference engine (gojsonschema), and, as the yardstick, json.Unmarshal of the payload into
// an any. TestConcurrentCheck covers concurrent use.
func BenchmarkCheck(b *testing.B) {
	s := set16(b)
	for _, bc := range benchPayloads {
		a := s.actions[bc.action]
		if f := s.Check(bc.action, false, bc.payload); f != nil {
			b.Fatalf("%s: %v", bc.name, f)
		}
		if f := s.checkReference(&a.request, bc.payload); f != nil {
			b.Fatalf("%s: reference: %v", bc.name, f)
		}
		frame := []byte(`[2,"6f1c7c52-0d0a-4b6e-9c1e-2f5b8a1d3e4f","` + bc.action + `",` + string(bc.payload) + `]`)
		rest := frame[len(frame)-len(bc.payload)-1:]
		b.Run(bc.name+"/compiled", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.payload)))
			for b.Loop() {
				if s.Check(bc.action, false, bc.payload) != nil {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(bc.name+"/scan", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.payload)))
			for b.Loop() {
				if end, f := s.Scan(bc.action, false, rest); f != nil || rest[end] != ']' {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(bc.name+"/reference", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.payload)))
			for b.Loop() {
				if s.checkReference(&a.request, bc.payload) != nil {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(bc.name+"/json.Unmarshal", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.payload)))
			for b.Loop() {
				var v any
				if err := json.Unmarshal(bc.payload, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCheckAllocs holds the valid path to no allocation: every valid payload of the corpus, and
// the benchmark payloads, through Check and Scan. (Not parallel: AllocsPerRun counts the whole
// process.)
func TestCheckAllocs(t *testing.T) {
	s := set16(t)
	type job struct {
		action   string
		response bool
		payload  []byte
	}
	var jobs []job
	for _, bp := range benchPayloads {
		jobs = append(jobs, job{bp.action, false, bp.payload})
	}
	// Escapes: decoded on the stack, for enum and length checks.
	jobs = append(jobs, job{"StatusNotification", false, []byte(`{"connectorId":1,"errorCode":"NoEr\u0072or",` +
		`"status":"Ch\u0061rging","info":"` + strings.Repeat(`\u00e9`, 10) + `\ud83d\ude00"}`)})
	for _, d := range defs16() {
		c := readCorpus(t, d.name)
		for _, p := range c.Valid.Request {
			jobs = append(jobs, job{d.name, false, p})
		}
		for _, p := range c.Valid.Response {
			jobs = append(jobs, job{d.name, true, p})
		}
	}
	for _, j := range jobs {
		if f := s.Check(j.action, j.response, j.payload); f != nil {
			t.Fatalf("%s %s: %v", j.action, j.payload, f)
		}
		if n := testing.AllocsPerRun(20, func() { s.Check(j.action, j.response, j.payload) }); n != 0 {
			t.Errorf("%s %s: Check allocates %v times", j.action, j.payload, n)
		}
		if n := testing.AllocsPerRun(20, func() { s.Scan(j.action, j.response, j.payload) }); n != 0 {
			t.Errorf("%s %s: Scan allocates %v times", j.action, j.payload, n)
		}
	}
}
