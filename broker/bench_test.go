package broker

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chargemq/chargemq/ocpp"
)

// The per-message cost of the gateway, one goroutine, no network: what it
// does with a frame between reading it and handing it to mochi (upstream),
// and between mochi handing it a command and writing it (downstream). Each
// size has a json.Unmarshal baseline of the same bytes in the same run, so
// the ratio is comparable across machines. docs/BENCHMARKS.md has the
// numbers and the command.

// benchMeterValues is a MeterValues CALL with n sampled values of one
// meter value, as a three-phase charger reports them.
func benchMeterValues(n int) string {
	samples := []struct{ measurand, phase, unit, location string }{
		{"Energy.Active.Import.Register", "", "Wh", "Outlet"},
		{"Power.Active.Import", "L1", "W", "Outlet"},
		{"Power.Active.Import", "L2", "W", "Outlet"},
		{"Power.Active.Import", "L3", "W", "Outlet"},
		{"Current.Import", "L1", "A", "Outlet"},
		{"Current.Import", "L2", "A", "Outlet"},
		{"Current.Import", "L3", "A", "Outlet"},
		{"Voltage", "L1-N", "V", "Outlet"},
		{"Voltage", "L2-N", "V", "Outlet"},
		{"Voltage", "L3-N", "V", "Outlet"},
		{"Current.Offered", "", "A", "Outlet"},
		{"Power.Offered", "", "W", "Outlet"},
		{"Frequency", "", "", "Inlet"},
		{"Temperature", "", "Celsius", "Body"},
		{"SoC", "", "Percent", "EV"},
		{"Power.Factor", "", "", "Outlet"},
		{"Energy.Reactive.Import.Register", "", "varh", "Outlet"},
		{"Power.Reactive.Import", "", "var", "Outlet"},
		{"Current.Export", "", "A", "Outlet"},
		{"Energy.Active.Export.Register", "", "Wh", "Outlet"},
	}
	var b strings.Builder
	b.WriteString(`[2,"f6b2a7c4-3d1e-4a57-9c1b-8e0d2f4a6b13","MeterValues",{"connectorId":1,"transactionId":1842,"meterValue":[{"timestamp":"2024-05-01T10:15:00.000Z","sampledValue":[`)
	for i := range n {
		s := samples[i%len(samples)]
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"value":"%d.%d","context":"Sample.Periodic","format":"Raw","measurand":%q`, 1000+i*37, i%10, s.measurand)
		if s.phase != "" {
			fmt.Fprintf(&b, `,"phase":%q`, s.phase)
		}
		fmt.Fprintf(&b, `,"location":%q`, s.location)
		if s.unit != "" {
			fmt.Fprintf(&b, `,"unit":%q`, s.unit)
		}
		b.WriteByte('}')
	}
	b.WriteString(`]}]}]`)
	return b.String()
}

// benchChargingProfile is a SetChargingProfile command with n schedule
// periods, a day's tariff-driven profile.
func benchChargingProfile(n int) string {
	var b strings.Builder
	b.WriteString(`{"MessageTypeId":2,"UniqueId":"0f8e6a52-5b7c-4d2e-9a1f-3c4b5d6e7f80","Action":"SetChargingProfile","Payload":{"connectorId":1,"csChargingProfiles":{"chargingProfileId":7,"stackLevel":1,"chargingProfilePurpose":"TxDefaultProfile","chargingProfileKind":"Absolute","validFrom":"2024-05-01T00:00:00Z","validTo":"2024-05-02T00:00:00Z","chargingSchedule":{"duration":86400,"startSchedule":"2024-05-01T00:00:00Z","chargingRateUnit":"A","minChargingRate":6.0,"chargingSchedulePeriod":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"startPeriod":%d,"limit":%d.%d,"numberPhases":3}`, i*4320, 6+i%26, i%10)
	}
	b.WriteString(`]}}}}`)
	return b.String()
}

type benchCase struct {
	name string
	data []byte
}

var (
	benchUpstream = []benchCase{
		{"Heartbeat", []byte(`[2,"6a8e1f0c-52b4-4b7e-8d3a-9f1c2e4b5a60","Heartbeat",{}]`)},
		{"StatusNotification", []byte(`[2,"3c9d2e7a-1b4f-4e8c-a2d5-7f6b0e1c9d34","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Charging","timestamp":"2024-05-01T10:15:02.512Z","info":"cable locked","vendorId":"com.example"}]`)},
		{"MeterValues20", []byte(benchMeterValues(20))},
	}
	benchDownstream = []benchCase{
		{"Reset", []byte(`{"MessageTypeId":2,"UniqueId":"9b1d4e2f-7a3c-4c5d-8e6f-0a1b2c3d4e5f","Action":"Reset","Payload":{"type":"Soft"}}`)},
		{"RemoteStartTransaction", []byte(`{"MessageTypeId":2,"UniqueId":"5e4d3c2b-1a09-4f8e-b7d6-c5b4a3928170","Action":"RemoteStartTransaction","Payload":{"connectorId":1,"idTag":"04E91C5A2B3F80"}}`)},
		{"SetChargingProfile20", []byte(benchChargingProfile(20))},
	}
)

// upstream is the gateway's work on one frame from a charge point: parse
// it and check the CALL in one pass, as the connection's reader does, and
// write the MQTT payload as bridge.Received does.
func upstream(v schemaValidator, data []byte) ([]byte, error) {
	f, refusal, err := ocpp.ParseCall(data, v)
	if err != nil {
		return nil, err
	}
	if refusal != nil {
		return nil, refusal
	}
	in := ocpp.Inbound{Frame: f}
	return appendUpstream(nil, &in), nil
}

// downstream is the gateway's work on one command from MQTT: decode it
// and check its payload in one pass as bridge.Deliver does, check its
// sender as Server.checkCommand does and encode the frame as Server.Send
// does.
func downstream(v schemaValidator, data []byte) ([]byte, error) {
	cmd, bad := decodeCommand(data, v, ocpp.OCPP16)
	if bad != nil {
		return nil, bad
	}
	f := &cmd.Frame
	if _, fromCS, ok := v.Sender(f.Action); !ok || !fromCS {
		return nil, fmt.Errorf("%s is not a central system's CALL", f.Action)
	}
	if cmd.CheckedAs != ocpp.OCPP16 {
		return nil, fmt.Errorf("%s was not checked while it was decoded", f.Action)
	}
	if cmd.PayloadRefusal != nil {
		return nil, cmd.PayloadRefusal
	}
	return f.AppendJSON(nil), nil
}

// BenchmarkUpstream measures one CALL from a charge point: "gateway" is
// parse + check + translate, the next three are those steps alone, and
// "json.Unmarshal" decodes the same frame into a []any.
func BenchmarkUpstream(b *testing.B) {
	v := testValidator(b)
	for _, bc := range benchUpstream {
		out, err := upstream(v, bc.data)
		if err != nil || !json.Valid(out) {
			b.Fatalf("%s: %v, %q", bc.name, err, out)
		}
		f, _ := ocpp.ParseFrame(bc.data)
		in := ocpp.Inbound{Frame: f}
		b.Run(bc.name, func(b *testing.B) {
			step(b, "gateway", bc.data, func() error { _, err := upstream(v, bc.data); return err })
			step(b, "parse", bc.data, func() error { _, err := ocpp.ParseFrame(bc.data); return err })
			step(b, "check", bc.data, func() error { return nilIfValid(v.Check(f.Action, false, f.Payload)) })
			step(b, "translate", bc.data, func() error { _ = appendUpstream(nil, &in); return nil })
			step(b, "json.Unmarshal", bc.data, func() error { var frame []any; return json.Unmarshal(bc.data, &frame) })
		})
	}
}

// BenchmarkDownstream measures one CALL from MQTT for a charge point:
// "gateway" is decode and check in one pass + encode, the next three are
// decode (without the check), check and encode alone, and "json.Unmarshal" decodes the same message into a
// map[string]any.
func BenchmarkDownstream(b *testing.B) {
	v := testValidator(b)
	for _, bc := range benchDownstream {
		out, err := downstream(v, bc.data)
		if err != nil || !json.Valid(out) {
			b.Fatalf("%s: %v, %q", bc.name, err, out)
		}
		cmd, _ := decodeCommand(bc.data, nil, "")
		f := cmd.Frame
		b.Run(bc.name, func(b *testing.B) {
			step(b, "gateway", bc.data, func() error { _, err := downstream(v, bc.data); return err })
			step(b, "decode", bc.data, func() error {
				if _, bad := decodeCommand(bc.data, nil, ""); bad != nil {
					return bad
				}
				return nil
			})
			step(b, "check", bc.data, func() error { return nilIfValid(v.Check(f.Action, false, f.Payload)) })
			step(b, "encode", bc.data, func() error { _ = f.AppendJSON(nil); return nil })
			step(b, "json.Unmarshal", bc.data, func() error { var cmd map[string]any; return json.Unmarshal(bc.data, &cmd) })
		})
	}
}

// step runs fn as one sub-benchmark over the message data, reporting
// allocations and bytes per second.
func step(b *testing.B, name string, data []byte, fn func() error) {
	b.Run(name, func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := fn(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// nilIfValid turns a nil *CallError into a nil error (not a typed nil).
func nilIfValid(ce *ocpp.CallError) error {
	if ce == nil {
		return nil
	}
	return ce
}

// TestGatewayAllocations holds the per-message allocations the fast path
// reached (docs/BENCHMARKS.md): upstream, the frame's UniqueId, its
// payload and the MQTT message; downstream, the command's UniqueId and
// the frame written. Not parallel: AllocsPerRun counts the whole process.
func TestGatewayAllocations(t *testing.T) {
	v := testValidator(t)
	cases := []struct {
		name string
		fn   func() ([]byte, error)
		max  float64
	}{
		{"upstream MeterValues20", func() ([]byte, error) { return upstream(v, benchUpstream[2].data) }, 3},
		{"upstream Heartbeat", func() ([]byte, error) { return upstream(v, benchUpstream[0].data) }, 3},
		{"downstream SetChargingProfile20", func() ([]byte, error) { return downstream(v, benchDownstream[2].data) }, 2},
		{"downstream Reset", func() ([]byte, error) { return downstream(v, benchDownstream[0].data) }, 2},
	}
	for _, c := range cases {
		if _, err := c.fn(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if n := testing.AllocsPerRun(50, func() { _, _ = c.fn() }); n > c.max {
			t.Errorf("%s: %.0f allocations, want at most %.0f", c.name, n, c.max)
		}
	}
}
