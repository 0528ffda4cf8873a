package htmlreport_test

import (
	"bytes"
	"fmt"

	"github.com/dsmexec/dsmexec/internal/htmlreport"
)

func ExampleWrite() {
	r := &htmlreport.Report{
		Title:    "ring: 2 ranks",
		Columns:  []string{"exit"},
		Rows:     []htmlreport.Row{{Rank: 0, Host: "h1", Cells: []string{"0"}}, {Rank: 1, Host: "h1", Cells: []string{"0"}}},
		Messages: [][]int64{{0, 10}, {10, 0}},
		Bytes:    [][]int64{{0, 80}, {80, 0}},
		Pages:    htmlreport.Pages{Count: 4, PageSize: 4096, Cells: []htmlreport.PageCell{{Page: 1, Rank: 0, Faults: 3}}},
	}
	var page bytes.Buffer
	lay, err := htmlreport.Write(&page, r)
	if err != nil {
		panic(err)
	}
	fmt.Println(lay.MatrixCells, lay.HeatBins, lay.HeatRects)
	// Output: 4 4 [1 0 0]
}
