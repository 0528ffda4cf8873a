package launch

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Scenario scripts (testdata/*.txt), in the style of etcd's datadriven
// tests: blocks separated by blank lines, each one command, a line "----",
// and the actions the machine answered with, one per line ("ok" for none).
// go test -rewrite writes the answers the machine gives now; read the diff.
//
//	# comment
//	config size=4 [grace=1s] [timeout=10s] [settle=500ms] [hosts=a,a,b,b] [summary] [summary-off]
//	begin
//	started R [pid=P]            (pid defaults to 100+R)
//	start-failed R TEXT
//	joined R [pid=P]
//	failure R [peer=P] TEXT      R reports why it is about to exit
//	abort R CODE
//	exit R status=S|signal=KILL [open]   R's exit; open: its output is not closed yet
//	output-closed R
//	lost R                       R's host was lost
//	start-error R TEXT           R's host could not start it
//	signal INT|TERM|HUP
//	fire timeout|grace|settle
//	rdv-failed joined=N TEXT
//	closed [reported] [backend=B] [lost=HOST]
//	report-written [TEXT]
//	deadlock D TEXT              mpirun's deadlock detector found one after D

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt with the actions the machine gives now")

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
			got, err := runScript(string(b))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if *rewrite {
				if err := os.WriteFile(f, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != string(b) {
				t.Errorf("%s: the machine answers differently (go test -rewrite, then read the diff):\n%s", f, diff(string(b), got))
			}
		})
	}
}

// A script whose expectations are wrong must fail.
func TestScriptCatchesDifferences(t *testing.T) {
	script := "config size=1\n----\nok\n\nbegin\n----\nstart 7\n"
	got, err := runScript(script)
	if err != nil {
		t.Fatal(err)
	}
	if got == script {
		t.Fatal("a wrong expectation was not noticed")
	}
	if _, err := runScript("config size=1\n----\nok\n\nfrobnicate\n----\nok\n"); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("err = %v", err)
	}
}

// runScript runs every block of a script and returns the script with each
// block's expectations replaced by what the machine answered.
func runScript(script string) (string, error) {
	var out strings.Builder
	var j *Job
	blocks := strings.Split(strings.TrimRight(script, "\n"), "\n\n")
	for bi, block := range blocks {
		lines := strings.Split(block, "\n")
		var cmd string
		for _, l := range lines {
			if l == "----" {
				break
			}
			out.WriteString(l + "\n")
			if !strings.HasPrefix(l, "#") && strings.TrimSpace(l) != "" {
				cmd = l
			}
		}
		if cmd == "" {
			if bi < len(blocks)-1 {
				out.WriteString("\n")
			}
			continue
		}
		acts, err := scriptCommand(&j, cmd)
		if err != nil {
			return "", fmt.Errorf("block %d: %s: %w", bi+1, cmd, err)
		}
		out.WriteString("----\n")
		if len(acts) == 0 {
			out.WriteString("ok\n")
		}
		for _, a := range acts {
			out.WriteString(formatAction(a) + "\n")
		}
		if bi < len(blocks)-1 {
			out.WriteString("\n")
		}
	}
	return out.String(), nil
}

func scriptCommand(jp **Job, line string) ([]Action, error) {
	f := strings.Fields(line)
	if f[0] == "config" {
		cfg, err := scriptConfig(f[1:])
		if err != nil {
			return nil, err
		}
		*jp = New(cfg)
		return nil, nil
	}
	if *jp == nil {
		return nil, fmt.Errorf("config first")
	}
	ev, err := scriptEvent(f)
	if err != nil {
		return nil, err
	}
	acts := (*jp).Step(ev)
	if ex, ok := ev.(Exited); ok && !hasWord(f, "open") {
		acts = append(acts, (*jp).Step(OutputClosed{Rank: ex.Rank})...)
	}
	return acts, nil
}

func scriptConfig(args []string) (Config, error) {
	cfg := Config{Size: 1, Grace: time.Second, Settle: DefaultSettle, RendezvousTimeout: 30 * time.Second, MasterAddr: "127.0.0.1:4000"}
	var hosts []string
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		var err error
		switch k {
		case "size":
			cfg.Size, err = strconv.Atoi(v)
		case "grace":
			cfg.Grace, err = time.ParseDuration(v)
		case "timeout":
			cfg.Timeout, err = time.ParseDuration(v)
		case "settle":
			cfg.Settle, err = time.ParseDuration(v)
		case "hosts":
			hosts, cfg.MultiHost = strings.Split(v, ","), true
		case "summary":
			cfg.Summary = true
		case "summary-off":
			cfg.SummaryOff = true
		default:
			return cfg, fmt.Errorf("unknown config %q", a)
		}
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", a, err)
		}
	}
	cfg.Hosts = hosts
	if cfg.Hosts == nil {
		for range cfg.Size {
			cfg.Hosts = append(cfg.Hosts, "localhost")
		}
	}
	return cfg, nil
}

func scriptEvent(f []string) (Event, error) {
	n := func(i int) int {
		if i >= len(f) {
			return -1
		}
		v, err := strconv.Atoi(f[i])
		if err != nil {
			return -1
		}
		return v
	}
	opt := func(key string) (string, bool) {
		for _, w := range f[1:] {
			if v, ok := strings.CutPrefix(w, key+"="); ok {
				return v, true
			}
		}
		return "", false
	}
	text := func(from int) string {
		var words []string
		for _, w := range f[min(from, len(f)):] {
			if !strings.Contains(w, "=") || strings.Contains(w, " ") {
				words = append(words, w)
			}
		}
		return strings.Join(words, " ")
	}
	switch f[0] {
	case "begin":
		return Begin{}, nil
	case "started":
		pid := 100 + n(1)
		if v, ok := opt("pid"); ok {
			pid, _ = strconv.Atoi(v)
		}
		return Started{Rank: n(1), Pid: pid}, nil
	case "start-failed":
		return StartFailed{Rank: n(1), Err: text(2)}, nil
	case "joined":
		pid := 0
		if v, ok := opt("pid"); ok {
			pid, _ = strconv.Atoi(v)
		}
		return Joined{Rank: n(1), Pid: pid}, nil
	case "failure":
		peer := -1
		if v, ok := opt("peer"); ok && v == "any" {
			peer = AnyPeer
		} else if ok {
			peer, _ = strconv.Atoi(v)
		}
		return Failure{Rank: n(1), LostPeer: peer, Msg: text(2)}, nil
	case "abort":
		return Aborted{Rank: n(1), Code: n(2)}, nil
	case "exit":
		return scriptExit(n(1), opt)
	case "output-closed":
		return OutputClosed{Rank: n(1)}, nil
	case "lost":
		return Exited{Rank: n(1), Lost: true, How: "remote: the agent is gone"}, nil
	case "start-error":
		return Exited{Rank: n(1), StartErr: text(2)}, nil
	case "signal":
		s, ok := map[string]Sig{"INT": SIGINT, "TERM": SIGTERM, "HUP": SIGHUP}[f[1]]
		if !ok {
			return nil, fmt.Errorf("signal INT, TERM or HUP")
		}
		return Signal{Sig: s}, nil
	case "fire":
		t, ok := map[string]Timer{"timeout": TimerTimeout, "grace": TimerGrace, "settle": TimerSettle}[f[1]]
		if !ok {
			return nil, fmt.Errorf("fire timeout, grace or settle")
		}
		return Fired{Timer: t}, nil
	case "rdv-failed":
		v, _ := opt("joined")
		joined, _ := strconv.Atoi(v)
		return RendezvousFailed{Joined: joined, Err: text(1)}, nil
	case "closed":
		ev := Closed{Reported: hasWord(f, "reported"), Lost: map[string]Reason{}}
		ev.Backend, _ = opt("backend")
		if h, ok := opt("lost"); ok {
			ev.Lost[h] = Reason{Why: "it stopped answering", Hint: "check that " + h + " is up"}
		}
		return ev, nil
	case "report-written":
		return ReportWritten{Err: text(1)}, nil
	case "deadlock":
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return nil, err
		}
		return Deadlocked{After: d, Text: text(2)}, nil
	}
	return nil, fmt.Errorf("unknown command %q", f[0])
}

func scriptExit(r int, opt func(string) (string, bool)) (Event, error) {
	if v, ok := opt("status"); ok {
		s, err := strconv.Atoi(v)
		if err != nil {
			return nil, err
		}
		return Exited{Rank: r, Pid: 100 + r, Status: s, Failed: s != 0, How: fmt.Sprintf("exited with status %d", s)}, nil
	}
	if v, ok := opt("signal"); ok {
		s, ok := map[string]Sig{"KILL": SIGKILL, "TERM": SIGTERM, "INT": SIGINT, "HUP": SIGHUP}[v]
		if !ok {
			return nil, fmt.Errorf("unknown signal %q", v)
		}
		return Exited{Rank: r, Pid: 100 + r, Status: 128 + int(s), Failed: true, How: "killed by signal " + s.String()}, nil
	}
	return nil, fmt.Errorf("exit R status=S or signal=NAME")
}

func hasWord(f []string, w string) bool {
	for _, x := range f[1:] {
		if x == w {
			return true
		}
	}
	return false
}

func formatAction(a Action) string {
	switch a := a.(type) {
	case StartRank:
		return fmt.Sprintf("start %d", a.Rank)
	case Kill:
		return fmt.Sprintf("kill %s %s", ints(a.Ranks), a.Sig)
	case Arm:
		return fmt.Sprintf("arm %s %v", a.Timer, a.After)
	case Disarm:
		return fmt.Sprintf("disarm %s", a.Timer)
	case Print:
		if a.Verbose {
			return "vprint " + a.Text
		}
		return "print " + a.Text
	case AskWhere:
		return "ask-where " + strings.Join(a.Who, "; ")
	case TellDeadlock:
		return "tell-deadlock " + a.Text + " | stacks of " + strings.Join(a.Who, "; ")
	case Close:
		return "close"
	case WriteReport:
		return "write-report"
	case Exit:
		return fmt.Sprintf("exit %d", a.Code)
	}
	return fmt.Sprintf("%#v", a)
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// diff shows the first differing lines of want and got.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n  script:  %q\n  machine: %q", i+1, a, b)
		}
	}
	return "(same lines)"
}
