package listen

import (
	"fmt"
	"sync"
	"time"
)

// Limiter rate-limits warnings by cause: the first warning of a cause is
// written at once; further ones within the interval are counted and
// written as one summary line when the interval ends (the last message,
// with "(and N more like it in the last 1s)"). Its methods may be called
// from several goroutines.
type Limiter struct {
	warnf func(format string, args ...any)
	every time.Duration

	mu     sync.Mutex
	causes map[string]*cause
	closed bool
}

type cause struct {
	last  time.Time // when a line of this cause was last written
	held  int       // warnings since then
	msg   string    // the last of them
	timer *time.Timer
}

// NewLimiter returns a Limiter writing to warnf (nil: nowhere) at most one
// line per cause per interval (0: one second).
func NewLimiter(warnf func(format string, args ...any), interval time.Duration) *Limiter {
	if interval <= 0 {
		interval = time.Second
	}
	return &Limiter{warnf: warnf, every: interval, causes: map[string]*cause{}}
}

// Warn writes or counts one warning of the given cause.
func (l *Limiter) Warn(key string, format string, args ...any) {
	if l.warnf == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	c := l.causes[key]
	if c == nil {
		c = &cause{}
		l.causes[key] = c
	}
	now := time.Now()
	if c.held == 0 && now.Sub(c.last) >= l.every {
		c.last = now
		l.warnf("%s", msg)
		return
	}
	c.held++
	c.msg = msg
	if c.timer == nil {
		c.timer = time.AfterFunc(c.last.Add(l.every).Sub(now), func() { l.flush(key) })
	}
}

func (l *Limiter) flush(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.flushLocked(l.causes[key])
}

func (l *Limiter) flushLocked(c *cause) {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.held == 0 {
		return
	}
	if c.held == 1 {
		l.warnf("%s", c.msg)
	} else {
		l.warnf("%s (and %d more like it in the last %v)", c.msg, c.held-1, l.every)
	}
	c.held, c.msg, c.last = 0, "", time.Now()
}

// Close writes the held-back summaries now; later warnings are dropped.
func (l *Limiter) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	for _, c := range l.causes {
		l.flushLocked(c)
	}
	l.closed = true
}
