package deadlock

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Module is the import path prefix of dsmexec's own packages.
const Module = "github.com/dsmexec/dsmexec/"

// Goroutine is one goroutine of a runtime.Stack(buf, true) dump.
type Goroutine struct {
	ID     int
	State  string // "running", "chan receive", "select", "IO wait", ... (without ", N minutes")
	Wait   string // ", 2 minutes" when the runtime said so
	Frames []Frame
}

// Frame is one call of a goroutine's stack, innermost first.
type Frame struct {
	Func string // "github.com/dsmexec/dsmexec/rank.(*World).Recv(...)", as printed
	File string // "/path/world.go:160 +0x25", as printed (trimmed)
}

// ParseStacks reads a dump written by runtime.Stack(buf, true) (or a
// panic's): goroutines separated by blank lines, each a header
// "goroutine N [state]:" and frames of two lines (function, then file).
func ParseStacks(dump []byte) []Goroutine {
	var gs []Goroutine
	var g *Goroutine
	sc := bufio.NewScanner(bytes.NewReader(dump))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "goroutine ") && strings.HasSuffix(line, ":"):
			gs = append(gs, parseHeader(line))
			g = &gs[len(gs)-1]
		case g == nil || strings.TrimSpace(line) == "":
			if strings.TrimSpace(line) == "" {
				g = nil
			}
		case strings.HasPrefix(line, "\t"):
			if n := len(g.Frames); n > 0 && g.Frames[n-1].File == "" {
				g.Frames[n-1].File = strings.TrimSpace(line)
			}
		case strings.HasPrefix(line, "created by "):
			g.Frames = append(g.Frames, Frame{Func: line})
		default:
			g.Frames = append(g.Frames, Frame{Func: line})
		}
	}
	return gs
}

func parseHeader(line string) Goroutine {
	var g Goroutine
	rest := strings.TrimSuffix(strings.TrimPrefix(line, "goroutine "), ":")
	if i := strings.IndexByte(rest, ' '); i > 0 {
		g.ID, _ = strconv.Atoi(rest[:i])
		rest = rest[i:]
	}
	if i, j := strings.IndexByte(rest, '['), strings.LastIndexByte(rest, ']'); i >= 0 && j > i {
		st := rest[i+1 : j]
		if k := strings.IndexByte(st, ','); k >= 0 {
			g.Wait = st[k:]
			st = st[:k]
		}
		g.State = st
	}
	return g
}

// pkgOf returns the import path of a printed function name.
func pkgOf(fn string) string {
	fn = strings.TrimPrefix(fn, "created by ")
	if i := strings.Index(fn, " in goroutine"); i >= 0 {
		fn = fn[:i]
	}
	slash := strings.LastIndexByte(fn, '/')
	dot := strings.IndexByte(fn[slash+1:], '.')
	if dot < 0 {
		return fn
	}
	return fn[:slash+1+dot]
}

// frameKind sorts a frame: the program's own code, a dsmexec call (rank,
// dsm, barrier), or machinery (the standard library, dsmexec's internals,
// other modules' code called by dsmexec).
type frameKind int

const (
	machinery frameKind = iota
	api
	user
)

func kindOf(f Frame) frameKind {
	if strings.HasPrefix(f.Func, "created by ") {
		return machinery
	}
	p := pkgOf(f.Func)
	if strings.HasPrefix(p, Module) {
		rel := strings.TrimPrefix(p, Module)
		switch {
		case strings.HasPrefix(rel, "examples/"):
			return user
		case rel == "rank", rel == "dsm", rel == "barrier":
			return api
		}
		return machinery
	}
	first := p
	if i := strings.IndexByte(p, '/'); i >= 0 {
		first = p[:i]
	}
	if p == "main" || strings.Contains(first, ".") {
		return user // the program, or a module it imports
	}
	return machinery // the standard library, runtime
}

// inCall says whether the goroutine's innermost non-machinery frame is a
// dsmexec call: it is waiting in (or working inside) dsmexec.
func (g *Goroutine) inCall() bool {
	for _, f := range g.Frames {
		switch kindOf(f) {
		case api:
			return true
		case user:
			return false
		}
	}
	return false
}

// hasUser says whether any frame is the program's.
func (g *Goroutine) hasUser() bool {
	for _, f := range g.Frames {
		if kindOf(f) == user {
			return true
		}
	}
	return false
}

// waitsOnOthers are goroutine states that end only when another goroutine
// of the process acts: a rank whose goroutines all wait so (or in
// dsmexec calls) cannot go on by itself. "select" is not one (a case may
// be a timer), nor "chan receive" (the channel may be a timer's:
// <-time.After(d), <-ticker.C, or a context's Done that a timer closes),
// nor "sleep", "IO wait" or "syscall" (the world outside may wake them).
var waitsOnOthers = map[string]bool{
	"chan send": true, "chan receive (nil chan)": true, "chan send (nil chan)": true,
	"select (no cases)": true, "semacquire": true, "sync.Mutex.Lock": true, "sync.RWMutex.Lock": true,
	"sync.RWMutex.RLock": true, "sync.WaitGroup.Wait": true, "sync.Cond.Wait": true,
}

// Busy lists the goroutines of the program that could go on without
// another rank: running, runnable, sleeping, in I/O or a syscall, or in a
// select, and not inside a dsmexec call. A rank must not say it is
// blocked while Busy is not empty. Goroutines made by dsmexec itself
// (no frame of the program) are ignored, as is `self` (the goroutine
// taking the dump).
func Busy(gs []Goroutine, self int) []int {
	var ids []int
	for i := range gs {
		g := &gs[i]
		if g.ID == self || !g.hasUser() || g.inCall() {
			continue
		}
		if !waitsOnOthers[g.State] {
			ids = append(ids, g.ID)
		}
	}
	sort.Ints(ids)
	return ids
}

// Trim keeps what a person needs from a dump when a job hangs: the
// goroutines of the program (those with a frame of its own code), each
// with the dsmexec call it is in (the outermost dsmexec frame) and the
// program's frames; the runtime, the standard library and dsmexec's
// internals are left out.
func Trim(gs []Goroutine) string {
	var b strings.Builder
	for i := range gs {
		g := &gs[i]
		if !g.hasUser() {
			continue
		}
		fmt.Fprintf(&b, "goroutine %d [%s%s]:\n", g.ID, g.State, g.Wait)
		for k, f := range g.Frames {
			switch kindOf(f) {
			case user:
			case api:
				// The outermost dsmexec frame: the one the program called.
				if k+1 < len(g.Frames) && kindOf(g.Frames[k+1]) == api {
					continue
				}
			default:
				continue
			}
			fmt.Fprintf(&b, "  %s\n", f.Func)
			if f.File != "" {
				file := f.File
				if j := strings.LastIndex(file, " +0x"); j >= 0 {
					file = file[:j]
				}
				fmt.Fprintf(&b, "      %s\n", file)
			}
		}
	}
	return b.String()
}

// InCalls counts the goroutines of the program (those with a frame of
// its own code) that are inside a dsmexec call.
func InCalls(gs []Goroutine) int {
	n := 0
	for i := range gs {
		if gs[i].hasUser() && gs[i].inCall() {
			n++
		}
	}
	return n
}
