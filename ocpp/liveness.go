package ocpp

import (
	"context"
	"encoding/json"
	"time"

	"github.com/coder/websocket"
)

// Liveness. A connection is watched by one timer, not reset per frame: the
// reader stamps lastActive, and when the timer fires it either finds
// activity since and sleeps for the rest of the window, or closes. Before
// the first OCPP frame the window is idle_timeout, a fixed deadline from
// the upgrade (pings do not count); after it, heartbeat interval × (1 +
// backoff) since the last frame, ping or pong.

// touch records activity from the charge point.
func (c *conn) touch() { c.lastActive.Store(time.Now().UnixNano()) }

// startWatchdog arms the idle deadline for the first frame.
func (c *conn) startWatchdog() {
	c.heartbeat.Store(int64(c.srv.opts.HeartbeatInterval))
	c.touch()
	d := c.srv.opts.IdleTimeout
	if d <= 0 {
		c.gotFrame.Store(true) // no idle deadline: the heartbeat window applies at once
		d = c.heartbeatWindow()
	}
	if d > 0 {
		c.watchdog.Store(time.AfterFunc(d, c.checkLiveness))
	}
}

// heartbeatWindow is how long the charge point may stay silent.
func (c *conn) heartbeatWindow() time.Duration {
	iv := time.Duration(c.heartbeat.Load())
	if iv <= 0 {
		return 0
	}
	return iv * time.Duration(1+c.srv.opts.HeartbeatBackoff)
}

func (c *conn) checkLiveness() {
	if !c.srv.gate.enter() {
		return // Shutdown is closing every connection
	}
	defer c.srv.gate.leave()
	select {
	case <-c.done:
		return
	default:
	}
	if !c.gotFrame.Load() {
		if c.unproven.Load() {
			// The proof deadline, as long, closes it as auth_failed: a
			// charge point bound to its serial that sends nothing has not
			// proven it.
			return
		}
		c.log.Info("no OCPP frame within idle_timeout")
		c.shut(ReasonIdleTimeout, websocket.StatusNormalClosure)
		return
	}
	window := c.heartbeatWindow()
	if window <= 0 {
		return
	}
	silent := time.Since(time.Unix(0, c.lastActive.Load()))
	if silent >= window {
		c.log.Info("charge point silent for longer than the heartbeat window", "silent", silent.Round(time.Millisecond), "window", window)
		c.shut(ReasonHeartbeatTimeout, websocket.StatusNormalClosure)
		return
	}
	c.watchdog.Load().Reset(window - silent)
}

// firstFrame switches the watchdog from the idle deadline to the heartbeat
// window, once.
func (c *conn) firstFrame() {
	if c.gotFrame.Swap(true) {
		return
	}
	t := c.watchdog.Load()
	if w := c.heartbeatWindow(); w > 0 {
		t.Reset(w)
	} else {
		t.Stop()
	}
}

// stopWatchdog is called when the connection ends.
func (c *conn) stopWatchdog() {
	if t := c.watchdog.Load(); t != nil {
		t.Stop()
	}
}

// setHeartbeat changes the interval the charge point was told to use.
// Values ≤ 0 keep the current one.
func (c *conn) setHeartbeat(seconds float64) {
	if seconds <= 0 || seconds > 1e6 {
		return
	}
	d := time.Duration(seconds * float64(time.Second))
	if time.Duration(c.heartbeat.Swap(int64(d))) == d {
		return
	}
	c.log.Debug("heartbeat interval changed", "interval", d)
	if t := c.watchdog.Load(); t != nil && c.gotFrame.Load() {
		t.Reset(c.heartbeatWindow()) // checkLiveness measures from the last activity
	}
}

// watchAnswer follows the heartbeat interval the central system gives in
// an Accepted BootNotification answer [OCPP 1.6 §4.2].
func (c *conn) watchAnswer(action string, payload json.RawMessage) {
	if action != "BootNotification" {
		return
	}
	var p struct {
		Status   string  `json:"status"`
		Interval float64 `json:"interval"`
	}
	if json.Unmarshal(payload, &p) == nil && p.Status == "Accepted" {
		c.setHeartbeat(p.Interval)
	}
}

// watchCommandAnswer follows a ChangeConfiguration of HeartbeatInterval
// that the charge point accepted [OCPP 1.6 §9.1.10].
func (c *conn) watchCommandAnswer(cmd *Command, answer *Frame) {
	if cmd.Frame.Action != "ChangeConfiguration" || answer.Type != TypeCallResult {
		return
	}
	var req struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	var res struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(cmd.Frame.Payload, &req) != nil || req.Key != "HeartbeatInterval" ||
		json.Unmarshal(answer.Payload, &res) != nil || res.Status != "Accepted" {
		return
	}
	var seconds float64
	if json.Unmarshal([]byte(req.Value), &seconds) == nil {
		c.setHeartbeat(seconds)
	}
}

// pingLoop sends WebSocket pings when ws_ping_interval is set; their pongs
// count as activity. It runs only then, so by default a connection costs
// two goroutines.
func (c *conn) pingLoop(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			_ = c.ws.Ping(ctx) // the pong is counted by OnPongReceived
			cancel()
		case <-c.done:
			return
		}
	}
}
