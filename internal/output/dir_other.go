//go:build !unix

package output

import (
	"fmt"
	"os"
	"path/filepath"
)

func openDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output: create output directory: %w", err)
	}
	return os.Open(dir)
}

func createIn(d *os.File, name string) (*os.File, error) {
	path := filepath.Join(d.Name(), name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("output: create %s: %w", path, err)
	}
	return f, nil
}
