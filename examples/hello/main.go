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
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	host, _ := os.Hostname()
	fmt.Printf("hello from rank %d of %d on %s (%s, pid %d)\n", w.Rank(), w.Size(), w.Host(), host, os.Getpid())
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}
