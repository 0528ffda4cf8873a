package limits

import (
	"fmt"
	"os"
	"syscall"
	"testing"
)

func TestFormulas(t *testing.T) {
	// The measured figures at N = 16 (docs/PERFORMANCE.md "Scale"), plus
	// the Slack for the program's own files.
	for _, c := range []struct {
		job         Job
		rank, pager int
	}{
		{Job{Size: 16, DSM: true}, 31 + Slack, 28 + Slack},
		{Job{Size: 16}, 28 + Slack, 0},
		{Job{Size: 16, DSM: true, SIGSEGV: true}, 44 + Slack, 0},
		{Job{Size: 1, DSM: true}, 16 + Slack, 13 + Slack},
	} {
		if got := c.job.RankFDs(); got != c.rank {
			t.Errorf("%+v: RankFDs = %d, want %d", c.job, got, c.rank)
		}
		if got := c.job.PagerFDs(); got != c.pager {
			t.Errorf("%+v: PagerFDs = %d, want %d", c.job, got, c.pager)
		}
	}
	if got, want := MpirunFDs(16, 0, 0), 58+Slack; got != want {
		t.Errorf("MpirunFDs(16 local) = %d, want %d", got, want)
	}
	// 4 hosts of 250 ranks relayed by their agents: O(hosts).
	if got, want := MpirunFDs(0, 4, 0), mpirunFixed+4+Slack; got != want {
		t.Errorf("MpirunFDs(4 hosts) = %d, want %d", got, want)
	}
	j := Job{Size: 4, DSM: true}
	if got := j.Dials([]int{0, 1, 2, 3}); got != 12 { // 6 pairs, 2 meshes
		t.Errorf("Dials = %d, want 12", got)
	}
	if got := j.Dials([]int{2, 3}); got != 2 {
		t.Errorf("Dials(2, 3) = %d, want 2", got)
	}
}

func TestCheck(t *testing.T) {
	if err := Check(10, 40, 60, "", 1024); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		need, mp int
		host     string
		want     string
	}{
		{131, 326, "", "a job of 100 ranks needs ~131 open files per process (mpirun itself ~326), the hard limit here is 64"},
		{131, 0, "node7", "a job of 100 ranks needs ~131 open files per process, the hard limit on node7 is 64"},
		{40, 326, "", "a job of 100 ranks needs ~326 open files in mpirun, the hard limit here is 64"},
	} {
		err := Check(100, c.need, c.mp, c.host, 64)
		if err == nil || err.Error() != c.want {
			t.Errorf("Check(%d, %d, %q) = %v, want %q", c.need, c.mp, c.host, err, c.want)
		}
	}
}

func TestPorts(t *testing.T) {
	lo, hi, err := parseRange("32768\t60999\n")
	if err != nil || lo != 32768 || hi != 60999 {
		t.Fatalf("parseRange = %d %d %v", lo, hi, err)
	}
	if _, _, err := parseRange("9 1"); err == nil {
		t.Error("parseRange accepted hi < lo")
	}
	if _, err := CheckPorts(300, 1000, 100, "h"); err == nil {
		t.Error("CheckPorts: 300 ranks on a host with 100 ports accepted")
	}
	note, err := CheckPorts(256, 65280, 28232, "")
	if err != nil || note == "" {
		t.Errorf("CheckPorts(256 ranks) = %q, %v; want a note", note, err)
	}
}

func TestRaiseAndExplain(t *testing.T) {
	hard, err := Raise()
	if err != nil {
		t.Fatal(err)
	}
	soft, h2, _ := NoFile()
	if soft != hard || h2 != hard {
		t.Errorf("after Raise: soft %d hard %d, want both %d", soft, h2, hard)
	}
	e := &os.PathError{Op: "open", Path: "x", Err: syscall.EMFILE}
	if msg := Explain(fmt.Errorf("wrapped: %w", e)); msg == "" || !IsEMFILE(e) {
		t.Errorf("Explain(EMFILE) = %q", msg)
	}
	if Explain(os.ErrNotExist) != "" {
		t.Error("Explain(ENOENT) is not empty")
	}
}

// The formulas after issue 13's changes: with connections on demand a
// rank's descriptors grow with log N, not N; with one page server per host
// the page server's with the hosts and its local ranks.
func TestFormulasOnDemand(t *testing.T) {
	for _, c := range []struct{ n, want int }{{1, 0}, {2, 1}, {8, 7}, {9, 8}, {64, 19}, {256, 25}, {1000, 31}, {1024, 31}} {
		if got := CollectivePeers(c.n); got != c.want {
			t.Errorf("CollectivePeers(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	j := Job{Size: 1000, PerHost: 10, Hosts: 100, DSM: true, Mesh: OnDemand, MemMesh: OnDemand, Pagers: PagerPerHost}
	if got, want := j.Peers(), 31+ProgramPeers; got != want {
		t.Errorf("Peers = %d, want %d", got, want)
	}
	if got, want := j.RankFDs(), rankFixed+31+ProgramPeers+Slack; got != want {
		t.Errorf("RankFDs = %d, want %d", got, want)
	}
	if got, want := j.PagerFDs(), pagerHostFixed+99+3*10+Slack; got != want {
		t.Errorf("PagerFDs = %d, want %d", got, want)
	}
	// 256 ranks on one host: the goal of ≤ 32 descriptors per rank needs
	// the fixed ones and the collectives' peers only.
	one := Job{Size: 256, DSM: true, Mesh: OnDemand, MemMesh: OnDemand, Pagers: PagerPerHost}
	if got := one.RankFDs() - Slack - ProgramPeers; got > 41 {
		t.Errorf("256 ranks on one host: %d descriptors per rank before slack", got)
	}
	if got := j.Dials([]int{0, 1, 2}); got != 3*24 {
		t.Errorf("Dials on demand = %d, want %d", got, 3*24)
	}
}

// Both meshes on demand with a page server per rank (items 1 and the
// memory mesh on demand, before one page server per host).
func TestFormulasMemOnDemand(t *testing.T) {
	j := Job{Size: 256, DSM: true, Mesh: OnDemand, MemMesh: OnDemand}
	if got, want := j.PagerFDs(), pagerFixed+CollectivePeers(256)+ProgramPeers+Slack; got != want {
		t.Errorf("PagerFDs = %d, want %d", got, want)
	}
	sig := Job{Size: 256, DSM: true, SIGSEGV: true, Mesh: OnDemand, MemMesh: OnDemand}
	if got, want := sig.RankFDs(), sigsegvFixed+2*(CollectivePeers(256)+ProgramPeers)+Slack; got != want {
		t.Errorf("sigsegv RankFDs = %d, want %d", got, want)
	}
	if got, want := j.Dials([]int{0, 1}), 2*2*((CollectivePeers(256)+ProgramPeers+1)/2); got != want {
		t.Errorf("Dials = %d, want %d", got, want)
	}
	mixed := Job{Size: 4, DSM: true, Mesh: OnDemand} // memory mesh still all-to-all
	if got, want := mixed.Dials([]int{0, 1, 2, 3}), 4*2+6; got != want {
		t.Errorf("Dials (application on demand, memory all-to-all) = %d, want %d", got, want)
	}
}
