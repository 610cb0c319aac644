package lab

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// CacheEnv names the environment variable that overrides the artifact cache
// directory (default DefaultCacheDir).
const CacheEnv = "STAGEHAND_LAB_CACHE"

// DefaultCacheDir keeps the artifacts across test runs: fetching and
// packing the kernel costs a few seconds and about 70 MB of download.
const DefaultCacheDir = "/var/cache/stagehand-lab"

//go:embed build-artifacts.sh
var buildScript []byte

//go:embed standin-init.sh
var standinInit []byte

//go:embed standin-udhcpc.sh
var standinUdhcpc []byte

var artifacts struct {
	sync.Mutex
	kernel, initrd string
}

// CacheDir returns the directory Artifacts builds into.
func CacheDir() string {
	if d := os.Getenv(CacheEnv); d != "" {
		return d
	}
	return DefaultCacheDir
}

// Artifacts returns the paths of the lab kernel and of the installer
// stand-in initramfs, building them into CacheDir on first use. It is safe
// for parallel tests and for several test binaries at once (the build holds
// a file lock on the cache directory).
func Artifacts(t testing.TB) (kernel, initrd string) {
	t.Helper()
	artifacts.Lock()
	defer artifacts.Unlock()
	if artifacts.kernel == "" {
		k, i, err := BuildArtifacts(CacheDir())
		if err != nil {
			t.Fatalf("lab artifacts: %v", err)
		}
		artifacts.kernel, artifacts.initrd = k, i
	}
	return artifacts.kernel, artifacts.initrd
}

// BuildArtifacts runs the embedded build-artifacts.sh into dir (a no-op when
// dir is already up to date) and returns the kernel and initramfs paths.
func BuildArtifacts(dir string) (kernel, initrd string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", "", fmt.Errorf("lock %s: %w", dir, err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	src, err := os.MkdirTemp("", "stagehand-lab-src-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(src)
	files := map[string][]byte{
		"build-artifacts.sh": buildScript,
		"standin-init.sh":    standinInit,
		"standin-udhcpc.sh":  standinUdhcpc,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), body, 0o755); err != nil {
			return "", "", err
		}
	}
	out, err := exec.Command("bash", filepath.Join(src, "build-artifacts.sh"), dir).CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("build-artifacts.sh: %w\n%s", err, out)
	}
	kernel = filepath.Join(dir, "vmlinuz")
	initrd = filepath.Join(dir, "installer.cpio.gz")
	for _, p := range []string{kernel, initrd} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			return "", "", errors.Join(fmt.Errorf("build-artifacts.sh left no %s", p), err)
		}
	}
	return kernel, initrd, nil
}
