//go:build race

package schemas

// raceEnabled scales the differential tests down under the race detector, which makes the
// reference engine some ten times slower; what they compare does not depend on it.
const raceEnabled = true
