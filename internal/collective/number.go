package collective

import (
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"unsafe"
)

// Number is an element type of the reductions: every integer and
// floating-point kind but uintptr. int and uint travel as 8 bytes.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 |
		~float32 | ~float64
}

// Op is a reduction operation.
//
// Sum and Prod wrap around on integer overflow, like Go arithmetic. Min and
// Max follow Go's built-in min and max: if any rank's element is a NaN the
// result is NaN, and -0 is less than +0. Land and Lor treat non-zero as
// true and give 1 or 0 (also with one rank). Band, Bor and Bxor are for
// integer types only. Every rank of an Allreduce gets the same bits, but a
// floating-point Sum or Prod may differ in the last bits from a
// left-to-right serial loop, because the order of the additions follows
// the algorithm.
type Op uint8

// The operations. The zero Op is invalid, so that a forgotten op is an error.
const (
	Sum Op = iota + 1
	Prod
	Min
	Max
	Land
	Lor
	Band
	Bor
	Bxor
)

var opNames = [...]string{Sum: "Sum", Prod: "Prod", Min: "Min", Max: "Max",
	Land: "Land", Lor: "Lor", Band: "Band", Bor: "Bor", Bxor: "Bxor"}

func (o Op) String() string {
	if o.valid() {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

func (o Op) valid() bool { return o >= Sum && o <= Bxor }

// Bitwise reports whether o is Band, Bor or Bxor (integers only).
func (o Op) Bitwise() bool { return o >= Band && o <= Bxor }

func (o Op) logical() bool { return o == Land || o == Lor }

// elemType is the wire code of a Number type; int and uint travel as 8 bytes.
type elemType uint8

const (
	elemInt elemType = iota + 1
	elemInt32
	elemInt64
	elemUint32
	elemUint64
	elemFloat32
	elemFloat64
	elemInt8
	elemInt16
	elemUint
	elemUint8
	elemUint16
)

var elemNames = [...]string{0: "none", elemInt: "int", elemInt32: "int32", elemInt64: "int64",
	elemUint32: "uint32", elemUint64: "uint64", elemFloat32: "float32", elemFloat64: "float64",
	elemInt8: "int8", elemInt16: "int16", elemUint: "uint", elemUint8: "uint8", elemUint16: "uint16"}

func (e elemType) String() string {
	if int(e) < len(elemNames) {
		return elemNames[e]
	}
	return fmt.Sprintf("elem(%d)", uint8(e))
}

func (e elemType) size() int {
	switch e {
	case elemInt8, elemUint8:
		return 1
	case elemInt16, elemUint16:
		return 2
	case elemInt32, elemUint32, elemFloat32:
		return 4
	}
	return 8
}

func (e elemType) float() bool { return e == elemFloat32 || e == elemFloat64 }

func elemOf[T Number]() elemType {
	switch reflect.TypeFor[T]().Kind() {
	case reflect.Int:
		return elemInt
	case reflect.Int8:
		return elemInt8
	case reflect.Int16:
		return elemInt16
	case reflect.Int32:
		return elemInt32
	case reflect.Int64:
		return elemInt64
	case reflect.Uint:
		return elemUint
	case reflect.Uint8:
		return elemUint8
	case reflect.Uint16:
		return elemUint16
	case reflect.Uint32:
		return elemUint32
	case reflect.Uint64:
		return elemUint64
	case reflect.Float32:
		return elemFloat32
	case reflect.Float64:
		return elemFloat64
	}
	panic(fmt.Sprintf("collective: %v is not a Number", reflect.TypeFor[T]()))
}

// ElemName names T as errors do ("float64").
func ElemName[T Number]() string { return elemOf[T]().String() }

// fastPath is set where the machine's layout of every Number is the wire
// layout (little-endian), so that elements are used in place. Tests clear
// it to exercise the portable path.
var fastPath = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// sameLayout reports whether T in memory is laid out as e on the wire.
func sameLayout[T Number](e elemType) bool {
	var z T
	return fastPath && int(unsafe.Sizeof(z)) == e.size()
}

// view returns b as a []T without copying, if the layouts agree and b is
// aligned for T.
func view[T Number](b []byte, e elemType) ([]T, bool) {
	var z T
	sz := int(unsafe.Sizeof(z))
	if !sameLayout[T](e) || len(b)%sz != 0 {
		return nil, false
	}
	if len(b) == 0 {
		return []T{}, true
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%unsafe.Alignof(z) != 0 {
		return nil, false
	}
	return unsafe.Slice((*T)(p), len(b)/sz), true
}

// bytesOf returns v's memory as bytes, if it is laid out as e on the wire.
func bytesOf[T Number](v []T, e elemType) ([]byte, bool) {
	if !sameLayout[T](e) {
		return nil, false
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), len(v)*e.size()), true
}

// decode returns the elements of b in fresh memory.
func decode[T Number](b []byte, e elemType) []T {
	n := len(b) / e.size()
	v := make([]T, n)
	if sameLayout[T](e) && n > 0 {
		// Same layout, b merely misaligned: one copy.
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(b)), b)
		return v
	}
	le := binary.LittleEndian
	for i := range v {
		switch e {
		case elemInt, elemInt64:
			v[i] = T(int64(le.Uint64(b[8*i:])))
		case elemUint, elemUint64:
			v[i] = T(le.Uint64(b[8*i:]))
		case elemInt8:
			v[i] = T(int8(b[i]))
		case elemUint8:
			v[i] = T(b[i])
		case elemInt16:
			v[i] = T(int16(le.Uint16(b[2*i:])))
		case elemUint16:
			v[i] = T(le.Uint16(b[2*i:]))
		case elemInt32:
			v[i] = T(int32(le.Uint32(b[4*i:])))
		case elemUint32:
			v[i] = T(le.Uint32(b[4*i:]))
		case elemFloat32:
			v[i] = T(math.Float32frombits(le.Uint32(b[4*i:])))
		case elemFloat64:
			v[i] = T(math.Float64frombits(le.Uint64(b[8*i:])))
		default:
			panic(fmt.Sprintf("collective: decode %v", e))
		}
	}
	return v
}

