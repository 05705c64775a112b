package access

// Test scaffolding: a real mochi server on a loopback port, MQTT 5 clients from paho.golang and a
// minimal MQTT 3.1.1 client written with mochi's own packet encoder. (The same file lives in
// hooks/route: hooks may import no project package, test helpers included.)

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

const testTimeout = 5 * time.Second

// startServer runs a mochi server with hooks on 127.0.0.1:<free port> and returns it and its address.
func startServer(t *testing.T, hooks ...mqtt.Hook) (*mqtt.Server, string) {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	for _, h := range hooks {
		if err := srv.AddHook(h, nil); err != nil {
			t.Fatalf("AddHook: %v", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		t.Fatalf("AddListener: %v", err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv, ln.Addr().String()
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// v5Client is a connected paho.golang client whose received messages arrive on msgs.
type v5Client struct {
	*paho.Client
	msgs chan *paho.Publish
}

// dialV5 connects an MQTT 5 client; will may be nil. It returns the CONNACK and the error from
// Connect, and registers the disconnect with t.Cleanup.
func dialV5(t *testing.T, addr, id string, will *paho.WillMessage) (*v5Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &v5Client{msgs: make(chan *paho.Publish, 100)}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				c.msgs <- pr.Packet
				return true, nil
			},
		},
	})
	ca, err := c.Connect(testContext(t), &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30, WillMessage: will})
	if err == nil {
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	} else {
		_ = conn.Close()
	}
	return c, ca, err
}

func mustDialV5(t *testing.T, addr, id string) *v5Client {
	t.Helper()
	c, _, err := dialV5(t, addr, id, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c
}

func (c *v5Client) subscribe(t *testing.T, filter string) {
	t.Helper()
	sa, err := c.Subscribe(testContext(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	if sa.Reasons[0] >= 0x80 {
		t.Fatalf("subscribe %s refused: %#x", filter, sa.Reasons[0])
	}
}

// publish publishes and returns the PUBACK reason code (0 for QoS 0 or success).
func (c *v5Client) publish(t *testing.T, topic string, qos byte, retain bool, payload string) byte {
	t.Helper()
	resp, err := c.Publish(testContext(t), &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)})
	if resp != nil {
		return resp.ReasonCode
	}
	if err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return 0
}

// next waits for the next message received by c.
func (c *v5Client) next(t *testing.T) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(testTimeout):
		t.Fatal("no message received in time")
		return nil
	}
}

// expectNext fails unless the next message received by c is on topic with payload.
func (c *v5Client) expectNext(t *testing.T, topic, payload string) {
	t.Helper()
	m := c.next(t)
	if m.Topic != topic || string(m.Payload) != payload {
		t.Fatalf("received %s %q, want %s %q", m.Topic, m.Payload, topic, payload)
	}
}

// v3Client is a minimal MQTT 3.1.1 client over a raw TCP connection.
type v3Client struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialV3 connects with MQTT 3.1.1 and returns the client and the CONNACK return code.
func dialV3(t *testing.T, addr, id string, will *packets.ConnectParams) (*v3Client, byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &v3Client{conn: conn, r: bufio.NewReader(conn)}
	params := packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: id, Clean: true, Keepalive: 30}
	if will != nil {
		params.WillFlag, params.WillTopic, params.WillPayload = true, will.WillTopic, will.WillPayload
		params.WillQos, params.WillRetain = will.WillQos, will.WillRetain
	}
	c.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: params})
	pk, err := c.read()
	if err != nil || pk.FixedHeader.Type != packets.Connack {
		t.Fatalf("connack: %v %v", pk.FixedHeader.Type, err)
	}
	return c, pk.ReasonCode
}

func (c *v3Client) send(t *testing.T, pk packets.Packet) {
	t.Helper()
	pk.ProtocolVersion = 4
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	default:
		err = fmt.Errorf("cannot encode type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(testTimeout))
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func (c *v3Client) publish(t *testing.T, topic string, qos byte, id uint16, payload string) {
	t.Helper()
	c.send(t, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic, PacketID: id, Payload: []byte(payload),
	})
}

// read reads one packet, or returns an error (io.EOF when the server closed the connection).
func (c *v3Client) read() (packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(testTimeout))
	var pk packets.Packet
	hb, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, err := binary.ReadUvarint(c.r) // MQTT's remaining length is the same base-128 varint
	if err != nil {
		return pk, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = 4
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	}
	return pk, err
}

// expectClosed fails unless the server closes the connection before sending anything else than
// a DISCONNECT (which mochi sends to 3.1.1 clients too, though 3.1.1 has no server DISCONNECT).
func (c *v3Client) expectClosed(t *testing.T) {
	t.Helper()
	pk, err := c.read()
	if err == nil && pk.FixedHeader.Type == packets.Disconnect {
		pk, err = c.read()
	}
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("received packet type %d, want the connection closed", pk.FixedHeader.Type)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatal("connection still open")
	}
}

// expectPacket fails unless the next packet has type typ; it returns it.
func (c *v3Client) expectPacket(t *testing.T, typ byte) packets.Packet {
	t.Helper()
	pk, err := c.read()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if pk.FixedHeader.Type != typ {
		t.Fatalf("received packet type %d, want %d", pk.FixedHeader.Type, typ)
	}
	return pk
}
