//go:build !linux || !(amd64 || arm64)

package shm

import "time"

// Create returns ErrNotSupported on this platform.
func Create(ringSize int) (*Segment, string, error) { return nil, "", ErrNotSupported }

// Open returns ErrNotSupported on this platform.
func Open(name string) (*Segment, error) { return nil, ErrNotSupported }

// Unlink returns ErrNotSupported on this platform.
func (s *Segment) Unlink() error { return ErrNotSupported }

// Close returns ErrNotSupported on this platform.
func (s *Segment) Close() error { return ErrNotSupported }

func futexWait(addr *uint32, val uint32, d time.Duration) {}
func futexWake(addr *uint32)                              {}

func osYield() {}
