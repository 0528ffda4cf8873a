package rank

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"unsafe"
)

// Encode returns v as bytes, the encoding every typed call (SendSlice,
// BcastSlice, ...) uses: little-endian, elements one after the other, int
// and uint as 64-bit values. T is any fixed-size type encoding/binary
// accepts: numbers, bool, and arrays and structs of them (structs without
// int, uint or padding-free assumptions: their fields are packed as
// encoding/binary packs them). Plain numbers and bool are copied in bulk,
// without looking at each element. Encode panics for other types (a
// string, a slice, a struct holding an int): that is a mistake in the
// program, not a runtime condition; the typed collectives check T first
// and return an error instead.
func Encode[T any](v []T) []byte {
	k, size, err := layout[T]()
	if err != nil {
		panic(fmt.Sprintf("rank: Encode: %v", err))
	}
	switch {
	case k == kindBulk && littleEndian || k == kindBool:
		out := make([]byte, len(v)*size)
		if len(v) > 0 {
			copy(out, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), len(out)))
		}
		return out
	case k == kindInt || k == kindUint:
		// int and uint of 32 bits, or a big-endian host: one by one.
		out := make([]byte, 8*len(v))
		for i := range v {
			p := unsafe.Pointer(&v[i])
			var x uint64
			switch {
			case k == kindInt:
				x = uint64(int64(*(*int)(p)))
			default:
				x = uint64(*(*uint)(p))
			}
			binary.LittleEndian.PutUint64(out[8*i:], x)
		}
		return out
	}
	out, err := binary.Append(make([]byte, 0, len(v)*size), binary.LittleEndian, v)
	if err != nil {
		panic(fmt.Sprintf("rank: Encode: %v", err))
	}
	return out
}

// Decode is the inverse of Encode. A length that is not a multiple of the
// element's encoded size, or a T Encode does not accept, is an error. A
// bool is true for any non-zero byte.
func Decode[T any](b []byte) ([]T, error) {
	k, size, err := layout[T]()
	if err != nil {
		return nil, fmt.Errorf("rank: Decode: %w", err)
	}
	if len(b)%size != 0 {
		return nil, fmt.Errorf("rank: Decode: %d bytes is not a whole number of %d-byte %v", len(b), size, reflect.TypeFor[T]())
	}
	n := len(b) / size
	v := make([]T, n)
	switch {
	case k == kindBool:
		for i, x := range b {
			*(*bool)(unsafe.Pointer(&v[i])) = x != 0
		}
	case k == kindBulk && littleEndian:
		if n > 0 {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), len(b)), b)
		}
	case k == kindInt || k == kindUint:
		for i := range v {
			x := binary.LittleEndian.Uint64(b[8*i:])
			p := unsafe.Pointer(&v[i])
			if k == kindInt {
				*(*int)(p) = int(int64(x))
			} else {
				*(*uint)(p) = uint(x)
			}
		}
	default:
		if err := binary.Read(bytes.NewReader(b), binary.LittleEndian, v); err != nil {
			return nil, fmt.Errorf("rank: Decode: %w", err)
		}
	}
	return v, nil
}

// How a type is encoded.
const (
	kindBulk   = iota + 1 // fixed-size numbers: the memory is the encoding on a little-endian host
	kindBool              // one byte, 0 or 1 (decoding normalises)
	kindInt               // int, as int64
	kindUint              // uint, as uint64
	kindBinary            // arrays and structs: encoding/binary
)

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// layout says how T is encoded and its encoded size.
func layout[T any]() (kind, size int, err error) {
	t := reflect.TypeFor[T]()
	switch t.Kind() {
	case reflect.Int8, reflect.Uint8, reflect.Int16, reflect.Uint16, reflect.Int32, reflect.Uint32,
		reflect.Int64, reflect.Uint64, reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return kindBulk, int(t.Size()), nil
	case reflect.Bool:
		return kindBool, 1, nil
	case reflect.Int:
		if t.Size() == 8 && littleEndian {
			return kindBulk, 8, nil
		}
		return kindInt, 8, nil
	case reflect.Uint:
		if t.Size() == 8 && littleEndian {
			return kindBulk, 8, nil
		}
		return kindUint, 8, nil
	}
	var z T
	if n := binary.Size(z); n > 0 {
		return kindBinary, n, nil
	}
	return 0, 0, fmt.Errorf("%v is not a fixed-size type of numbers and bools (encoding/binary's rules; int and uint only at the top level)", t)
}

// elemSize checks T for the typed call named call.
func elemSize[T any](call string) (int, error) {
	_, size, err := layout[T]()
	if err != nil {
		return 0, fmt.Errorf("rank: %s: %w", call, err)
	}
	return size, nil
}

// encodeView is Encode for bytes that are only read: for numbers on a
// little-endian host it is v's own memory, without a copy.
func encodeView[T any](v []T) []byte {
	if k, size, err := layout[T](); err == nil && (k == kindBulk && littleEndian || k == kindBool) {
		if len(v) == 0 {
			return []byte{}
		}
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), len(v)*size)
	}
	return Encode(v)
}

// decodeOwned is Decode for bytes nobody else holds: for numbers on a
// little-endian host, when b is aligned for T, the result is b's own
// memory, without a copy.
func decodeOwned[T any](b []byte) ([]T, error) {
	k, size, err := layout[T]()
	if err == nil && k == kindBulk && littleEndian && len(b)%size == 0 && len(b) > 0 &&
		uintptr(unsafe.Pointer(unsafe.SliceData(b)))%uintptr(reflect.TypeFor[T]().Align()) == 0 {
		return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/size), nil
	}
	return Decode[T](b)
}

// decodeAll decodes blocks into one slice, in order (one copy for numbers).
func decodeAll[T any](blocks [][]byte) ([]T, error) {
	k, size, err := layout[T]()
	if err != nil {
		return nil, fmt.Errorf("rank: Decode: %w", err)
	}
	if k != kindBulk || !littleEndian {
		var out []T
		for _, b := range blocks {
			v, err := Decode[T](b)
			if err != nil {
				return nil, err
			}
			out = append(out, v...)
		}
		if out == nil {
			out = []T{}
		}
		return out, nil
	}
	total := 0
	for _, b := range blocks {
		if len(b)%size != 0 {
			return nil, fmt.Errorf("rank: Decode: %d bytes is not a whole number of %d-byte %v", len(b), size, reflect.TypeFor[T]())
		}
		total += len(b)
	}
	out := make([]T, total/size)
	if total > 0 {
		dst := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), total)
		off := 0
		for _, b := range blocks {
			off += copy(dst[off:], b)
		}
	}
	return out, nil
}
