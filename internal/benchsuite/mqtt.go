package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// mqttClient is one paho.golang (MQTT 5) connection of the suite.
type mqttClient struct {
	c   *paho.Client
	mu  sync.Mutex
	err error // the first error paho reported, nil while connected
}

// dialMQTT connects to addr as id; onMessage (when not nil) sees every message received, on
// paho's delivery goroutine.
func dialMQTT(ctx context.Context, addr, id string, onMessage func(*paho.Publish)) (*mqttClient, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt %s: %w", id, err)
	}
	m := &mqttClient{}
	cfg := paho.ClientConfig{
		Conn:          conn,
		OnClientError: func(err error) { m.fail(err) },
		OnServerDisconnect: func(d *paho.Disconnect) {
			m.fail(fmt.Errorf("disconnected by the broker, reason 0x%02x", d.ReasonCode))
		},
	}
	if onMessage != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			onMessage(pr.Packet)
			return true, nil
		}}
	}
	m.c = paho.NewClient(cfg)
	ack, err := m.c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
	if err != nil || ack.ReasonCode != 0 {
		conn.Close()
		if err == nil {
			err = fmt.Errorf("CONNACK reason 0x%02x", ack.ReasonCode)
		}
		return nil, fmt.Errorf("mqtt %s: %w", id, err)
	}
	return m, nil
}

func (m *mqttClient) fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil {
		m.err = err
	}
}

// failed returns the first error paho reported.
func (m *mqttClient) failed() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// subscribe subscribes to filter at qos and checks the grant.
func (m *mqttClient) subscribe(ctx context.Context, filter string, qos byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := m.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	if len(ack.Reasons) != 1 || ack.Reasons[0] != qos {
		return fmt.Errorf("subscribe %s at QoS %d: granted %v", filter, qos, ack.Reasons)
	}
	return nil
}

// close disconnects and waits for paho's goroutines.
func (m *mqttClient) close() { _ = m.c.Disconnect(&paho.Disconnect{ReasonCode: 0}) }

// counter is a subscriber's tally of deliveries.
type counter struct {
	msgs, bytes atomic.Int64
}

func (c *counter) add(p *paho.Publish) {
	c.msgs.Add(1)
	c.bytes.Add(int64(len(p.Payload)))
}

// perMsgBytes is the mean payload of n messages of b bytes in total.
func perMsgBytes(b, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(b) / float64(n)
}

// awaitDrain waits until c has counted want messages, or has counted nothing new for quiet,
// or for at most limit; it returns the count.
func (c *counter) awaitDrain(ctx context.Context, want int64, quiet, limit time.Duration) int64 {
	end := time.Now().Add(limit)
	last, lastChange := c.msgs.Load(), time.Now()
	for {
		n := c.msgs.Load()
		if n != last {
			last, lastChange = n, time.Now()
		}
		if n >= want || time.Since(lastChange) > quiet || time.Now().After(end) {
			return n
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return n
		}
	}
}

// heartbeatMessage is the exact payload the gateway publishes for a charge point's Heartbeat
// CALL with UniqueId uid (broker/codec.go appendUpstream; the simulator numbers its calls).
func heartbeatMessage(uid uint64) []byte {
	b := append([]byte(nil), `{"MessageTypeId":2,"UniqueId":"`...)
	b = strconv.AppendUint(b, uid, 10)
	return append(b, `","Action":"Heartbeat","Payload":{}}`...)
}

// maxLate is how far behind its schedule a publisher may fall before it skips slots instead of
// sending them in a burst (the simulator's rule too).
const maxLate = 100 * time.Millisecond

// publishLoad is the plain-MQTT load: publishers clients, each publishing its share of rate on
// topics prefix+id for ids it owns, round-robin, each topic numbering its messages from 1 as
// a charge point numbers its calls.
type publishLoad struct {
	clients []*mqttClient
	rate    float64
	qos     byte
	topics  []string

	sent, skipped, failed atomic.Int64
}

// run publishes until stop is closed or ctx ends, and returns when every publisher has
// returned. QoS 1 and 2 publishes are asynchronous (paho keeps up to the broker's Receive
// Maximum in flight and blocks beyond it), so one slow acknowledgement does not hold the
// schedule.
func (l *publishLoad) run(ctx context.Context, stop <-chan struct{}) error {
	var wg sync.WaitGroup
	errs := make([]error, len(l.clients))
	start := time.Now()
	for i, c := range l.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.publisher(ctx, stop, c, i, start)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (l *publishLoad) publisher(ctx context.Context, stop <-chan struct{}, c *mqttClient, i int, start time.Time) error {
	n := len(l.clients)
	var mine []string
	for t := i; t < len(l.topics); t += n {
		mine = append(mine, l.topics[t])
	}
	if len(mine) == 0 {
		return nil
	}
	seq := make([]uint64, len(mine))
	interval := time.Duration(float64(time.Second) * float64(n) / l.rate)
	// Offset each publisher by its share of one interval, so together they are evenly spaced.
	start = start.Add(interval * time.Duration(i) / time.Duration(n))
	timer := time.NewTimer(0)
	defer timer.Stop()
	method := paho.PublishMethod_AsyncSend
	if l.qos == 0 {
		method = paho.PublishMethod_Blocking // a QoS 0 publish is one write either way
	}
	for k := int64(0); ; k++ {
		due := start.Add(time.Duration(k) * interval)
		if late := time.Since(due); late > maxLate {
			skip := int64(late / interval)
			l.skipped.Add(skip)
			k += skip
			due = start.Add(time.Duration(k) * interval)
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-stop:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		} else {
			select {
			case <-stop:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			default:
			}
		}
		t := int(k % int64(len(mine)))
		seq[t]++
		_, err := c.c.PublishWithOptions(ctx, &paho.Publish{Topic: mine[t], QoS: l.qos, Payload: heartbeatMessage(seq[t])},
			paho.PublishOptions{Method: method})
		if err != nil {
			l.failed.Add(1)
			if cerr := c.failed(); cerr != nil {
				return fmt.Errorf("publisher %d: %w", i, cerr)
			}
			continue
		}
		l.sent.Add(1)
	}
}
