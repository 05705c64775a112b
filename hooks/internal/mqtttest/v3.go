package mqtttest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// V3Client is a minimal MQTT 3.1.1 client over a raw TCP connection. paho.golang speaks only
// MQTT 5, and 3.1.1 clients get different answers (no reason codes: a refused QoS 1 publish
// closes the connection), so the hooks are tested with both.
type V3Client struct {
	conn net.Conn
	r    *bufio.Reader
}

// DialV3 connects with MQTT 3.1.1 (clean session) and returns the client and the CONNACK
// return code, so that tests can assert on refused connects. Of will, only the Will fields are
// used; nil means no Will. It fails the test unless a CONNACK arrives; t.Cleanup closes the
// connection.
func DialV3(t testing.TB, addr, id string, will *packets.ConnectParams) (*V3Client, byte) {
	t.Helper()
	params := packets.ConnectParams{ClientIdentifier: id, Clean: true}
	if will != nil {
		params.WillFlag, params.WillTopic, params.WillPayload = true, will.WillTopic, will.WillPayload
		params.WillQos, params.WillRetain = will.WillQos, will.WillRetain
	}
	return DialV3Params(t, addr, params)
}

// DialV3Params is DialV3 for a CONNECT the test spells out: credentials, a persistent session
// (Clean false), a Will (WillFlag and the Will fields). An empty ProtocolName is "MQTT" and a zero
// Keepalive 30 s.
func DialV3Params(t testing.TB, addr string, params packets.ConnectParams) (*V3Client, byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &V3Client{conn: conn, r: bufio.NewReader(conn)}
	if len(params.ProtocolName) == 0 {
		params.ProtocolName = []byte("MQTT")
	}
	if params.Keepalive == 0 {
		params.Keepalive = 30
	}
	c.Send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: params})
	pk, err := c.Read()
	if err != nil || pk.FixedHeader.Type != packets.Connack {
		t.Fatalf("connack: %v %v", pk.FixedHeader.Type, err)
	}
	return c, pk.ReasonCode
}

// Send encodes pk as MQTT 3.1.1 and writes it, for packets the other helpers do not build (a
// retained publish, say). Only CONNECT, PUBLISH, PUBACK, PUBREL, SUBSCRIBE and DISCONNECT can be
// encoded; anything else, or a failed write, fails the test.
func (c *V3Client) Send(t testing.TB, pk packets.Packet) {
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
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("cannot encode type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// Publish sends a non-retained PUBLISH with packet identifier id (ignored at QoS 0). It does not
// wait for an acknowledgement: a test reads that with ExpectPacket, or ExpectClosed.
func (c *V3Client) Publish(t testing.TB, topic string, qos byte, id uint16, payload string) {
	t.Helper()
	c.Send(t, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic, PacketID: id, Payload: []byte(payload),
	})
}

// Subscribe subscribes to filters at QoS 1 with packet identifier id and returns the SUBACK's
// return codes, one per filter (0x80 for a refused one), so that tests can assert on refusals. It
// fails the test unless a SUBACK is the next packet (so subscribe before anything is delivered).
func (c *V3Client) Subscribe(t testing.TB, id uint16, filters ...string) []byte {
	t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	c.Send(t, pk)
	ack := c.ExpectPacket(t, packets.Suback)
	if ack.PacketID != id || len(ack.ReasonCodes) != len(filters) {
		t.Fatalf("SUBACK for packet %d with %d codes, want %d and %d", ack.PacketID, len(ack.ReasonCodes), id, len(filters))
	}
	return ack.ReasonCodes
}

// ExpectNext fails the test unless the next packet is a PUBLISH on topic with payload; it
// acknowledges a QoS 1 message and returns the message. Expecting a marker published last proves
// that nothing published before it arrived.
func (c *V3Client) ExpectNext(t testing.TB, topic, payload string) packets.Packet {
	t.Helper()
	pk := c.ExpectPacket(t, packets.Publish)
	if pk.TopicName != topic || string(pk.Payload) != payload {
		t.Fatalf("received %s %q, want %s %q", pk.TopicName, pk.Payload, topic, payload)
	}
	if pk.FixedHeader.Qos == 1 {
		c.Send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
	return pk
}

// Disconnect sends DISCONNECT and closes the connection, ending the client as a well-behaved
// client does (mochi then publishes no Will).
func (c *V3Client) Disconnect(t testing.TB) {
	t.Helper()
	c.Send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	_ = c.conn.Close()
}

// Read reads one packet within Timeout, decoding the types a 3.1.1 client receives that the tests
// look into (CONNACK, PUBLISH, PUBACK, PUBREC, PUBCOMP, SUBACK); of others only the fixed header
// is set. It returns the error instead of failing, io.EOF when the server closed the connection,
// so that tests can tell a close from a timeout.
func (c *V3Client) Read() (packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(Timeout))
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

// ExpectClosed fails the test unless the server closes the connection before sending anything
// else than a DISCONNECT (which mochi sends to 3.1.1 clients too, though 3.1.1 has no server
// DISCONNECT): that is how a 3.1.1 client learns that a QoS 1 or 2 publish was refused.
func (c *V3Client) ExpectClosed(t testing.TB) {
	t.Helper()
	pk, err := c.Read()
	if err == nil && pk.FixedHeader.Type == packets.Disconnect {
		pk, err = c.Read()
	}
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("received packet type %d, want the connection closed", pk.FixedHeader.Type)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatal("connection still open")
	}
}

// ExpectPacket fails the test unless the next packet arrives in time and has type typ (one of
// the packets constants); it returns it so that the test can check, say, its packet identifier.
func (c *V3Client) ExpectPacket(t testing.TB, typ byte) packets.Packet {
	t.Helper()
	pk, err := c.Read()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if pk.FixedHeader.Type != typ {
		t.Fatalf("received packet type %d, want %d", pk.FixedHeader.Type, typ)
	}
	return pk
}
