package deadlock

import (
	"reflect"
	"runtime"
	"strings"
	"testing"
)

const dump = `goroutine 1 [select, 2 minutes]:
os.(*File).Read(0xc000012345, {0xc0000b0000, 0x40, 0x40})
	/usr/lib/go/src/os/file.go:124 +0x4f
github.com/dsmexec/dsmexec/rank.(*mailbox).get(0xc0000a2000, 0x1, 0x0)
	/src/dsmexec/rank/mailbox.go:140 +0x1a5
github.com/dsmexec/dsmexec/rank.(*World).RecvFrom(0xc0000a0000, 0x1, 0x0)
	/src/dsmexec/rank/world.go:185 +0x105
github.com/dsmexec/dsmexec/rank.(*World).Recv(...)
	/src/dsmexec/rank/world.go:166
main.exchange(0xc0000a0000)
	/home/u/ring/main.go:31 +0x6a
main.main()
	/home/u/ring/main.go:17 +0x125

goroutine 7 [IO wait]:
internal/poll.runtime_pollWait(0x7f0000000000, 0x72)
	/usr/lib/go/src/runtime/netpoll.go:351 +0x85
github.com/dsmexec/dsmexec/internal/mesh.(*Mesh).reader(0xc0000c0000, 0x1)
	/src/dsmexec/internal/mesh/mesh.go:220 +0x9d
created by github.com/dsmexec/dsmexec/internal/mesh.(*Mesh).start in goroutine 1
	/src/dsmexec/internal/mesh/mesh.go:180 +0x1c5

goroutine 9 [running]:
main.work(0x5)
	/home/u/ring/main.go:50 +0x1e
created by main.main in goroutine 1
	/home/u/ring/main.go:15 +0x90

goroutine 10 [sync.WaitGroup.Wait]:
sync.runtime_SemacquireWaitGroup(0xc0000d0000)
	/usr/lib/go/src/runtime/sema.go:110 +0x25
sync.(*WaitGroup).Wait(0xc0000d0000)
	/usr/lib/go/src/sync/waitgroup.go:118 +0x48
github.com/dsmexec/dsmexec/examples/jacobi.run()
	/src/dsmexec/examples/jacobi/main.go:70 +0x20

goroutine 11 [sleep]:
time.Sleep(0x3b9aca00)
	/usr/lib/go/src/runtime/time.go:338 +0x167
example.com/sim/physics.Step()
	/home/u/sim/physics/step.go:9 +0x1a
`

func TestParseStacks(t *testing.T) {
	gs := ParseStacks([]byte(dump))
	if len(gs) != 5 {
		t.Fatalf("%d goroutines", len(gs))
	}
	g := gs[0]
	if g.ID != 1 || g.State != "select" || g.Wait != ", 2 minutes" || len(g.Frames) != 6 {
		t.Fatalf("goroutine 1: %+v", g)
	}
	if g.Frames[3].Func != "github.com/dsmexec/dsmexec/rank.(*World).Recv(...)" || g.Frames[3].File != "/src/dsmexec/rank/world.go:166" {
		t.Fatalf("frame: %+v", g.Frames[3])
	}
	if !g.inCall() || gs[2].inCall() || gs[1].hasUser() || !gs[3].hasUser() || !gs[4].hasUser() {
		t.Fatal("frame kinds")
	}
}

func TestBusy(t *testing.T) {
	gs := ParseStacks([]byte(dump))
	// 1 is in Recv, 7 is dsmexec's, 10 waits for other goroutines; 9 runs
	// and 11 sleeps: both may go on without another rank.
	if got := Busy(gs, -1); !reflect.DeepEqual(got, []int{9, 11}) {
		t.Fatalf("busy %v", got)
	}
	if got := Busy(gs, 9); !reflect.DeepEqual(got, []int{11}) {
		t.Fatalf("busy without self: %v", got)
	}
}

// A goroutine in a plain channel receive may be waiting for a timer
// (<-time.After(d)): it counts as busy, never as stuck.
func TestBusyChanReceive(t *testing.T) {
	gs := ParseStacks([]byte(`goroutine 1 [IO wait]:
github.com/dsmexec/dsmexec/rank.(*group).Recv(...)
	/src/dsmexec/rank/comm.go:173
main.main()
	/home/u/p/main.go:20 +0x1a

goroutine 8 [chan receive]:
main.later(0xc000010000)
	/home/u/p/main.go:40 +0x2b
created by main.main in goroutine 1
	/home/u/p/main.go:18 +0x3c

goroutine 9 [chan receive (nil chan)]:
main.never()
	/home/u/p/main.go:50 +0x2b
`))
	if got := Busy(gs, -1); !reflect.DeepEqual(got, []int{8}) {
		t.Fatalf("busy %v, want [8]", got)
	}
}

func TestTrim(t *testing.T) {
	got := Trim(ParseStacks([]byte(dump)))
	want := `goroutine 1 [select, 2 minutes]:
  github.com/dsmexec/dsmexec/rank.(*World).Recv(...)
      /src/dsmexec/rank/world.go:166
  main.exchange(0xc0000a0000)
      /home/u/ring/main.go:31
  main.main()
      /home/u/ring/main.go:17
goroutine 9 [running]:
  main.work(0x5)
      /home/u/ring/main.go:50
goroutine 10 [sync.WaitGroup.Wait]:
  github.com/dsmexec/dsmexec/examples/jacobi.run()
      /src/dsmexec/examples/jacobi/main.go:70
goroutine 11 [sleep]:
  example.com/sim/physics.Step()
      /home/u/sim/physics/step.go:9
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// The parser reads this runtime's own dumps.
func TestParseLiveDump(t *testing.T) {
	block := make(chan struct{})
	started := make(chan struct{})
	go func() {
		close(started)
		<-block
	}()
	<-started
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	close(block)
	gs := ParseStacks(buf[:n])
	if len(gs) < 2 {
		t.Fatalf("%d goroutines in\n%s", len(gs), buf[:n])
	}
	for _, g := range gs {
		if g.ID == 0 || g.State == "" || len(g.Frames) == 0 {
			t.Fatalf("goroutine %+v", g)
		}
		for _, f := range g.Frames {
			if !strings.HasPrefix(f.Func, "created by") && f.File == "" && !strings.Contains(f.Func, "...additional frames elided...") {
				t.Fatalf("frame without file: %+v", f)
			}
		}
	}
}
