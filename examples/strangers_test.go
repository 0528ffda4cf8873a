package examples_test

import (
	"bufio"
	"bytes"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/auth"
)

// TestStrangersDoNotDisturb connects to a running job's master socket and to
// a rank's port with garbage and with a wrong token: they are refused, and
// the job finishes normally with the right result.
func TestStrangersDoNotDisturb(t *testing.T) {
	cmd := exec.Command(filepath.Join(bin, "mpirun"), "-np", "3", "-v", "-timeout", "60s",
		filepath.Join(bin, "ring"), "-laps", "30000")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	masterRe := regexp.MustCompile(`master listening on (127\.0\.0\.1:\d+)`)
	meshRe := regexp.MustCompile(`mesh on (127\.0\.0\.1:\d+)`)
	var mu sync.Mutex
	var log strings.Builder
	addrs := make(chan string, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			log.WriteString(line + "\n")
			mu.Unlock()
			for _, re := range []*regexp.Regexp{masterRe, meshRe} {
				if m := re.FindStringSubmatch(line); m != nil {
					addrs <- m[1]
				}
			}
		}
	}()
	// The master's address, then one rank's mesh address.
	var master, meshAddr string
	timeout := time.After(30 * time.Second)
	for master == "" || meshAddr == "" {
		select {
		case a := <-addrs:
			if master == "" {
				master = a
			} else if meshAddr == "" {
				meshAddr = a
			}
		case <-timeout:
			t.Fatal("no addresses in mpirun -v output")
		}
	}
	for _, addr := range []string{master, meshAddr} {
		// Garbage.
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			c.SetReadDeadline(time.Now().Add(15 * time.Second))
			buf := make([]byte, 64)
			c.Read(buf) // the job closes it (or it was never accepted)
			c.Close()
		}
		// A wrong token.
		if c, err := net.Dial("tcp", addr); err == nil {
			err := auth.Dial(c, bufio.NewReader(c), []byte("not the token"), 0, -1, time.Now().Add(15*time.Second))
			if err == nil {
				t.Errorf("%s accepted a wrong token", addr)
			}
			c.Close()
		}
	}
	if err := cmd.Wait(); err != nil {
		<-done
		t.Fatalf("job failed after strangers connected: %v\n%s%s", err, stdout.String(), log.String())
	}
	<-done
	if !strings.Contains(stdout.String(), "correct") {
		t.Fatalf("ring's result missing:\n%s", stdout.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(log.String(), "refused a connection") {
		t.Fatalf("the master did not log the strangers:\n%s", log.String())
	}
}
