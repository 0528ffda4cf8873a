package trace

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func TestOffsetTable(t *testing.T) {
	ms := int64(time.Millisecond)
	us := int64(time.Microsecond)
	tests := []struct {
		name        string
		samples     []ClockSample
		off, bound  time.Duration
		wantNoValid bool
	}{
		{
			name: "same clock, symmetric 100us each way, peer holds 10us",
			// t0=0, t1=100us, t2=110us, t3=210us
			samples: []ClockSample{{0, 100 * us, 110 * us, 210 * us}},
			off:     0, bound: 100 * time.Microsecond,
		},
		{
			name:    "peer 5ms ahead",
			samples: []ClockSample{{1000 * us, 1000*us + 5*ms + 50*us, 1000*us + 5*ms + 60*us, 1110 * us}},
			off:     5 * time.Millisecond, bound: 50 * time.Microsecond,
		},
		{
			name:    "peer 2s behind",
			samples: []ClockSample{{10 * ms, 10*ms - 2000*ms + 20*us, 10*ms - 2000*ms + 30*us, 10*ms + 50*us}},
			off:     -2 * time.Second, bound: 20 * time.Microsecond,
		},
		{
			name: "the smallest round trip wins",
			samples: []ClockSample{
				{0, 900 * us, 900 * us, 1000 * us}, // rtt 1ms, asymmetric: offset would read 400us
				{0, 10 * us, 12 * us, 22 * us},     // rtt 20us, offset 0
				{0, 300 * us, 301 * us, 700 * us},  // rtt 699us
			},
			off: 0, bound: 10 * time.Microsecond,
		},
		{
			name: "backwards samples are skipped",
			samples: []ClockSample{
				{100, 0, 0, 50},   // t3 < t0
				{0, 100, 50, 200}, // t2 < t1
				{0, 40, 60, 100},  // rtt 80
			},
			off: 0, bound: 40,
		},
		{name: "none", samples: nil, wantNoValid: true},
		{name: "all invalid", samples: []ClockSample{{5, 0, 0, 1}}, wantNoValid: true},
		{name: "rtt negative", samples: []ClockSample{{0, 0, 100, 10}}, wantNoValid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off, bound, err := Offset(tt.samples)
			if tt.wantNoValid {
				if !errors.Is(err, ErrNoClockSample) {
					t.Fatalf("err %v, want ErrNoClockSample", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if off != tt.off || bound != tt.bound {
				t.Fatalf("offset %v ± %v, want %v ± %v", off, bound, tt.off, tt.bound)
			}
		})
	}
}

// With random network delays in each direction, the true offset is always
// within the returned bound of the estimate.
func TestOffsetBoundHolds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 2000; trial++ {
		trueOff := rng.Int64N(int64(10*time.Second)) - int64(5*time.Second)
		var samples []ClockSample
		local := int64(1_700_000_000) * int64(time.Second)
		for i := 0; i < 1+rng.IntN(8); i++ {
			up := rng.Int64N(int64(2 * time.Millisecond))
			hold := rng.Int64N(int64(50 * time.Microsecond))
			down := rng.Int64N(int64(2 * time.Millisecond))
			t0 := local
			t1 := t0 + up + trueOff
			t2 := t1 + hold
			t3 := t0 + up + hold + down
			samples = append(samples, ClockSample{t0, t1, t2, t3})
			local = t3 + rng.Int64N(int64(time.Millisecond))
		}
		off, bound, err := Offset(samples)
		if err != nil {
			t.Fatal(err)
		}
		diff := int64(off) - trueOff
		if diff < 0 {
			diff = -diff
		}
		if diff > int64(bound) {
			t.Fatalf("trial %d: estimate %v, true %v, off by %v > bound %v", trial, off, time.Duration(trueOff), time.Duration(diff), bound)
		}
	}
}
