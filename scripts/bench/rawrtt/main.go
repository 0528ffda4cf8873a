// Command rawrtt is the baseline of the shared-memory figures in `make
// bench`: a plain Go TCP round trip between two processes on loopback, a
// 16-byte request answered by a 4 KiB reply (what a remote read fault moves,
// with nothing else). The driver starts a server and a client:
//
//	rawrtt serve                      prints "ADDR 127.0.0.1:port", serves one client
//	rawrtt client -addr A -n 10000    prints "BENCH rawrtt.mean_ns ..." etc.
//
// Both ends use blocking Go net.Conn reads and writes (the runtime's netpoller),
// TCP_NODELAY on (Go's default), every call under a deadline.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"slices"
	"time"
)

const (
	reqSize   = 16
	replySize = 4096
	deadline  = 2 * time.Minute
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: rawrtt serve | rawrtt client -addr host:port -n N")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "", "client: the server's address")
	n := fs.Int("n", 10000, "client: timed round trips")
	fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve()
	case "client":
		err = client(*addr, *n)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		log.Fatalf("rawrtt: %v", err)
	}
}

// serve answers one client: every 16-byte request gets a 4 KiB reply whose
// bytes are the request's first byte, until the client closes.
func serve() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Printf("ADDR %s\n", ln.Addr())
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(deadline))
	c, err := ln.Accept()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(deadline))
	req := make([]byte, reqSize)
	reply := make([]byte, replySize)
	for {
		if _, err := io.ReadFull(c, req); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("read request: %w", err)
		}
		for i := range reply {
			reply[i] = req[0]
		}
		if _, err := c.Write(reply); err != nil {
			return fmt.Errorf("write reply: %w", err)
		}
	}
}

func client(addr string, n int) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(deadline))
	req := make([]byte, reqSize)
	reply := make([]byte, replySize)
	times := make([]time.Duration, 0, n)
	const warm = 200
	for i := -warm; i < n; i++ {
		req[0] = byte(i)
		t := time.Now()
		if _, err := c.Write(req); err != nil {
			return fmt.Errorf("write request: %w", err)
		}
		if _, err := io.ReadFull(c, reply); err != nil {
			return fmt.Errorf("read reply: %w", err)
		}
		d := time.Since(t)
		if reply[0] != byte(i) || !bytes.Equal(reply[:1], reply[replySize-1:]) {
			return fmt.Errorf("round trip %d: reply does not echo the request", i)
		}
		if i >= 0 {
			times = append(times, d)
		}
	}
	slices.Sort(times)
	var sum time.Duration
	for _, d := range times {
		sum += d
	}
	fmt.Printf("BENCH rawrtt.count %d\n", n)
	fmt.Printf("BENCH rawrtt.mean_ns %g\n", float64(sum.Nanoseconds())/float64(n))
	fmt.Printf("BENCH rawrtt.p50_ns %d\n", times[n/2].Nanoseconds())
	fmt.Printf("BENCH rawrtt.p99_ns %d\n", times[min(n-1, n*99/100)].Nanoseconds())
	fmt.Printf("BENCH rawrtt.max_ns %d\n", times[n-1].Nanoseconds())
	return nil
}
