package fsguard

import (
	"context"
	"io/fs"
)

// FS returns the root as an [fs.FS] whose every operation is authorized
// under the task in ctx, as the Root's methods are: Open as [Root.Open],
// ReadFile as [Root.ReadFile], ReadDir as [Root.ReadDir] and Stat as
// [Root.Stat]. So [fs.WalkDir], [fs.Glob] and the other io/fs helpers
// work, one authorized call per step.
//
// Names follow [fs.ValidPath] (slash-separated, unrooted, no "." or ".."
// elements except "." for the root); any other name fails with
// [fs.ErrInvalid] before any check. The FS keeps ctx for its operations:
// use it only while ctx and its task are live. It is safe for concurrent
// use.
func (r *Root) FS(ctx context.Context) fs.FS { return &rootFS{r: r, ctx: ctx} }

type rootFS struct {
	r   *Root
	ctx context.Context // fs.FS methods take no context
}

var (
	_ fs.ReadFileFS = (*rootFS)(nil)
	_ fs.ReadDirFS  = (*rootFS)(nil)
	_ fs.StatFS     = (*rootFS)(nil)
)

func (f *rootFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	file, err := f.r.Open(f.ctx, name)
	if err != nil {
		return nil, err
	}
	return file, nil
}

func (f *rootFS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrInvalid}
	}
	return f.r.ReadFile(f.ctx, name)
}

func (f *rootFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	return f.r.ReadDir(f.ctx, name)
}

func (f *rootFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	return f.r.Stat(f.ctx, name)
}
