package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func writeRandom(t *testing.T, n int) (string, []byte) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	p := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func TestInstall(t *testing.T) {
	ts, ch, _ := dialTest(t)
	local, content := writeRandom(t, 300<<10)
	var mu sync.Mutex
	var last, total int64
	opts := ch.options()
	opts.Progress = func(host string, done, all int64) {
		mu.Lock()
		defer mu.Unlock()
		if host != ts.target().String() || done < last {
			t.Errorf("progress(%q, %d, %d) after %d", host, done, all, last)
		}
		last, total = done, all
	}
	h, err := Dial(testContext(t), ts.target(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	sum := sha256.Sum256(content)
	want := filepath.Join(ts.home, CacheDir, hex.EncodeToString(sum[:]), "app")
	p, copied, err := h.Install(testContext(t), local, "app")
	if err != nil {
		t.Fatal(err)
	}
	if p != want || !copied {
		t.Errorf("Install = %q, %v; want %q, true", p, copied, want)
	}
	if last != int64(len(content)) || total != int64(len(content)) {
		t.Errorf("last progress %d/%d, want %d", last, total, len(content))
	}
	checkInstalled(t, want, content)
	entries, _ := os.ReadDir(filepath.Dir(want))
	if len(entries) != 1 {
		t.Errorf("cache dir holds %d entries, want only the program", len(entries))
	}

	// Second time: found in the cache, modes repaired if someone changed them.
	os.Chmod(want, 0o755)
	os.Chmod(filepath.Dir(want), 0o777)
	p, copied, err = h.Install(testContext(t), local, "app")
	if err != nil || p != want || copied {
		t.Errorf("second Install = %q, %v, %v; want %q, false, nil", p, copied, err, want)
	}
	checkInstalled(t, want, content)

	// A different file of the same name goes to its own directory.
	local2, content2 := writeRandom(t, 1000)
	mu.Lock()
	last = 0
	mu.Unlock()
	p2, copied, err := h.Install(testContext(t), local2, "app")
	if err != nil || !copied || p2 == want {
		t.Errorf("Install of other content = %q, %v, %v", p2, copied, err)
	}
	checkInstalled(t, p2, content2)

	for _, bad := range []string{"", "a/b", "..", "."} {
		if _, _, err := h.Install(testContext(t), local, bad); err == nil || !strings.Contains(err.Error(), "bad file name") {
			t.Errorf("Install name %q: %v", bad, err)
		}
	}
	if _, _, err := h.Install(testContext(t), filepath.Dir(local), "x"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Install of a directory: %v", err)
	}
}

func checkInstalled(t *testing.T, p string, content []byte) {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("%s mode %v, want 0700", p, st.Mode())
	}
	for _, d := range []string{filepath.Dir(p), filepath.Dir(filepath.Dir(p))} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("cache directory %s: %v, %v; want mode 0700", d, st.Mode(), err)
		}
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("%s content differs (%d bytes, want %d): %v", p, len(got), len(content), err)
	}
}

func TestInstallInterrupted(t *testing.T) {
	ts, ch, _ := dialTest(t)
	local, content := writeRandom(t, 4<<20)
	sum := sha256.Sum256(content)
	final := filepath.Join(ts.home, CacheDir, hex.EncodeToString(sum[:]), "app")

	for _, how := range []string{"cancel", "drop"} {
		ctx, cancel := context.WithCancel(testContext(t))
		opts := ch.options()
		var h *Host
		var once sync.Once
		opts.Progress = func(_ string, done, _ int64) {
			once.Do(func() {
				if how == "cancel" {
					cancel()
				} else {
					h.Client().Close() // the connection dies mid-copy
				}
			})
		}
		var err error
		h, err = Dial(testContext(t), ts.target(), opts)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = h.Install(ctx, local, "app")
		cancel()
		h.Close()
		if err == nil {
			t.Fatalf("%s: Install succeeded", how)
		}
		if how == "cancel" && !errors.Is(err, context.Canceled) {
			t.Errorf("cancel: err %v, want context.Canceled", err)
		}
		if _, serr := os.Stat(final); !os.IsNotExist(serr) {
			t.Fatalf("%s: the final file exists after an interrupted copy: %v", how, serr)
		}
		// Whatever is left is a temporary file, never the final name.
		entries, _ := os.ReadDir(filepath.Dir(final))
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".app.tmp-") {
				t.Errorf("%s: unexpected %s in the cache", how, e.Name())
			}
		}
	}

	// A later install completes.
	h, err := Dial(testContext(t), ts.target(), ch.options())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p, copied, err := h.Install(testContext(t), local, "app")
	if err != nil || !copied || p != final {
		t.Fatalf("Install after interruptions = %q, %v, %v", p, copied, err)
	}
	checkInstalled(t, final, content)
}

