// Command fdprog counts the descriptors of a rank and of its page server
// after rank.Init and a barrier, for the formulas of internal/limits.
package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/dsmexec/dsmexec/rank"
)

func main() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Barrier(); err != nil {
		log.Fatal(err)
	}
	self := count("self")
	pager := -1
	if kids := children(); len(kids) == 1 {
		pager = count(kids[0])
	}
	// Everyone counted before anyone finalizes (which closes connections).
	if err := w.Barrier(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("fds rank=%d pager=%d\n", self, pager)
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}

func count(pid string) int {
	ents, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		return -1
	}
	if pid == "self" {
		return len(ents) - 1 // the directory being read
	}
	return len(ents)
}

// children lists this process's child pids (over all its threads).
func children() []string {
	var kids []string
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		kids = append(kids, strings.Fields(string(b))...)
	}
	return kids
}
