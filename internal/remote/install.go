package remote

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/pkg/sftp"
)

// CacheDir is where Install puts programs, under the remote home.
const CacheDir = ".cache/dsmexec"

// Install copies the local file to the host's content-addressed cache,
// ~/.cache/dsmexec/<sha256>/<name>, and returns its absolute remote path.
// If a file of the right size is already there it is not copied again
// (copied is false); its content is checked before it runs: StartAgent
// hashes an installed agent on the host first (sha256sum, or reading it
// back over SFTP), and the agent
// hashes an installed program before executing it (Start carries the
// hash). A copy goes to a temporary name in that directory and is renamed
// into place only once complete and made executable, so an interrupted copy
// never leaves a broken program at the final name. The cache directories
// and files are 0700: only their owner may read, write or run them.
// Progress is reported through Options.Progress. Cancelling ctx aborts the
// copy.
func (h *Host) Install(ctx context.Context, localPath, name string) (remotePath string, copied bool, err error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return "", false, fmt.Errorf("remote: install %s on %s: bad file name %q", localPath, h.Name, name)
	}
	fail := func(err error) (string, bool, error) {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return "", false, fmt.Errorf("remote: install %s on %s: %w", localPath, h.Name, err)
	}
	f, err := os.Open(localPath)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if !st.Mode().IsRegular() {
		return fail(errors.New("not a regular file"))
	}
	sum, err := cachedSum(f, localPath, st)
	if err != nil {
		return fail(err)
	}

	c, err := sftp.NewClient(h.client, sftp.UseConcurrentWrites(true))
	if err != nil {
		return fail(fmt.Errorf("start sftp: %w", err))
	}
	defer c.Close()
	// The sftp client has no contexts: closing it fails its pending calls.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	home, err := c.Getwd()
	if err != nil {
		return fail(fmt.Errorf("find the remote home directory: %w", err))
	}
	dir := path.Join(home, CacheDir, sum)
	final := path.Join(dir, name)
	if err := c.MkdirAll(dir); err != nil {
		return fail(fmt.Errorf("create %s: %w", dir, err))
	}
	// Only the owner may touch the cache: 0700 on ~/.cache/dsmexec and on
	// the program's directory, whoever made them and however.
	for _, d := range []string{path.Join(home, CacheDir), dir} {
		if fi, err := c.Lstat(d); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			if err := c.Chmod(d, 0o700); err != nil {
				return fail(fmt.Errorf("chmod 0700 %s: %w", d, err))
			}
		}
	}
	if fi, err := c.Lstat(final); err == nil && fi.Mode().IsRegular() && fi.Size() == st.Size() {
		if fi.Mode().Perm() != 0o700 {
			if err := c.Chmod(final, 0o700); err != nil {
				return fail(err)
			}
		}
		h.noteInstalled(final, sum, false)
		return final, false, nil
	}

	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(dir, "."+name+".tmp-"+hex.EncodeToString(rnd[:]))
	if err := h.copyTo(ctx, c, f, st.Size(), sum, tmp); err != nil {
		c.Remove(tmp) // best effort: the connection may be gone
		return fail(err)
	}
	if err := c.PosixRename(tmp, final); err != nil {
		// Without posix-rename@openssh.com, a plain SFTP rename fails if
		// the target exists, which here means another copy won the race.
		if err2 := c.Rename(tmp, final); err2 != nil {
			c.Remove(tmp)
			if fi, serr := c.Stat(final); serr != nil || fi.Size() != st.Size() {
				return fail(fmt.Errorf("rename into place: %w", err))
			}
			// Another copy's file: not ours to vouch for.
			h.noteInstalled(final, sum, false)
			return final, true, nil
		}
	}
	h.noteInstalled(final, sum, true)
	return final, true, nil
}

// installed is what Install knows of a remote file.
type installed struct {
	sum      string // SHA-256, hex
	verified bool   // its content was hashed on the way (copied) or read back
}

func (h *Host) noteInstalled(remotePath, sum string, verified bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.installed == nil {
		h.installed = map[string]installed{}
	}
	h.installed[remotePath] = installed{sum: sum, verified: verified}
}

// installedSum returns the SHA-256 of a file Install put at remotePath,
// or "".
func (h *Host) installedSum(remotePath string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.installed[remotePath].sum
}

// ErrCacheTampered is wrapped by the error for a cached file whose content
// no longer matches the hash it is stored under.
var ErrCacheTampered = errors.New("the cached copy does not match its content hash")

