//go:build unix

package broker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/chargemq/chargemq/ocpp"
)

const (
	hopTopic = "ocpp/cp/CP1"
	hopCID   = "CP1"
	// hopWindow bounds the messages sent and not yet read by the
	// subscriber. It stays under the subscriber's mochi queue
	// (MaximumClientWritesPending, the broker's MaxQueuedMessages), so
	// mochi never drops a message for a full queue.
	hopWindow = 256
	// hopAckWindow bounds the network publisher's QoS 1 and 2 publishes not yet
	// acknowledged, as a client's in-flight limit does.
	hopAckWindow = 64
	// hopStall is how long a wait may go without progress before the
	// benchmark fails.
	hopStall = 30 * time.Second
)

// BenchmarkMochiHop measures one message's hop through the embedded mochi
// server to a subscriber on TCP, entered the two ways it can be: "inject"
// is how the gateway publishes a charge point's frame (InjectPacket from an
// inline virtual client, built by the bridge's own pool), "network" is an
// MQTT 3.1.1 client publishing the same message over TCP with the same
// client id. The message is the gateway's MQTT payload of a MeterValues
// frame with 20 sampled values; each QoS is published to a subscription of
// the same QoS. The server is configured as the broker configures it
// (queue and in-flight bounds, no forced expiry), with a hook that allows
// everyone instead of the broker's ACL and routing hooks.
//
// A message counts once the subscriber has read it (at QoS 1 and 2 it also
// acknowledges it, batching PUBACKs, or PUBRECs and PUBCOMPs, as a client's
// buffered writer would),
// and at most hopWindow messages are on their way at once, so mochi drops
// none and the numbers are of delivered messages.
//
// The hop runs on several goroutines (the publisher, mochi's reader and
// writer, the subscriber), so ns/op is the pipeline's throughput; what one
// way does on more goroutines than the other hides in it on a multi-core
// machine. cpu-ns/msg is the process's CPU time (user+sys, every
// goroutine, the test's own clients included) per message, the figure to
// compare for the work each way costs; allocs/op counts the whole process
// too.
func BenchmarkMochiHop(b *testing.B) {
	f, err := ocpp.ParseFrame([]byte(benchMeterValues(20)))
	if err != nil {
		b.Fatal(err)
	}
	payload := appendUpstream(nil, &ocpp.Inbound{Frame: f})
	for _, qos := range []byte{0, 1, 2} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			b.Run("inject", func(b *testing.B) { benchHopInject(b, qos, payload) })
			b.Run("network", func(b *testing.B) { benchHopNetwork(b, qos, payload) })
		})
	}
}

// benchHopInject publishes as bridge.publish does.
func benchHopInject(b *testing.B, qos byte, payload []byte) {
	h := newHop(b, qos, payload)
	br := newBridge(h.srv, topics{}, qos, slog.New(slog.DiscardHandler))
	cl := br.clients.Get().(*mqtt.Client)
	cl.ID = hopCID
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   hopTopic,
		Payload:     payload,
	}
	if qos > 0 {
		pk.PacketID = 1
	}
	h.run(b, func() error {
		if err := h.delivered.acquire(); err != nil {
			return err
		}
		return h.srv.InjectPacket(cl, pk)
	}, nil)
}

// benchHopNetwork publishes from a TCP client that writes each PUBLISH as
// it is made, one write per message, and at QoS 1 and 2 reads the
// acknowledgements on its own goroutine (answering a PUBREC with PUBREL
// there).
func benchHopNetwork(b *testing.B, qos byte, payload []byte) {
	h := newHop(b, qos, payload)
	pub := dialHopPeer(b, h.addr, hopCID)
	pub.acks = bufio.NewWriter(pub.conn) // PUBRELs, at QoS 2
	acks := newHopSlots(hopAckWindow)
	pub.serve(b, acks, func(fh packets.FixedHeader, body []byte) error {
		switch {
		case qos == 2 && fh.Type == packets.Pubrec && len(body) == 2:
			pub.acks.Write([]byte{packets.Pubrel<<4 | 2, 2, body[0], body[1]}) // [MQTT-3.6.1-1]
			return nil
		case qos == 1 && fh.Type == packets.Puback, qos == 2 && fh.Type == packets.Pubcomp:
			if !acks.release() {
				return fmt.Errorf("publisher: acknowledgement for nothing in flight")
			}
			return nil
		}
		return fmt.Errorf("publisher: unexpected packet type %d at QoS %d", fh.Type, qos)
	})

	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:       hopTopic,
		Payload:         payload,
		ProtocolVersion: 4,
	}
	if qos > 0 {
		pk.PacketID = 1
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		b.Fatal(err)
	}
	msg := buf.Bytes()
	idAt := len(msg) - len(payload) - 2 // MQTT 3.1.1: the packet id comes just before the payload
	var id uint16
	h.run(b, func() error {
		if err := h.delivered.acquire(); err != nil {
			return err
		}
		if qos > 0 {
			if err := acks.acquire(); err != nil {
				return err
			}
			id = id%math.MaxUint16 + 1
			binary.BigEndian.PutUint16(msg[idAt:], id)
		}
		_, err := pub.conn.Write(msg)
		return err
	}, acks)
}

