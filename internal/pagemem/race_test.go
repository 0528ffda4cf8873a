//go:build race

package pagemem

const raceEnabled = true
