package trace

import (
	"errors"
	"time"
)

// ClockSample is one exchange of the clock measurement, as in NTP: the
// local side sends at T0 (local clock), the peer receives at T1 and replies
// at T2 (peer clock), the local side receives the reply at T3 (local clock).
// Times are nanoseconds on each side's own clock (e.g. UnixNano).
type ClockSample struct {
	T0, T1, T2, T3 int64
}

// RTT is the sample's round trip, the time spent on the network: the
// elapsed local time minus the time the peer held the request.
func (s ClockSample) RTT() time.Duration {
	return time.Duration((s.T3 - s.T0) - (s.T2 - s.T1))
}

// ErrNoClockSample is returned when no sample is usable.
var ErrNoClockSample = errors.New("trace: no usable clock sample")

// Offset estimates the peer's clock minus the local clock from samples:
// it takes the sample with the smallest round trip (the one least
// disturbed by queueing) and returns ((T1-T0)+(T2-T3))/2 with the error
// bound rtt/2: whatever the split of the round trip between the two
// directions, the true offset is within offset ± bound. Samples whose
// times go backwards on either side are skipped.
//
// A peer time t is local time t - offset.
func Offset(samples []ClockSample) (offset, bound time.Duration, err error) {
	best := -1
	var bestRTT time.Duration
	for i, s := range samples {
		if s.T3 < s.T0 || s.T2 < s.T1 {
			continue
		}
		rtt := s.RTT()
		if rtt < 0 {
			continue
		}
		if best < 0 || rtt < bestRTT {
			best, bestRTT = i, rtt
		}
	}
	if best < 0 {
		return 0, 0, ErrNoClockSample
	}
	s := samples[best]
	// Halve each difference before adding: UnixNano values near the range
	// limits would overflow the sum.
	off := (s.T1-s.T0)/2 + (s.T2-s.T3)/2
	return time.Duration(off), (bestRTT + 1) / 2, nil
}