// fakeELF writes a minimal ELF64 header for machine m.
func fakeELF(t *testing.T, m elf.Machine) string {
	t.Helper()
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	le := binary.LittleEndian
	binary.Write(&b, le, uint16(elf.ET_EXEC))
	binary.Write(&b, le, uint16(m))
	binary.Write(&b, le, uint32(1))                      // version
	binary.Write(&b, le, [3]uint64{})                    // entry, phoff, shoff
	binary.Write(&b, le, uint32(0))                      // flags
	binary.Write(&b, le, [6]uint16{64, 56, 0, 64, 0, 0}) // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
	p := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(p, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckRunnable(t *testing.T) {
	_, _, h := dialTest(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.CheckRunnable(testContext(t), self); err != nil {
		t.Errorf("the test binary: %v", err)
	}
	script := filepath.Join(t.TempDir(), "run.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755)
	if err := h.CheckRunnable(testContext(t), script); err != nil {
		t.Errorf("a script: %v", err)
	}

	other, otherName := elf.EM_AARCH64, "arm64"
	if runtime.GOARCH == "arm64" {
		other, otherName = elf.EM_X86_64, "amd64"
	}
	err = h.CheckRunnable(testContext(t), fakeELF(t, other))
	var ae *ArchError
	if !errors.Is(err, ErrWrongArch) || !errors.As(err, &ae) {
		t.Fatalf("foreign ELF: %v, want ErrWrongArch", err)
	}
	arch, _ := h.Arch(testContext(t))
	if !strings.Contains(err.Error(), "is a "+otherName+" program") || !strings.Contains(err.Error(), "is a "+arch+" machine") {
		t.Errorf("message %q", err)
	}
	if hint := Hint(err); !strings.Contains(hint, "GOARCH="+goarchOf(arch)) {
		t.Errorf("hint %q", hint)
	}
	if err := h.CheckRunnable(testContext(t), filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file passed")
	}
}

func TestArchRuns(t *testing.T) {
	for _, tt := range []struct {
		m     elf.Machine
		uname string
		want  bool
	}{
		{elf.EM_X86_64, "x86_64", true},
		{elf.EM_X86_64, "aarch64", false},
		{elf.EM_AARCH64, "aarch64", true},
		{elf.EM_AARCH64, "x86_64", false},
		{elf.EM_386, "x86_64", true},
		{elf.EM_ARM, "armv7l", true},
		{elf.EM_SPARCV9, "sparc64", true}, // unknown: let exec decide
	} {
		if got := archRuns(tt.m, tt.uname); got != tt.want {
			t.Errorf("archRuns(%v, %s) = %v", tt.m, tt.uname, got)
		}
	}
}

// remoteSum hashes on the host (sha256sum) and falls back to reading the
// file back over SFTP; both agree with the local hash, also for names
// that need quoting.
func TestRemoteSum(t *testing.T) {
	_, _, h := dialTest(t)
	local, content := writeRandom(t, 100<<10)
	sum := sha256.Sum256(content)
	want := hex.EncodeToString(sum[:])
	for _, name := range []string{"app", "a b'c", "back\\slash"} {
		p, _, err := h.Install(testContext(t), local, name)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := h.remoteSum(testContext(t), p); err != nil || got != want {
			t.Errorf("%q: remoteSum = %s, %v; want %s", name, got, err, want)
		}
		if got, err := h.readBackSum(testContext(t), p); err != nil || got != want {
			t.Errorf("%q: readBackSum = %s, %v; want %s", name, got, err, want)
		}
	}
	if _, err := h.remoteSum(testContext(t), "/nonexistent/x"); err == nil {
		t.Error("remoteSum of a missing file succeeded")
	}
}