// encode writes v into b, which holds exactly len(v) elements.
func encode[T Number](b []byte, v []T, e elemType) {
	if w, ok := view[T](b, e); ok {
		copy(w, v)
		return
	}
	le := binary.LittleEndian
	for i, x := range v {
		switch e {
		case elemInt, elemInt64:
			le.PutUint64(b[8*i:], uint64(int64(x)))
		case elemUint, elemUint64:
			le.PutUint64(b[8*i:], uint64(x))
		case elemInt8:
			b[i] = byte(int8(x))
		case elemUint8:
			b[i] = byte(x)
		case elemInt16:
			le.PutUint16(b[2*i:], uint16(int16(x)))
		case elemUint16:
			le.PutUint16(b[2*i:], uint16(x))
		case elemInt32:
			le.PutUint32(b[4*i:], uint32(int32(x)))
		case elemUint32:
			le.PutUint32(b[4*i:], uint32(x))
		case elemFloat32:
			le.PutUint32(b[4*i:], math.Float32bits(float32(x)))
		case elemFloat64:
			le.PutUint64(b[8*i:], math.Float64bits(float64(x)))
		default:
			panic(fmt.Sprintf("collective: encode %v", e))
		}
	}
}

// result returns the elements of b as a []T, without copying when it can.
// b must not be used afterwards.
func result[T Number](b []byte, e elemType) []T {
	if v, ok := view[T](b, e); ok {
		return v
	}
	return decode[T](b, e)
}

