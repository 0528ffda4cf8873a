package units

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "4096": 4096, "64M": 64 << 20, "1GiB": 1 << 30, "2k": 2048, "3 MiB": 3 << 20,
		"10KB": 10 << 10, "7b": 7, "1TiB": 1 << 40, "1T": 1 << 40, "2tb": 2 << 40, "16TiB": MaxRegion,
		"16384G": MaxRegion, " 5 gib ": 5 << 30,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "+1", "M", "1.5G", "1P", "0x10", "1 1K"} {
		if _, err := ParseSize(bad); err == nil || !strings.Contains(err.Error(), "not a size") {
			t.Errorf("ParseSize(%q): %v, want a 'not a size' error", bad, err)
		}
	}
	for _, big := range []string{"99999999999G", "16385G", "70000G", "17TiB", "17592186044417", "99999999999999999999999"} {
		_, err := ParseSize(big)
		if err == nil || !strings.Contains(err.Error(), "at most 16TiB") {
			t.Errorf("ParseSize(%q): %v, want an error naming the 16TiB cap", big, err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 1: "1", 4097: "4097", 4096: "4KiB", 64 << 20: "64MiB", 3 << 30: "3GiB", MaxRegion: "16TiB", 1<<40 + 1<<30: "1025GiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// FuzzParseSize: no panic, never a negative or over-the-cap result, and
// what it accepts formats and parses back to the same number.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "4096", "64M", "1GiB", "2k", "16TiB", "16385G", " 3 mib", "-1", "1T", "99999999999999999999G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "size ") {
				t.Fatalf("ParseSize(%q): error %q does not name the size", s, err)
			}
			return
		}
		if n < 0 || n > MaxRegion {
			t.Fatalf("ParseSize(%q) = %d, outside [0, MaxRegion]", s, n)
		}
		back, err := ParseSize(FormatSize(n))
		if err != nil || back != n {
			t.Fatalf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, FormatSize(n), back, err)
		}
	})
}
