package broker

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"

	"github.com/chargemq/chargemq/ocpp"
)

// ListenerPprof is the profiling listener's name on the "listening" line.
const ListenerPprof = "pprof"

// checkPprofAddr refuses a profiling address off the loopback network:
// the endpoints show the process's memory and can keep it busy profiling.
func checkPprofAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listeners.pprof: %w", err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listeners.pprof: %q must be a loopback address such as 127.0.0.1:6060 "+
			"(the profiling endpoints expose the process's memory)", addr)
	}
	return nil
}

// pprofHandler serves Go's profiling endpoints under /debug/pprof/.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// maxLoggedPayload is how much of a payload --log-frames writes.
const maxLoggedPayload = 256

// onFrame is told every OCPP frame (ocpp.Options.OnFrame): it counts it
// in the metrics, feeds the event stream and, with --log-frames, the
// debug log. It runs on the
// connection's goroutines and never blocks.
func (b *Broker) onFrame(cid string, f ocpp.FrameRecord, payload []byte) {
	b.metrics.frame(f.Direction, f.Type, f.Action)
	if b.events.active() {
		rec := f // a copy, so that f is not moved to the heap for every frame when nobody listens
		b.events.publish(Event{Type: "frame", CID: cid, Time: rec.Time, Frame: &rec}, payload)
	}
	if b.opts.LogFrames {
		if len(payload) > maxLoggedPayload {
			payload = payload[:maxLoggedPayload]
		}
		b.log.Debug("frame", "cid", cid, "direction", f.Direction, "type", f.Type, "action", f.Action,
			"unique_id", f.UniqueID, "size", f.Size, "payload", string(payload))
	}
}