// combineWire sets dst[i] = dst[i] op src[i] for the encoded vectors dst
// and src of equal length.
func combineWire[T Number](dst, src []byte, e elemType, op Op) {
	if len(dst) != len(src) {
		panic(fmt.Sprintf("collective: combine %d bytes with %d", len(dst), len(src)))
	}
	if d, ok := view[T](dst, e); ok {
		s, ok := view[T](src, e)
		if !ok {
			s = decode[T](src, e)
		}
		combine(d, s, op)
		return
	}
	d := decode[T](dst, e)
	combine(d, decode[T](src, e), op)
	encode(dst, d, e)
}

// combineElems is combineWire for the Go type that e travels as: T's
// arithmetic depends only on its kind, which e names, so this gives the
// bits combineWire[T] gives. Not generic, so that it is a func value
// without an allocation.
func combineElems(dst, src []byte, e elemType, op Op) {
	switch e {
	case elemInt, elemInt64:
		combineWire[int64](dst, src, e, op)
	case elemUint, elemUint64:
		combineWire[uint64](dst, src, e, op)
	case elemInt8:
		combineWire[int8](dst, src, e, op)
	case elemUint8:
		combineWire[uint8](dst, src, e, op)
	case elemInt16:
		combineWire[int16](dst, src, e, op)
	case elemUint16:
		combineWire[uint16](dst, src, e, op)
	case elemInt32:
		combineWire[int32](dst, src, e, op)
	case elemUint32:
		combineWire[uint32](dst, src, e, op)
	case elemFloat32:
		combineWire[float32](dst, src, e, op)
	case elemFloat64:
		combineWire[float64](dst, src, e, op)
	default:
		panic(fmt.Sprintf("collective: combine %v", e))
	}
}

// combine sets dst[i] = dst[i] op src[i]. The loops are unrolled by four:
// the 1 MiB Allreduce spends its CPU time here.
func combine[T Number](dst, src []T, op Op) {
	src = src[:len(dst)]
	i := 0
	switch op {
	case Sum:
		for ; i+4 <= len(dst); i += 4 {
			d, s := dst[i:i+4:i+4], src[i:i+4:i+4]
			d[0] += s[0]
			d[1] += s[1]
			d[2] += s[2]
			d[3] += s[3]
		}
		for ; i < len(dst); i++ {
			dst[i] += src[i]
		}
	case Prod:
		for ; i+4 <= len(dst); i += 4 {
			d, s := dst[i:i+4:i+4], src[i:i+4:i+4]
			d[0] *= s[0]
			d[1] *= s[1]
			d[2] *= s[2]
			d[3] *= s[3]
		}
		for ; i < len(dst); i++ {
			dst[i] *= src[i]
		}
	case Min:
		for ; i < len(dst); i++ {
			dst[i] = min(dst[i], src[i])
		}
	case Max:
		for ; i < len(dst); i++ {
			dst[i] = max(dst[i], src[i])
		}
	case Land:
		for ; i < len(dst); i++ {
			dst[i] = truth[T](dst[i] != 0 && src[i] != 0)
		}
	case Lor:
		for ; i < len(dst); i++ {
			dst[i] = truth[T](dst[i] != 0 || src[i] != 0)
		}
	// Bitwise ops on a type set with floats: through uint64, which keeps
	// the low bits of every integer kind (floats are refused before).
	case Band:
		for ; i < len(dst); i++ {
			dst[i] = T(uint64(dst[i]) & uint64(src[i]))
		}
	case Bor:
		for ; i < len(dst); i++ {
			dst[i] = T(uint64(dst[i]) | uint64(src[i]))
		}
	case Bxor:
		for ; i < len(dst); i++ {
			dst[i] = T(uint64(dst[i]) ^ uint64(src[i]))
		}
	default:
		panic(fmt.Sprintf("collective: combine with %v", op))
	}
}

func truth[T Number](b bool) T {
	if b {
		return 1
	}
	return 0
}

// normalize makes v's elements 1 or 0 for a logical op (so that one rank's
// result, and the combining, see only truth values), in place.
func normalize[T Number](v []T, op Op) {
	if !op.logical() {
		return
	}
	for i, x := range v {
		v[i] = truth[T](x != 0)
	}
}
