package dest

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
)

// Resolve returns d with the symbolic links in its file path resolved, so
// that rules see the file the operating system would reach. For [KindFile]
// it resolves the longest prefix of d.Path that exists (with
// [filepath.EvalSymlinks]), appends the part that does not exist yet and
// cleans the result; every other kind is returned unchanged with a nil
// error.
//
// Resolve reads the file system, unlike [Parse]; it is safe for concurrent
// use and blocks on file-system calls. It fails closed: a symlink loop, a
// dangling symlink, a permission error or any other error than "does not
// exist" returns the zero Destination and an [*Error] wrapping
// [ErrInvalid].
//
// The result is only true at the time of the call: see "Files and symbolic
// links" in the package documentation for what it cannot guarantee and what
// closes the gap. Tools must act on the returned Path, not on the original
// text: the text may contain ".." after a symlink, which Parse resolved
// lexically.
func Resolve(d Destination) (Destination, error) {
	if d.Kind != KindFile {
		return d, nil
	}
	if d.Path == "" || d.Path[0] != '/' {
		return Destination{}, &Error{Input: d.Path, Reason: "file path is not absolute"}
	}
	p, rest := path.Clean(d.Path), ""
	for {
		_, err := os.Lstat(p)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return Destination{}, &Error{Input: d.Path, Reason: "cannot resolve " + quote(p) + ": " + errText(err)}
		}
		if p == "/" {
			break
		}
		dir, base := path.Split(p)
		rest = "/" + base + rest
		p = path.Clean(dir)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return Destination{}, &Error{Input: d.Path, Reason: "cannot resolve symlinks in " + quote(p) + ": " + errText(err)}
	}
	real = filepath.ToSlash(real)
	if real == "" || real[0] != '/' {
		return Destination{}, &Error{Input: d.Path, Reason: "symlinks in " + quote(p) + " resolve to a relative path"}
	}
	d.Path = path.Clean(real + rest)
	return d, nil
}

// errText is the message of a file-system error without the path, which
// the Error already names.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}
