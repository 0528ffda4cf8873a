package units

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxRegion is the largest size ParseSize accepts: 16 TiB, that is 2^32
// pages of 4 KiB, the most a 32-bit page number can name. mpirun refuses a
// larger -dsm-size before anything starts, and the dsm package may use it
// to refuse a larger region.
const MaxRegion int64 = 1 << 44

// MaxRegionText is MaxRegion as ParseSize's errors write it.
const MaxRegionText = "16TiB"

// suffixes are tried in order, so every longer spelling comes before the
// shorter one it ends with.
var suffixes = []struct {
	s     string
	shift uint
}{
	{"KIB", 10}, {"MIB", 20}, {"GIB", 30}, {"TIB", 40},
	{"KB", 10}, {"MB", 20}, {"GB", 30}, {"TB", 40},
	{"K", 10}, {"M", 20}, {"G", 30}, {"T", 40},
	{"B", 0},
}

// ParseSize reads a byte count such as 4096, 64M, 1GiB or 2T. Suffixes are
// case-insensitive and all powers of 1024. 0 is allowed; more than
// MaxRegion is an error that says the limit.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	upper := strings.ToUpper(t)
	shift := uint(0)
	for _, suf := range suffixes {
		if strings.HasSuffix(upper, suf.s) {
			shift = suf.shift
			t = strings.TrimSpace(t[:len(t)-len(suf.s)])
			break
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || t == "" || t[0] == '+' {
		return 0, fmt.Errorf("size %q: not a size (want e.g. 4096, 64M, 1GiB, 2TiB, or 0 for no shared region)", s)
	}
	if err != nil || n > uint64(MaxRegion)>>shift {
		return 0, fmt.Errorf("size %q: too large: at most %s (%d bytes)", s, MaxRegionText, MaxRegion)
	}
	return int64(n << shift), nil
}

// FormatSize writes n the way ParseSize reads it back: with the largest
// binary suffix that divides it exactly ("64MiB", "4097").
func FormatSize(n int64) string {
	for i := 3; i >= 0; i-- {
		shift := uint(10 * (i + 1))
		if n != 0 && n%(1<<shift) == 0 {
			return strconv.FormatInt(n>>shift, 10) + []string{"KiB", "MiB", "GiB", "TiB"}[i]
		}
	}
	return strconv.FormatInt(n, 10)
}
