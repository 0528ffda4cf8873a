package rank

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// idleWait is how long rank 1 waits in Recv in the idle test.
const idleWait = time.Second

func init() {
	// idle: rank 1 waits in Recv for about idleWait while rank 0 sleeps,
	// and prints the CPU time all its threads used meanwhile.
	programs["idle"] = func(w *World) error {
		if w.Rank() == 0 {
			time.Sleep(idleWait)
			return w.Send(1, 0, []byte("wake"))
		}
		var before, after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		start := time.Now()
		if _, err := w.Recv(0, 0); err != nil {
			return err
		}
		wall := time.Since(start)
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
		fmt.Printf("IDLE wall %d cpu %d\n", wall.Nanoseconds(), cpu.Nanoseconds())
		return nil
	}
}

// TestIdleCostsNothing: a rank blocked in Recv for a second uses less than
// 5% of a CPU (it spins a few tens of µs at most, then sleeps), over both
// transports, and with the yielding spin of an oversubscribed host. Open MPI busy-polls here (100%).
func TestIdleCostsNothing(t *testing.T) {
	for _, tr := range append(transports, "auto/oversubscribed") {
		env := []string{transportEnv(strings.TrimSuffix(tr, "/oversubscribed"))}
		if strings.HasSuffix(tr, "/oversubscribed") {
			env = append(env, "DSMEXEC_OVERSUB=yield") // the spin of a host with more ranks than CPUs
		}
		outs := runJob(t, "idle", 2, env...)
		var wall, cpu int64
		for _, l := range strings.Split(outs[1], "\n") {
			if strings.HasPrefix(l, "IDLE ") {
				fmt.Sscanf(l, "IDLE wall %d cpu %d", &wall, &cpu)
			}
		}
		if wall < int64(idleWait/2) {
			t.Fatalf("%s: rank 1 waited only %v:\n%s", tr, time.Duration(wall), outs[1])
		}
		t.Logf("%s: rank 1 used %v of CPU in a %v Recv (%.2f%%)", tr, time.Duration(cpu), time.Duration(wall), 100*float64(cpu)/float64(wall))
		if cpu*20 > wall {
			t.Errorf("%s: rank 1 used %v of CPU while blocked %v in Recv (over 5%%)", tr, time.Duration(cpu), time.Duration(wall))
		}
	}
}
