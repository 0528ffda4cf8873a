package coherence

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Scenario scripts (testdata/*.txt) drive a cluster line by line. Invariants
// are checked after every event, as in the simulation, and a failing seed's
// trace is itself a script.
//
//	# comment
//	cluster 3 [manual]          first line: 3 ranks; manual: resolved faults
//	                            wait for a retry event instead of retrying at once
//	fault 1 p0 read|write       rank 1 loads/stores page 0 (faults if it must)
//	retry 1 p0                  rank 1 reruns its resolved accesses to p0 (manual)
//	deliver 0->1                deliver the head of the link 0->1
//	deliver all                 deliver until no message is left (lowest link first)
//	lock 1 L2 / unlock 1 L2     rank 1 calls Lock(2) / Unlock(2)
//	kill 2                      rank 2 dies; what it sent may still be delivered
//	lost 0 2                    rank 0 learns that rank 2 is lost (PeerLost)
//	expect 1 p0 Read            rank 1's access to p0
//	expect-op 1 p0 failed [text]  rank 1's last access to p0: waiting, runnable,
//	                            done or failed (its error must contain text)
//	expect-lock 1 L2 held       idle, waiting, held or failed [text]
//	expect-msg 0->1 PAGE p0 data  the head of link 0->1 has all these words
//	expect-link 0->1 [INV DONE] the types of every message on the link, in order
//	expect-quiet                no message in flight
//	expect-dir p0 owner=1 copies=1,2 lost=none   the home's directory entry
//	expect-acts 1 | protect p0 Write->Read | send 1->2 PAGE
//	                            the actions rank 1 carried out in the last
//	                            event, each starting with the given text

func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := runScript(string(b)); err != nil {
				t.Fatalf("%s:%v", f, err)
			}
		})
	}
}

// TestTraceReplays checks the promise made by a failing simulation: its
// trace, run as a script, replays the same run.
func TestTraceReplays(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		var stats simStats
		c, err := simulate(seed, seed%2 == 0, &stats)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		want := c.script()
		c2, err := runScript(want)
		if err != nil {
			t.Fatalf("seed %d: replay: %v", seed, err)
		}
		if got := c2.script(); got != want {
			t.Fatalf("seed %d: replay recorded a different trace", seed)
		}
		if err := c2.final(); err != nil {
			t.Fatalf("seed %d: replay: %v", seed, err)
		}
	}
}

// A script that breaks an invariant must fail: the checks are not vacuous.
func TestScriptCatchesViolations(t *testing.T) {
	for _, tc := range []struct{ name, script, want string }{
		{"wrong access", "cluster 2\nfault 1 p0 read\ndeliver all\nexpect 1 p0 Write\n", "access is Read"},
		{"deliver empty", "cluster 2\ndeliver 0->1\n", "nothing to deliver"},
		{"wrong message", "cluster 2\nfault 1 p0 read\nexpect-msg 1->0 REQ p0 write\n", "lacks"},
		{"op state", "cluster 2\nfault 1 p0 read\nexpect-op 1 p0 done\n", "is waiting"},
		{"unknown command", "cluster 2\nfrobnicate\n", "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runScript(tc.script)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// runScript runs a script and returns the cluster and the first failure,
// as "line: message".
func runScript(script string) (*cluster, error) {
	var c *cluster
	for i, line := range strings.Split(script, "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if c == nil && f[0] != "cluster" {
			return nil, fmt.Errorf("%d: the first command must be cluster", i+1)
		}
		var err error
		if f[0] == "cluster" {
			c, err = scriptCluster(c, f)
		} else {
			err = scriptLine(c, f)
		}
		if err != nil {
			return c, fmt.Errorf("%d: %s: %w", i+1, strings.TrimSpace(line), err)
		}
	}
	if c == nil {
		return nil, fmt.Errorf("empty script")
	}
	return c, nil
}

func scriptCluster(c *cluster, f []string) (*cluster, error) {
	if c != nil {
		return nil, fmt.Errorf("cluster given twice")
	}
	if len(f) < 2 || len(f) > 3 || len(f) == 3 && f[2] != "manual" {
		return nil, fmt.Errorf("want: cluster N [manual]")
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad size %q", f[1])
	}
	return newCluster(n, len(f) == 3), nil
}

func scriptLine(c *cluster, f []string) error {
	args := f[1:]
	switch f[0] {
	case "fault":
		if len(args) != 3 || args[2] != "read" && args[2] != "write" {
			return fmt.Errorf("want: fault R pN read|write")
		}
		r, p, err := rankPage(c, args[0], args[1])
		if err != nil {
			return err
		}
		return c.do(event{kind: evFault, a: r, page: p, write: args[2] == "write"})
	case "retry":
		if len(args) != 2 {
			return fmt.Errorf("want: retry R pN")
		}
		r, p, err := rankPage(c, args[0], args[1])
		if err != nil {
			return err
		}
		return c.do(event{kind: evRetry, a: r, page: p})
	case "deliver":
		if len(args) == 1 && args[0] == "all" {
			for i := 0; ; i++ {
				ls := c.deliverable()
				if len(ls) == 0 {
					return nil
				}
				if i > 10000 {
					return fmt.Errorf("messages keep coming")
				}
				if err := c.do(event{kind: evDeliver, a: ls[0][0], b: ls[0][1]}); err != nil {
					return err
				}
			}
		}
		if len(args) != 1 {
			return fmt.Errorf("want: deliver A->B | all")
		}
		from, to, err := link(c, args[0])
		if err != nil {
			return err
		}
		return c.do(event{kind: evDeliver, a: from, b: to})
	case "lock", "unlock":
		if len(args) != 2 {
			return fmt.Errorf("want: %s R LN", f[0])
		}
		r, id, err := rankLock(c, args[0], args[1])
		if err != nil {
			return err
		}
		kind := evLock
		if f[0] == "unlock" {
			kind = evUnlock
		}
		return c.do(event{kind: kind, a: r, lock: id})
	case "kill":
		if len(args) != 1 {
			return fmt.Errorf("want: kill R")
		}
		r, err := rank(c, args[0])
		if err != nil {
			return err
		}
		return c.do(event{kind: evKill, a: r})
	case "lost":
		if len(args) != 2 {
			return fmt.Errorf("want: lost X L")
		}
		x, err := rank(c, args[0])
		if err != nil {
			return err
		}
		l, err := rank(c, args[1])
		if err != nil {
			return err
		}
		return c.do(event{kind: evLost, a: x, b: l})
	case "expect":
		if len(args) != 3 {
			return fmt.Errorf("want: expect R pN None|Read|Write")
		}
		r, p, err := rankPage(c, args[0], args[1])
		if err != nil {
			return err
		}
		if got := c.nodes[r].Access(p); got.String() != args[2] {
			return fmt.Errorf("access is %s", got)
		}
		if cl := c.mem[r][p]; cl != nil && cl.access.String() != args[2] || cl == nil && args[2] != "None" {
			return fmt.Errorf("driver memory disagrees with the node")
		}
	case "expect-op":
		if len(args) < 3 {
			return fmt.Errorf("want: expect-op R pN state [text]")
		}
		r, p, err := rankPage(c, args[0], args[1])
		if err != nil {
			return err
		}
		o := c.last[[2]int{r, int(p)}]
		if o == nil {
			return fmt.Errorf("rank %d never accessed p%d", r, p)
		}
		if o.state.String() != args[2] {
			return fmt.Errorf("the access is %s (err %v)", o.state, o.err)
		}
		if text := strings.Join(args[3:], " "); text != "" && (o.err == nil || !strings.Contains(o.err.Error(), text)) {
			return fmt.Errorf("error %v does not contain %q", o.err, text)
		}
	case "expect-lock":
		if len(args) < 3 {
			return fmt.Errorf("want: expect-lock R LN state [text]")
		}
		r, id, err := rankLock(c, args[0], args[1])
		if err != nil {
			return err
		}
		l := c.lockState(r, id)
		if l.state != args[2] {
			return fmt.Errorf("the lock is %s (err %v)", l.state, l.err)
		}
		if text := strings.Join(args[3:], " "); text != "" && (l.err == nil || !strings.Contains(l.err.Error(), text)) {
			return fmt.Errorf("error %v does not contain %q", l.err, text)
		}
	case "expect-msg":
		if len(args) < 2 {
			return fmt.Errorf("want: expect-msg A->B words...")
		}
		from, to, err := link(c, args[0])
		if err != nil {
			return err
		}
		q := c.links[from][to]
		if len(q) == 0 {
			return fmt.Errorf("link %d->%d is empty", from, to)
		}
		words := strings.Fields(q[0].m.String())
		for _, w := range args[1:] {
			if !slices.Contains(words, w) {
				return fmt.Errorf("message %v lacks %q", q[0].m, w)
			}
		}
	case "expect-link":
		if len(args) < 1 {
			return fmt.Errorf("want: expect-link A->B TYPE...")
		}
		from, to, err := link(c, args[0])
		if err != nil {
			return err
		}
		var got []string
		for _, fl := range c.links[from][to] {
			got = append(got, fl.m.Type.String())
		}
		if !slices.Equal(got, args[1:]) {
			return fmt.Errorf("link holds %v", got)
		}
	case "expect-quiet":
		for from := range c.n {
			for to := range c.n {
				if len(c.links[from][to]) > 0 {
					return fmt.Errorf("link %d->%d holds %v", from, to, c.links[from][to][0].m)
				}
			}
		}
	case "expect-dir":
		if len(args) < 1 {
			return fmt.Errorf("want: expect-dir pN [owner=R] [copies=a,b] [lost=R]")
		}
		p, err := page(args[0])
		if err != nil {
			return err
		}
		home := c.nodes[0].Home(p)
		d := c.nodes[home].dir[p]
		if d == nil {
			d = &dirEntry{owner: -1, lostBy: -1, copies: newRankSet(c.n)}
		}
		for _, kv := range args[1:] {
			k, v, _ := strings.Cut(kv, "=")
			var got string
			switch k {
			case "owner":
				got = rankOrNone(d.owner)
			case "lost":
				got = rankOrNone(d.lostBy)
			case "copies":
				var rs []string
				for _, r := range d.copies.ranks() {
					rs = append(rs, strconv.Itoa(r))
				}
				got = strings.Join(rs, ",")
				if got == "" {
					got = "none"
				}
			default:
				return fmt.Errorf("unknown key %q", k)
			}
			if got != v {
				return fmt.Errorf("%s is %s: %v", k, got, d)
			}
		}
	case "expect-acts":
		if len(args) < 1 {
			return fmt.Errorf("want: expect-acts R | action | action...")
		}
		r, err := rank(c, args[0])
		if err != nil {
			return err
		}
		var want []string
		for _, s := range strings.Split(strings.Join(args[1:], " "), "|")[1:] {
			want = append(want, strings.TrimSpace(s))
		}
		var got []string
		for _, a := range c.lastActs[r] {
			got = append(got, a.String())
		}
		ok := len(got) == len(want)
		for i := 0; ok && i < len(want); i++ {
			ok = strings.HasPrefix(got[i], want[i])
		}
		if !ok {
			return fmt.Errorf("rank %d carried out:\n\t%s", r, strings.Join(got, "\n\t"))
		}
	default:
		return fmt.Errorf("unknown command %q", f[0])
	}
	return nil
}

func rankOrNone(r int) string {
	if r < 0 {
		return "none"
	}
	return strconv.Itoa(r)
}

func rank(c *cluster, s string) (int, error) {
	r, err := strconv.Atoi(s)
	if err != nil || r < 0 || r >= c.n {
		return 0, fmt.Errorf("bad rank %q", s)
	}
	return r, nil
}

func page(s string) (Page, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "p"), 10, 32)
	if err != nil || !strings.HasPrefix(s, "p") {
		return 0, fmt.Errorf("bad page %q (want pN)", s)
	}
	return Page(v), nil
}

func rankPage(c *cluster, rs, ps string) (int, Page, error) {
	r, err := rank(c, rs)
	if err != nil {
		return 0, 0, err
	}
	p, err := page(ps)
	return r, p, err
}

func rankLock(c *cluster, rs, ls string) (int, uint32, error) {
	r, err := rank(c, rs)
	if err != nil {
		return 0, 0, err
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(ls, "L"), 10, 32)
	if err != nil || !strings.HasPrefix(ls, "L") {
		return 0, 0, fmt.Errorf("bad lock %q (want LN)", ls)
	}
	return r, uint32(v), nil
}

func link(c *cluster, s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "->")
	if !ok {
		return 0, 0, fmt.Errorf("bad link %q (want A->B)", s)
	}
	from, err := rank(c, a)
	if err != nil {
		return 0, 0, err
	}
	to, err := rank(c, b)
	return from, to, err
}
