package users

import (
	"container/list"
	"sync"
	"time"
)

// Backoff timing and size. The first failure is free (a typo, or a charger
// trying an old key once), then each failure doubles the wait: 1 s, 2 s, 4 s
// … up to BackoffMax. A key with no failure for BackoffForget is forgotten.
const (
	BackoffBase   = time.Second
	BackoffMax    = 60 * time.Second
	BackoffForget = 10 * time.Minute
	// DefaultBackoffEntries bounds the table of a zero Backoff: about 1 MB.
	DefaultBackoffEntries = 10000
)

// Backoff slows down password guessing with an exponential delay per key.
// The caller asks Allowed before checking a password (and refuses at once,
// without the cost of a check, while the key must wait), then reports the
// outcome with Failed or Succeeded. An attempt refused by Allowed is not a
// failure and does not lengthen the wait.
//
// The key should be the remote address plus the user name, so that chargers
// behind one NAT do not lock each other out and a wrong key on one charger
// does not delay another.
//
// The table holds at most a fixed number of keys; when it is full the key
// whose last failure is oldest is dropped. So an attacker who makes that many
// failed logins between two guesses loses its own entry, but each of those
// logins costs it a check and the caller its rate limits. Expired entries are
// removed lazily by the calls themselves: Backoff has no goroutine.
//
// The zero value is ready to use and holds DefaultBackoffEntries keys; it is
// safe for concurrent use and must not be copied after first use.
type Backoff struct {
	limit int // 0: DefaultBackoffEntries

	mu      sync.Mutex
	entries map[string]*list.Element // guarded by mu; values are *backoffEntry
	order   list.List                // guarded by mu; least recently failed first
}

// backoffEntry is one key's record.
type backoffEntry struct {
	key      string
	failures int
	last     time.Time // of the last failure
	until    time.Time // when the next attempt is allowed
}

// NewBackoff returns a Backoff holding at most limit keys (DefaultBackoffEntries
// if limit <= 0).
func NewBackoff(limit int) *Backoff {
	return &Backoff{limit: limit}
}

// Allowed reports whether key may try a password at now; if not, retryAfter
// is how long it must wait (for a Retry-After header or a log line).
func (b *Backoff) Allowed(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire(now)
	el := b.entries[key]
	if el == nil {
		return true, 0
	}
	e := el.Value.(*backoffEntry)
	if now.Before(e.until) {
		return false, e.until.Sub(now)
	}
	return true, 0
}

// Failed records a failed login for key at now.
func (b *Backoff) Failed(key string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire(now)
	if b.entries == nil {
		b.entries = map[string]*list.Element{}
	}
	el := b.entries[key]
	if el == nil {
		for len(b.entries) >= b.limitOrDefault() {
			b.remove(b.order.Front())
		}
		el = b.order.PushBack(&backoffEntry{key: key})
		b.entries[key] = el
	} else {
		b.order.MoveToBack(el)
	}
	e := el.Value.(*backoffEntry)
	e.failures++
	e.last = now
	e.until = now.Add(backoffDelay(e.failures))
}

// Succeeded forgets key: after a good login the next mistake is free again.
func (b *Backoff) Succeeded(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if el := b.entries[key]; el != nil {
		b.remove(el)
	}
}

// Len is the number of keys held, for metrics.
func (b *Backoff) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.entries)
}

// limitOrDefault is the bound on the number of keys.
func (b *Backoff) limitOrDefault() int {
	if b.limit <= 0 {
		return DefaultBackoffEntries
	}
	return b.limit
}

// expire drops the keys whose last failure is BackoffForget before now. The
// list is in order of last failure, so it stops at the first recent one.
func (b *Backoff) expire(now time.Time) {
	for el := b.order.Front(); el != nil; el = b.order.Front() {
		if now.Sub(el.Value.(*backoffEntry).last) < BackoffForget {
			return
		}
		b.remove(el)
	}
}

// remove drops el from the list and the map.
func (b *Backoff) remove(el *list.Element) {
	delete(b.entries, el.Value.(*backoffEntry).key)
	b.order.Remove(el)
}

// backoffDelay is the wait after the n-th consecutive failure: 0, then
// BackoffBase doubling up to BackoffMax.
func backoffDelay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := BackoffBase
	for i := 2; i < n; i++ {
		d *= 2
		if d >= BackoffMax {
			return BackoffMax
		}
	}
	return d
}
