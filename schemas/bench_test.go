package schemas

import (
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

// BenchmarkCheck measures one valid payload per iteration on one goroutine; TestConcurrentCheck
// covers concurrent use.
func BenchmarkCheck(b *testing.B) {
	s := set16(b)
	for _, bc := range []struct {
		name    string
		action  string
		payload []byte
	}{
		{"Heartbeat", "Heartbeat", []byte(`{}`)},
		{"StatusNotification", "StatusNotification", []byte(`{"connectorId":1,"errorCode":"NoError","status":"Charging","timestamp":"2024-05-01T10:00:00Z","info":"ok"}`)},
		{"MeterValues20", "MeterValues", meterValues(20)},
	} {
		if f := s.Check(bc.action, false, bc.payload); f != nil {
			b.Fatalf("%s: %v", bc.name, f)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.payload)))
			for b.Loop() {
				if s.Check(bc.action, false, bc.payload) != nil {
					b.Fatal("invalid")
				}
			}
		})
	}
}
