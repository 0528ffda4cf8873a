//go:build !race

package rank

const raceOn = false