// hop is one sub-benchmark's mochi server and subscriber.
type hop struct {
	srv  *mqtt.Server
	addr string
	// delivered holds a slot for each message sent and not yet read by
	// the subscriber.
	delivered *hopSlots
}

// newHop starts a mochi server on a loopback port and subscribes to
// hopTopic at qos from a TCP client that checks and counts what it reads.
// Both are closed when b ends.
func newHop(b *testing.B, qos byte, payload []byte) *hop {
	def := DefaultOptions().MQTT
	if hopWindow >= def.MaxQueuedMessages {
		b.Fatalf("hopWindow %d must stay under the subscriber's queue (%d)", hopWindow, def.MaxQueuedMessages)
	}
	srv := mqtt.New(&mqtt.Options{Capabilities: capabilities(def), Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(hopAllowAll), nil); err != nil {
		b.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil { // binds the port
		b.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() }) // registered first, so it runs after the clients' cleanups
	h := &hop{srv: srv, addr: tcp.Address(), delivered: newHopSlots(hopWindow)}

	sub := dialHopPeer(b, h.addr, "subscriber")
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, // [MQTT-3.8.1-1]
		PacketID:        1,
		ProtocolVersion: 4,
		Filters:         packets.Subscriptions{{Filter: hopTopic, Qos: qos}},
	}
	var buf bytes.Buffer
	if err := pk.SubscribeEncode(&buf); err != nil {
		b.Fatal(err)
	}
	sub.conn.SetDeadline(time.Now().Add(hopStall))
	if _, err := sub.conn.Write(buf.Bytes()); err != nil {
		b.Fatal(err)
	}
	fh, body, err := sub.read()
	if err != nil || fh.Type != packets.Suback || len(body) != 3 || body[2] != qos {
		b.Fatalf("SUBACK: %+v % x %v", fh, body, err)
	}
	sub.conn.SetDeadline(time.Time{})

	// What the subscriber must read: the topic, the packet id at QoS 1 and 2,
	// the payload.
	idLen := 0
	if qos > 0 {
		idLen = 2
	}
	bodyLen := 2 + len(hopTopic) + idLen + len(payload)
	checked := false
	sub.acks = bufio.NewWriter(sub.conn)
	sub.serve(b, h.delivered, func(fh packets.FixedHeader, body []byte) error {
		if qos == 2 && fh.Type == packets.Pubrel && len(body) == 2 {
			// The exchange ends here: counting the message only now keeps
			// mochi's in-flight messages within the window too.
			sub.acks.Write([]byte{packets.Pubcomp << 4, 2, body[0], body[1]})
			if !h.delivered.release() {
				return fmt.Errorf("subscriber: a PUBREL for a message that was not sent")
			}
			return nil
		}
		if fh.Type != packets.Publish || fh.Qos != qos || len(body) != bodyLen {
			return fmt.Errorf("subscriber: unexpected packet %+v of %d bytes", fh, len(body))
		}
		if !checked {
			if string(body[2:2+len(hopTopic)]) != hopTopic || !bytes.Equal(body[2+len(hopTopic)+idLen:], payload) {
				return fmt.Errorf("subscriber: unexpected message % x", body)
			}
			checked = true
		}
		if qos > 0 {
			id := body[2+len(hopTopic) : 2+len(hopTopic)+2]
			if qos == 2 {
				// PUBREL and PUBCOMP follow; the message is counted at the PUBREL.
				sub.acks.Write([]byte{packets.Pubrec << 4, 2, id[0], id[1]})
				return nil
			}
			sub.acks.Write([]byte{packets.Puback << 4, 2, id[0], id[1]})
		}
		if !h.delivered.release() {
			return fmt.Errorf("subscriber: a message that was not sent")
		}
		return nil
	})
	return h
}

// hopAllowAll lets every client connect, publish and subscribe, as
// mochi's auth.AllowHook does (that package needs a module this one does
// not require).
type hopAllowAll struct{ mqtt.HookBase }

func (*hopAllowAll) ID() string { return "hop-allow-all" }

