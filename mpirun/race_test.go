//go:build race

package main

// raceEnabled: the test binary is built with -race, so build mpirun with it
// too and let the race detector watch the real launcher.
const raceEnabled = true
