// probe receives messages whose size the receiver does not know in
// advance. Every rank sends rank 0 a report of its own length (a list of
// the numbers it "found", as text); rank 0 does not know who will report
// first nor how long each report is. It calls Probe(AnySource, tagReport),
// which waits for the next report without receiving it and returns its
// Status: the sender, the tag and the length in bytes. Then RecvInto
// receives exactly that message into a buffer of Status.Count bytes.
//
// Rank 0 checks every report against what its sender must have sent.
//
//	mpirun -np 4 ./bin/probe
package main

import (
	"flag"
	"fmt"
	"log"
	"strings"

	"github.com/dsmexec/dsmexec/rank"
)

const tagReport = 1

// report is what rank r sends: a line of r*r%7+1 numbers, so the reports
// differ in length from rank to rank.
func report(r int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rank %d found", r)
	for i := range r*r%7 + 1 {
		fmt.Fprintf(&b, " %d", r*100+i)
	}
	return b.String()
}

func main() {
	flag.Parse()
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	r, size := w.Rank(), w.Size()

	// Every rank reports, rank 0 too (a rank may send to itself: Send
	// does not wait for the matching receive).
	if err := w.Send(0, tagReport, []byte(report(r))); err != nil {
		log.Fatal(err)
	}
	if r == 0 {
		seen := make([]bool, size)
		total := 0
		check := func(from int, msg []byte) {
			if want := report(from); string(msg) != want || seen[from] {
				log.Fatalf("probe: from rank %d got %q (seen before: %v), want %q", from, msg, seen[from], want)
			}
			seen[from] = true
			total += len(msg)
		}
		// tutorial:begin probe
		for range size {
			st, err := w.Probe(rank.AnySource, tagReport)
			if err != nil {
				log.Fatal(err)
			}
			buf := make([]byte, st.Count) // exactly the message's size
			if _, _, err := w.RecvInto(st.Source, tagReport, buf); err != nil {
				log.Fatal(err)
			}
			fmt.Printf("probe: %d bytes from rank %d: %s\n", st.Count, st.Source, buf)
			check(st.Source, buf)
		}
		// tutorial:end
		fmt.Printf("probe: %d reports of %d bytes in all, each received whole into a buffer of its probed size: correct\n", size, total)
	}
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}
