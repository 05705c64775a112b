package mqtttest

import (
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// V5Client is a connected MQTT 5 client (paho.golang) whose received messages are queued for
// Next and ExpectNext, so that tests can assert on what a subscriber got, in order.
type V5Client struct {
	// Paho is the underlying client, for what the helpers do not cover.
	Paho *paho.Client
	msgs chan *paho.Publish
	// disconnects receives the DISCONNECTs the server sends.
	disconnects chan *paho.Disconnect
}

// DialV5 connects an MQTT 5 client with a clean start; will may be nil. It returns the CONNACK
// and the error from Connect rather than failing, so that tests can assert on refused connects.
// A connected client is disconnected by t.Cleanup; a refused one has its connection closed.
func DialV5(t testing.TB, addr, id string, will *paho.WillMessage) (*V5Client, *paho.Connack, error) {
	t.Helper()
	return DialV5Connect(t, addr, &paho.Connect{ClientID: id, CleanStart: true, WillMessage: will})
}

// DialV5Connect is DialV5 for a CONNECT the test spells out: credentials, a resumed session
// (CleanStart false and a session expiry), a Will. A zero KeepAlive is 30 s.
func DialV5Connect(t testing.TB, addr string, cp *paho.Connect) (*V5Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &V5Client{msgs: make(chan *paho.Publish, 100), disconnects: make(chan *paho.Disconnect, 1)}
	c.Paho = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				c.msgs <- pr.Packet
				return true, nil
			},
		},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case c.disconnects <- d:
			default:
			}
		},
	})
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 30
	}
	ca, err := c.Paho.Connect(timeoutContext(t), cp)
	if err == nil {
		t.Cleanup(func() { _ = c.Paho.Disconnect(&paho.Disconnect{}) })
	} else {
		_ = conn.Close()
	}
	return c, ca, err
}

// MustDialV5 is DialV5 without a Will for tests where the connect itself is not under test: it
// fails the test unless the client is connected.
func MustDialV5(t testing.TB, addr, id string) *V5Client {
	t.Helper()
	c, _, err := DialV5(t, addr, id, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c
}

// Subscribe subscribes c to filter at QoS 1 and fails the test unless the SUBACK grants it, so
// that a later missing message cannot be blamed on a refused subscription.
func (c *V5Client) Subscribe(t testing.TB, filter string) {
	t.Helper()
	sa, err := c.Paho.Subscribe(timeoutContext(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	if sa.Reasons[0] >= 0x80 {
		t.Fatalf("subscribe %s refused: %#x", filter, sa.Reasons[0])
	}
}

// SubscribeReason subscribes c to filter at QoS 1 and returns the SUBACK's reason code (0x87 for
// a refused filter), so that tests can assert on refusals; it fails the test unless a SUBACK
// arrives.
func (c *V5Client) SubscribeReason(t testing.TB, filter string) byte {
	t.Helper()
	sa, err := c.Paho.Subscribe(timeoutContext(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa == nil || len(sa.Reasons) != 1 {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	return sa.Reasons[0]
}

// ExpectServerDisconnect waits up to Timeout for a DISCONNECT from the server and returns it; it
// fails the test if none arrives.
func (c *V5Client) ExpectServerDisconnect(t testing.TB) *paho.Disconnect {
	t.Helper()
	select {
	case d := <-c.disconnects:
		return d
	case <-time.After(Timeout):
		t.Fatal("no DISCONNECT received in time")
		return nil
	}
}

// Publish publishes and returns the PUBACK (QoS 1) or PUBREC (QoS 2) reason code, 0 for QoS 0
// or success, so that tests can assert on refusals; it fails the test on any other error.
func (c *V5Client) Publish(t testing.TB, topic string, qos byte, retain bool, payload string) byte {
	t.Helper()
	resp, err := c.Paho.Publish(timeoutContext(t), &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)})
	if resp != nil {
		return resp.ReasonCode
	}
	if err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return 0
}

// Next waits up to Timeout for the next message received by c and returns it; it fails the
// test if none arrives.
func (c *V5Client) Next(t testing.TB) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(Timeout):
		t.Fatal("no message received in time")
		return nil
	}
}

// ExpectNext fails the test unless the next message received by c is on topic with payload.
// Expecting a marker published last proves that nothing published before it arrived.
func (c *V5Client) ExpectNext(t testing.TB, topic, payload string) {
	t.Helper()
	m := c.Next(t)
	if m.Topic != topic || string(m.Payload) != payload {
		t.Fatalf("received %s %q, want %s %q", m.Topic, m.Payload, topic, payload)
	}
}
