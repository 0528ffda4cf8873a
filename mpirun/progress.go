package main

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// progress shows the copies to the hosts on one line of a terminal, once
// they have taken a while. It stays silent when stderr is not a terminal.
type progress struct {
	w     *os.File
	on    bool
	start time.Time

	mu    sync.Mutex
	hosts map[string][2]int64 // host → bytes done, total of its current copy
	last  time.Time
	shown bool
}

// progressAfter: copies quicker than this show nothing.
const progressAfter = time.Second

func newProgress(stderr *os.File) *progress {
	return &progress{w: stderr, on: stderr != nil && isTerminal(stderr), start: time.Now(), hosts: map[string][2]int64{}}
}

// update is remote.Options.Progress; it may be called from several
// goroutines.
func (p *progress) update(host string, done, total int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hosts[host] = [2]int64{done, total}
	now := time.Now()
	if now.Sub(p.start) < progressAfter || now.Sub(p.last) < 250*time.Millisecond {
		return
	}
	p.last = now
	var d, t int64
	for _, v := range p.hosts {
		d += v[0]
		t += v[1]
	}
	pct := 100
	if t > 0 {
		pct = int(d * 100 / t)
	}
	fmt.Fprintf(p.w, "\rmpirun: copying to %d host%s: %s of %s (%d%%)\033[K", len(p.hosts), plural(len(p.hosts)), bytesString(d), bytesString(t), pct)
	p.shown = true
}

// finish clears the progress line, if one was shown.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}