// verifyInstalled hashes on the host (remoteSum) every file of argv that
// Install found in the cache without copying it, and checks its SHA-256:
// the agent binary must be what mpirun installed before it runs and checks
// the rest.
func (h *Host) verifyInstalled(ctx context.Context, argv []string) error {
	for _, p := range argv {
		h.mu.Lock()
		in, ok := h.installed[p]
		h.mu.Unlock()
		if !ok || in.verified {
			continue
		}
		got, err := h.remoteSum(ctx, p)
		if err != nil {
			return fmt.Errorf("remote: check %s on %s: %w", p, h.Name, err)
		}
		if got != in.sum {
			return fmt.Errorf("remote: %s on %s: %w (sha256 %.16s…, want %.16s…): it was changed after it was copied; refusing to run it (remove %s on %s to let mpirun copy it again)",
				p, h.Name, ErrCacheTampered, got, in.sum, path.Dir(p), h.Name)
		}
		h.noteInstalled(p, in.sum, true)
	}
	return nil
}

// remoteSum returns the SHA-256 of the remote file: computed on the host
// by sha256sum over an exec session (no transfer), or, where that fails
// (no sha256sum), by reading the file back over SFTP.
func (h *Host) remoteSum(ctx context.Context, p string) (string, error) {
	if out, err := h.Output(ctx, []string{"sha256sum", "--", p}); err == nil {
		// "<64 hex>  <path>\n" ('*' for ' ' in binary mode); GNU escapes
		// names with a backslash or newline: those fall back below.
		o := string(out)
		if len(o) > 66 && isHexSum(o[:64]) && o[64] == ' ' && (o[65] == ' ' || o[65] == '*') && o[66:] == p+"\n" {
			return o[:64], nil
		}
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	return h.readBackSum(ctx, p)
}

// readBackSum reads the remote file over SFTP and returns its SHA-256.
func (h *Host) readBackSum(ctx context.Context, p string) (string, error) {
	c, err := sftp.NewClient(h.client, sftp.UseConcurrentReads(true))
	if err != nil {
		return "", fmt.Errorf("start sftp: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	f, err := c.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hs := sha256.New()
	if _, err := f.WriteTo(hs); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", err
	}
	return hex.EncodeToString(hs.Sum(nil)), nil
}

// copyTo writes f to the new file tmp, checks that the bytes sent still
// hash to sum, syncs and makes the file executable.
func (h *Host) copyTo(ctx context.Context, c *sftp.Client, f *os.File, size int64, sum, tmp string) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	w, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer w.Close()
	hs := sha256.New()
	pr := &progressReader{r: io.TeeReader(f, hs), size: size, host: h.Name, report: h.opts.Progress}
	n, err := w.ReadFrom(pr)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if n != size || hex.EncodeToString(hs.Sum(nil)) != sum {
		return errors.New("the file changed while it was being copied")
	}
	if err := w.Sync(); err != nil && !isUnsupported(err) {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := c.Chmod(tmp, 0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	return ctx.Err()
}

func isUnsupported(err error) bool {
	var se *sftp.StatusError
	return errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxOpUnsupported
}

// sumKey identifies a version of a local file: installing one program on
// many hosts hashes it once.
type sumKey struct {
	path  string
	size  int64
	mtime int64
}

type sumEntry struct {
	once sync.Once
	sum  string
	err  error
}

var sums sync.Map // sumKey → *sumEntry

// cachedSum returns the SHA-256 of f (opened from path, with info st),
// computed once per path, size and modification time. A file rewritten in
// place within one clock tick at the same size would keep its old sum; the
// copy itself checks the bytes it sends.
func cachedSum(f *os.File, path string, st os.FileInfo) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	k := sumKey{abs, st.Size(), st.ModTime().UnixNano()}
	v, _ := sums.LoadOrStore(k, &sumEntry{})
	e := v.(*sumEntry)
	e.once.Do(func() { e.sum, e.err = hashFile(f) })
	if e.err != nil {
		sums.Delete(k) // let a later call try again
	}
	return e.sum, e.err
}

func hashFile(f *os.File) (string, error) {
	hs := sha256.New()
	if _, err := io.Copy(hs, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(hs.Sum(nil)), nil
}

// progressReader reports bytes read. Size lets sftp's ReadFrom use
// concurrent writes.
type progressReader struct {
	r      io.Reader
	size   int64
	done   int64
	host   string
	report func(host string, done, total int64)
}

func (p *progressReader) Size() int64 { return p.size }

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		if p.report != nil {
			p.report(p.host, p.done, p.size)
		}
	}
	return n, err
}

// Arch returns the host's machine name, as `uname -m` prints it (x86_64,
// aarch64, ...). It is asked once per Host.
func (h *Host) Arch(ctx context.Context) (string, error) {
	h.mu.Lock()
	arch := h.arch
	h.mu.Unlock()
	if arch != "" {
		return arch, nil
	}
	out, err := h.Output(ctx, []string{"uname", "-m"})
	if err != nil {
		return "", fmt.Errorf("remote: ask %s for its architecture: %w", h.Name, err)
	}
	arch = strings.TrimSpace(string(out))
	if arch == "" {
		return "", fmt.Errorf("remote: ask %s for its architecture: uname -m printed nothing", h.Name)
	}
	h.mu.Lock()
	h.arch = arch
	h.mu.Unlock()
	return arch, nil
}

// ArchError says that a program cannot run on a host.
type ArchError struct {
	Program  string // local path
	Machine  string // the program's architecture, in GOARCH terms
	Host     string
	HostArch string // `uname -m` on the host
}

func (e *ArchError) Error() string {
	return fmt.Sprintf("remote: %s is a %s program, but %s is a %s machine: it cannot run there", e.Program, e.Machine, e.Host, e.HostArch)
}

func (e *ArchError) Unwrap() error { return ErrWrongArch }

// Hint tells how to build the program for the host.
func (e *ArchError) Hint() string {
	if goarch := goarchOf(e.HostArch); goarch != "" {
		return fmt.Sprintf("build it for that host with GOOS=linux GOARCH=%s go build, or leave %s out of the machine file", goarch, e.Host)
	}
	return fmt.Sprintf("build it for %s, or leave %s out of the machine file", e.HostArch, e.Host)
}

// CheckRunnable checks that the local program can run on the host: an ELF
// file's machine must match the host's `uname -m`. Other files (scripts)
// pass. The error is an *ArchError for a mismatch.
func (h *Host) CheckRunnable(ctx context.Context, localPath string) error {
	machine, ok, err := elfMachine(localPath)
	if err != nil {
		return fmt.Errorf("remote: check %s: %w", localPath, err)
	}
	if !ok {
		return nil
	}
	arch, err := h.Arch(ctx)
	if err != nil {
		return err
	}
	if archRuns(machine, arch) {
		return nil
	}
	return &ArchError{Program: localPath, Machine: machineName(machine), Host: h.Name, HostArch: arch}
}

// elfMachine returns the ELF machine of the file; ok is false for a file
// that is not ELF.
func elfMachine(p string) (m elf.Machine, ok bool, err error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != elf.ELFMAG {
		return 0, false, nil
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return 0, false, fmt.Errorf("read ELF header: %w", err)
	}
	return ef.Machine, true, nil
}

// unameArchs lists the `uname -m` names of machines that run each ELF
// machine natively.
var unameArchs = map[elf.Machine][]string{
	elf.EM_X86_64:    {"x86_64", "amd64"},
	elf.EM_386:       {"i386", "i486", "i586", "i686", "x86_64", "amd64"},
	elf.EM_AARCH64:   {"aarch64", "arm64"},
	elf.EM_ARM:       {"armv5l", "armv6l", "armv7l", "armv8l", "arm"},
	elf.EM_RISCV:     {"riscv64"},
	elf.EM_PPC64:     {"ppc64le", "ppc64"},
	elf.EM_S390:      {"s390x"},
	elf.EM_LOONGARCH: {"loongarch64"},
	elf.EM_MIPS:      {"mips", "mips64", "mipsel", "mips64el"},
}

func archRuns(m elf.Machine, uname string) bool {
	names, known := unameArchs[m]
	if !known {
		return true // nothing to compare with: let the exec decide
	}
	for _, n := range names {
		if n == uname {
			return true
		}
	}
	return false
}

var goarchNames = map[elf.Machine]string{
	elf.EM_X86_64: "amd64", elf.EM_386: "386", elf.EM_AARCH64: "arm64", elf.EM_ARM: "arm",
	elf.EM_RISCV: "riscv64", elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x",
	elf.EM_LOONGARCH: "loong64", elf.EM_MIPS: "mips",
}

func machineName(m elf.Machine) string {
	if n, ok := goarchNames[m]; ok {
		return n
	}
	return m.String()
}

// goarchOf maps `uname -m` to GOARCH.
func goarchOf(uname string) string {
	switch uname {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "i386", "i486", "i586", "i686":
		return "386"
	case "armv6l", "armv7l", "armv8l":
		return "arm"
	case "riscv64", "ppc64le", "s390x":
		return uname
	case "loongarch64":
		return "loong64"
	}
	return ""
}
