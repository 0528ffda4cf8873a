package rank

import (
	"slices"
	"strings"
	"testing"
)

func TestSendRecvSliceSingleton(t *testing.T) {
	w, err := InitWith(ErrorsReturn)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finalize()
	type pt struct {
		X, Y float32
		Ok   bool
	}
	in := []pt{{1, 2, true}, {3, 4, false}}
	if err := SendSlice(w, 0, 7, in); err != nil {
		t.Fatal(err)
	}
	in[0].X = 99 // the message was taken when SendSlice returned
	got, st, err := RecvSlice[pt](w, AnySource, AnyTag)
	if err != nil {
		t.Fatal(err)
	}
	if want := []pt{{1, 2, true}, {3, 4, false}}; !slices.Equal(got, want) || st.Source != 0 || st.Tag != 7 || st.Count != 18 {
		t.Fatalf("got %v %+v", got, st)
	}
	nums := []int{1, -2, 3 << 40}
	if err := SendSlice(w, 0, 1, nums); err != nil {
		t.Fatal(err)
	}
	back, st, err := RecvSlice[int](w, 0, 1)
	if err != nil || !slices.Equal(back, nums) || st.Count != 24 {
		t.Fatalf("ints: %v %+v %v", back, st, err)
	}
	// A length that is not a whole number of elements is an error naming the call.
	if err := w.Send(0, 2, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := RecvSlice[int32](w, 0, 2); err == nil || !strings.Contains(err.Error(), "RecvSlice") {
		t.Fatalf("3 bytes as int32: %v", err)
	}
	if err := SendSlice(w, 0, 3, []string{"no"}); err == nil || !strings.Contains(err.Error(), "SendSlice") {
		t.Fatalf("[]string: %v", err)
	}
}
