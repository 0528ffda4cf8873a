package rank

import "fmt"

// SendSlice sends v to rank `to` with a tag, encoded as Encode does (numbers
// go from v's own memory, without a copy). It returns once v is handed to
// the connection: v may be reused.
func SendSlice[T any](c Communicator, to, tag int, v []T) error {
	if _, err := elemSize[T]("SendSlice"); err != nil {
		return err
	}
	return c.Send(to, tag, encodeView(v))
}

// RecvSlice receives a message sent by SendSlice (or any message whose
// length is a whole number of T) from rank `from` (or AnySource) with the
// tag (or AnyTag). Status.Count is in bytes, as for every receive.
func RecvSlice[T any](c Communicator, from, tag int) ([]T, Status, error) {
	if _, err := elemSize[T]("RecvSlice"); err != nil {
		return nil, Status{}, err
	}
	b, st, err := c.RecvStatus(from, tag)
	if err != nil {
		return nil, st, err
	}
	v, err := decodeOwned[T](b)
	if err != nil {
		return nil, st, fmt.Errorf("rank: RecvSlice from rank %d, tag %d: %w", st.Source, st.Tag, err)
	}
	return v, st, nil
}
