// Command rankprog is what mpirun's tests launch: one program whose first
// argument says how to behave. It uses only the DSMEXEC_* environment, not
// rank.Init.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	rank, _ := strconv.Atoi(os.Getenv("DSMEXEC_RANK"))
	if os.Getenv("RANKPROG_IGNORE_TERM") != "" {
		signal.Ignore(syscall.SIGTERM)
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "rankprog: mode?")
		os.Exit(2)
	}
	arg := func(i int) string {
		if i+2 < len(os.Args) {
			return os.Args[i+2]
		}
		return ""
	}
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	switch os.Args[1] {
	case "lines": // lines N: N lines per rank, in bursts, some long, some in pieces
		lines(rank, atoi(arg(0)))
	case "exit": // exit CODE WHO: rank WHO exits CODE once every rank is ready, the others sleep
		ready(rank)
		if rank == atoi(arg(1)) {
			os.Exit(atoi(arg(0)))
		}
		sleep()
	case "killself": // killself WHO: rank WHO dies by SIGKILL, the others sleep
		ready(rank)
		if rank == atoi(arg(0)) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		sleep()
	case "sleep": // print ready, sleep
		ready(rank)
		sleep()
	case "sleep-ignore-term": // like sleep, but ignore SIGTERM
		signal.Ignore(syscall.SIGTERM)
		ready(rank)
		sleep()
	case "spawn": // start a grandchild that sleeps, then sleep
		c := exec.Command(os.Args[0], "sleep")
		c.Stdout = os.Stdout
		if err := c.Start(); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		ready(rank)
		sleep()
	case "env": // env NAME...: print NAME=value (or NAME unset)
		for _, n := range os.Args[2:] {
			if v, ok := os.LookupEnv(n); ok {
				fmt.Printf("%s=%s\n", n, v)
			} else {
				fmt.Printf("%s unset\n", n)
			}
		}
	case "whoami": // whoami ARGS...: print the program's name, working directory, arguments, $ROLE and the size
		wd, _ := os.Getwd()
		fmt.Printf("prog=%s dir=%s args=%s ROLE=%s SIZE=%s\n", filepath.Base(os.Args[0]), wd, strings.Join(os.Args[2:], ","), os.Getenv("ROLE"), os.Getenv("DSMEXEC_SIZE"))
	case "cat": // copy stdin lines with a prefix, then say eof
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			fmt.Printf("in: %s\n", sc.Text())
		}
		fmt.Println("eof")
	case "touch": // touch PREFIX: create PREFIX.RANK
		os.WriteFile(fmt.Sprintf("%s.%d", arg(0), rank), nil, 0o644)
	case "exit-code": // exit-code CODE: every rank exits CODE at once
		os.Exit(atoi(arg(0)))
	default:
		fmt.Fprintln(os.Stderr, "rankprog: unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func ready(rank int) { fmt.Printf("ready %d\n", rank) }

func sleep() { time.Sleep(10 * time.Minute) }

// Pad is the filler of line i of rank r: long lines now and then.
func pad(r, i int) int {
	switch {
	case i%97 == 0:
		return 200_000 + r // longer than a pipe buffer
	case i%13 == 0:
		return 5000
	default:
		return (i * (r + 1)) % 120
	}
}

func lines(rank, n int) {
	out := os.Stdout
	var burst []byte
	for i := 0; i < n; i++ {
		l := fmt.Sprintf("rank %d line %d %s\n", rank, i, strings.Repeat("x", pad(rank, i)))
		switch {
		case i%10 == 3:
			// A line written in two pieces with a pause between.
			out.Write(burst)
			burst = burst[:0]
			out.WriteString(l[:len(l)/2])
			time.Sleep(100 * time.Microsecond)
			out.WriteString(l[len(l)/2:])
		default:
			burst = append(burst, l...)
			if len(burst) > 16<<10 {
				out.Write(burst)
				burst = burst[:0]
			}
		}
		if i%100 == 0 {
			fmt.Fprintf(os.Stderr, "rank %d err %d\n", rank, i)
		}
	}
	out.Write(burst)
	fmt.Fprintf(out, "rank %d end", rank) // no newline
}