func (*hopAllowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*hopAllowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*hopAllowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// run measures send in b.Loop, then waits for what is still in flight
// (timed too: it is part of the work measured) and reports the CPU time
// per message. Each window is drained: delivered, and more if not nil.
func (h *hop) run(b *testing.B, send func() error, more *hopSlots) {
	b.ReportAllocs()
	cpu0 := hopCPUTime(b)
	for b.Loop() {
		if err := send(); err != nil {
			h.fatal(b, err)
		}
	}
	b.StartTimer()
	if err := h.delivered.drain(); err != nil {
		h.fatal(b, err)
	}
	if more != nil {
		if err := more.drain(); err != nil {
			h.fatal(b, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(hopCPUTime(b)-cpu0)/float64(b.N), "cpu-ns/msg")
	if d := atomic.LoadInt64(&h.srv.Info.MessagesDropped) + atomic.LoadInt64(&h.srv.Info.InflightDropped); d > 0 {
		b.Fatalf("mochi dropped %d messages", d)
	}
}

// fatal ends the benchmark with err and mochi's drop counters, the likely
// cause of a stall.
func (h *hop) fatal(b *testing.B, err error) {
	b.Helper()
	b.Fatalf("%v (mochi dropped %d for a full queue, %d over the in-flight limit)", err,
		atomic.LoadInt64(&h.srv.Info.MessagesDropped), atomic.LoadInt64(&h.srv.Info.InflightDropped))
}

// hopCPUTime is the CPU time the process has used so far, user and system.
func hopCPUTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hopSlots is a bounded count of things in flight: the sender takes a
// slot before sending, the receiver's reader gives it back. The reader
// failing, or a wait without progress for hopStall, ends the wait with an
// error instead of hanging the benchmark.
type hopSlots struct {
	slots  chan struct{}
	stall  *time.Timer // used by the sender only
	failed chan struct{}
	once   sync.Once
	err    error // set before failed is closed
}

func newHopSlots(n int) *hopSlots {
	t := time.NewTimer(hopStall)
	t.Stop()
	return &hopSlots{slots: make(chan struct{}, n), stall: t, failed: make(chan struct{})}
}

// acquire takes a slot, waiting for one if the window is full.
func (w *hopSlots) acquire() error {
	select {
	case w.slots <- struct{}{}:
		return nil
	default:
	}
	w.stall.Reset(hopStall)
	defer w.stall.Stop()
	select {
	case w.slots <- struct{}{}:
		return nil
	case <-w.failed:
		return w.err
	case <-w.stall.C:
		return fmt.Errorf("no progress for %v with %d of %d in flight", hopStall, len(w.slots), cap(w.slots))
	}
}

// release gives a slot back; false if none was taken.
func (w *hopSlots) release() bool {
	select {
	case <-w.slots:
		return true
	default:
		return false
	}
}

// drain waits until nothing is in flight: it can take every slot only
// once each has been given back. It leaves the window empty.
func (w *hopSlots) drain() error {
	for range cap(w.slots) {
		if err := w.acquire(); err != nil {
			return err
		}
	}
	for range cap(w.slots) {
		<-w.slots
	}
	return nil
}

// fail ends the waits on w with err (the first one).
func (w *hopSlots) fail(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.failed)
	})
}

// hopPeer is a raw MQTT 3.1.1 client connection of the benchmark's.
type hopPeer struct {
	conn net.Conn
	r    *bufio.Reader
	buf  []byte
	// acks, if set, buffers what the reader writes back; it is flushed
	// whenever the reader has nothing left to read.
	acks *bufio.Writer
}

// dialHopPeer connects to addr as client id (clean session, no keepalive)
// and reads the CONNACK. The connection is closed when b ends.
func dialHopPeer(b *testing.B, addr, id string) *hopPeer {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(hopStall))
	p := &hopPeer{conn: conn, r: bufio.NewReader(conn)}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect:         packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: id},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		b.Fatal(err)
	}
	fh, body, err := p.read()
	if err != nil || fh.Type != packets.Connack || len(body) != 2 || body[1] != 0 {
		b.Fatalf("CONNACK for %s: %+v % x %v", id, fh, body, err)
	}
	conn.SetDeadline(time.Time{})
	return p
}

// read reads one packet; the body is valid until the next read.
func (p *hopPeer) read() (packets.FixedHeader, []byte, error) {
	var fh packets.FixedHeader
	hb, err := p.r.ReadByte()
	if err != nil {
		return fh, nil, err
	}
	if err := fh.Decode(hb); err != nil {
		return fh, nil, err
	}
	n, _, err := packets.DecodeLength(p.r)
	if err != nil {
		return fh, nil, err
	}
	if cap(p.buf) < n {
		p.buf = make([]byte, n)
	}
	body := p.buf[:n]
	_, err = io.ReadFull(p.r, body)
	return fh, body, err
}

// serve reads packets on a goroutine and hands each to handle until the
// connection ends or handle fails; either fails w. The goroutine is waited
// for when b ends (after the connection is closed).
func (p *hopPeer) serve(b *testing.B, w *hopSlots, handle func(packets.FixedHeader, []byte) error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if p.acks != nil && p.acks.Buffered() > 0 && p.r.Buffered() == 0 {
				if err := p.acks.Flush(); err != nil {
					w.fail(err)
					return
				}
			}
			fh, body, err := p.read()
			if err == nil {
				err = handle(fh, body)
			}
			if err != nil {
				w.fail(err)
				return
			}
		}
	}()
	b.Cleanup(func() {
		p.conn.Close()
		<-done
	})
}
