package dsm

import (
	"fmt"
	"time"
)

// Stats counts what this rank's memory did.
type Stats struct {
	ReadFaults    uint64        // faults that needed a read copy from the protocol
	WriteFaults   uint64        // faults that needed write access
	PagesIn       uint64        // pages received from peers
	PagesOut      uint64        // pages sent to peers
	BytesIn       uint64        // page bytes received
	BytesOut      uint64        // page bytes sent
	Invalidations uint64        // copies this rank dropped because another wrote
	FaultTime     time.Duration // total time from fault to access granted
	MaxFaultTime  time.Duration
}

// MeanFaultTime is the average fault service time.
func (s Stats) MeanFaultTime() time.Duration {
	n := s.ReadFaults + s.WriteFaults
	if n == 0 {
		return 0
	}
	return s.FaultTime / time.Duration(n)
}

// StatColumns are the column names of Stats.Map, in table order.
var StatColumns = []string{"faults r/w", "pages in/out", "bytes in/out", "invalidations", "fault mean/max"}

// Map renders the counters for mpirun's summary table.
func (s Stats) Map() map[string]string {
	return map[string]string{
		"faults r/w":     fmt.Sprintf("%d/%d", s.ReadFaults, s.WriteFaults),
		"pages in/out":   fmt.Sprintf("%d/%d", s.PagesIn, s.PagesOut),
		"bytes in/out":   fmt.Sprintf("%s/%s", human(s.BytesIn), human(s.BytesOut)),
		"invalidations":  fmt.Sprint(s.Invalidations),
		"fault mean/max": fmt.Sprintf("%v/%v", s.MeanFaultTime().Round(100*time.Nanosecond), s.MaxFaultTime.Round(100*time.Nanosecond)),
	}
}

func human(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", b)
}

// RawColumns are the names of Stats.Raw, in table order.
var RawColumns = []string{"read_faults", "write_faults", "pages_in", "pages_out", "bytes_in", "bytes_out", "invalidations", "fault_mean_seconds", "fault_max_seconds"}

// Raw is what Map shows, as numbers for mpirun's csv and json reports:
// counts, bytes, and times in seconds.
func (s Stats) Raw() map[string]float64 {
	return map[string]float64{
		"read_faults":        float64(s.ReadFaults),
		"write_faults":       float64(s.WriteFaults),
		"pages_in":           float64(s.PagesIn),
		"pages_out":          float64(s.PagesOut),
		"bytes_in":           float64(s.BytesIn),
		"bytes_out":          float64(s.BytesOut),
		"invalidations":      float64(s.Invalidations),
		"fault_mean_seconds": s.MeanFaultTime().Seconds(),
		"fault_max_seconds":  s.MaxFaultTime.Seconds(),
	}
}
