//go:build race

package verify

// raceEnabled: the race detector slows byte loops ~10x; the hostile-input
// test then uses smaller sizes (still far above anything real).
const raceEnabled = true
