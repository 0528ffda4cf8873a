package wire

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestSpecListsEveryControlType: every ChanControl type constant appears in
// spec.md with its number and name.
func TestSpecListsEveryControlType(t *testing.T) {
	b, err := os.ReadFile("spec.md")
	if err != nil {
		t.Fatal(err)
	}
	// Table rows "| 10   | JOIN |" or "| 0 control | 31 DOORBELL |".
	row := regexp.MustCompile(`(?m)^\|\s*(?:0 control\s*\|\s*)?(\d+)\s*\|?\s*([A-Z][A-Z ]*[A-Z])\s*\|`)
	inSpec := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		inSpec[m[1]+" "+strings.TrimSpace(m[2])] = true
	}
	for num, name := range ControlTypes {
		if !inSpec[fmt.Sprintf("%d %s", num, name)] {
			t.Errorf("spec.md has no row for control type %d %s", num, name)
		}
	}
	if len(ControlTypes) < 28 {
		t.Errorf("ControlTypes has %d entries; a constant was left out", len(ControlTypes))
	}
}
