// hello prints each rank's place in the job.
//
//	mpirun -np 4 ./bin/hello
package main

import (
	"fmt"
	"log"
	"os"

	"github.com/dsmexec/dsmexec/rank"
)

func main() {
	// tutorial:begin hello
	w, err := rank.Init() // join the job
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize() // leave it when main returns
	host, _ := os.Hostname()
	fmt.Printf("hello from rank %d of %d on %s (%s, pid %d)\n", w.Rank(), w.Size(), w.Host(), host, os.Getpid())
	// tutorial:end
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}
