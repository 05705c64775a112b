package broker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// rawChargePoint opens an OCPP-J WebSocket with a hand-written handshake
// and sends one Heartbeat, so that the client side of the measurement costs
// only a socket (no goroutines, no buffers) and what is measured is the
// gateway's cost of a connected charge point.
func rawChargePoint(addr, cid string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c, "GET /ocpp/%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n", cid, addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("handshake %s: %v %v", cid, resp, err)
	}
	payload := []byte(`[2,"1","Heartbeat",{}]`)
	frame := []byte{0x81, 0x80 | byte(len(payload)), 0, 0, 0, 0} // text, masked with a zero key
	if _, err := c.Write(append(frame, payload...)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// BenchmarkIdleChargePoints reports what one connected, idle charge point
// costs the gateway: heap and stack bytes and goroutines, measured as the
// difference before and after connecting b.N charge points (run with
// -benchtime=2000x for a stable figure). The baseline is the same
// handshake and Heartbeat against a bare coder/websocket server on
// net/http that only reads: the floor any gateway on these libraries pays.
func BenchmarkIdleChargePoints(b *testing.B) {
	b.Run("gateway", benchGateway)
	b.Run("baseline-websocket", benchBareWebSocket)
}

func benchBareWebSocket(b *testing.B) {
	var frames atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"ocpp1.6"}})
		if err != nil {
			return
		}
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				return
			}
			frames.Add(1)
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	measureIdle(b, ln.Addr().String(), func() int64 { return frames.Load() })
}

func benchGateway(b *testing.B) {
	o := DefaultOptions()
	o.MQTTAddr, o.MQTTWSAddr, o.HTTPAddr = "", "", ""
	o.OCPPAddr = "127.0.0.1:0"
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	br, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	defer br.Shutdown(b.Context())
	measureIdle(b, br.Addr(ListenerOCPP).String(), func() int64 { return int64(br.Stats().OCPP.FramesIn["call"]) })
}

// measureIdle connects b.N raw charge points to addr, waits until frames()
// counts each one's Heartbeat, and reports the cost per charge point.
func measureIdle(b *testing.B, addr string, frames func() int64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	b.ResetTimer()
	conns := make([]net.Conn, 0, b.N)
	for i := range b.N {
		c, err := rawChargePoint(addr, fmt.Sprintf("CP%06d", i))
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}
	deadline := time.Now().Add(time.Minute)
	for frames() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d heartbeats arrived", frames(), b.N)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	n := float64(b.N)
	heap := float64(after.HeapInuse) - float64(before.HeapInuse)
	stack := float64(after.StackInuse) - float64(before.StackInuse)
	b.ReportMetric(heap/n, "heap-B/cp")
	b.ReportMetric(stack/n, "stack-B/cp")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/cp")
	if f := os.Getenv("CHARGEMQ_HEAP_PROFILE"); f != "" {
		if w, err := os.Create(f); err == nil {
			pprof.WriteHeapProfile(w)
			w.Close()
		}
	}
	for _, c := range conns {
		c.Close()
	}
}
