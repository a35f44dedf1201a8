// Package fsguard gives an agent's tools file access confined to one
// directory, with every operation authorized by an [authz.Guard] and
// enforced at open time.
//
// A policy decides on the text of a path. What the tool then opens can
// differ: a name inside the workspace can be a symbolic link to /etc, and
// a file can be swapped for such a link between the check and the open.
// A [Root] closes that gap. It authorizes each operation as an
// [authz.Call] and then performs it through an [os.Root] opened on the
// directory, which refuses, at the moment it opens, any symbolic link or
// ".." that leads out of the directory.
//
// # Usage
//
//	root, err := fsguard.OpenTaskRoot(ctx, g) // the task's "workdir" label
//	if err != nil {
//		return err
//	}
//	defer root.Close()
//	data, err := root.ReadFile(ctx, "notes/todo.md")
//	if errors.Is(err, authz.ErrDenied) {
//		// the policy refused, or the name leads out of the root
//	}
//
// with a policy such as
//
//	rules:
//	  - name: workspace
//	    tools: ["fs.*"]
//	    effect: allow
//	    when: destination.path.within(task.labels.workdir)
//
// # Operations
//
// Each method is one authorized call, under the task in its context:
//
//	method                    tool       intent
//	ReadFile, Open            fs.read    read
//	WriteFile                 fs.write   write
//	ReadDir                   fs.list    read
//	Stat                      fs.stat    read
//	Remove, RemoveAll         fs.delete  delete
//	Mkdir, MkdirAll           fs.mkdir   write
//	Rename                    fs.delete on the old name and fs.write on the new
//
// [WithTool] changes the tool name and intent of an operation. The call's
// destination is the absolute path of the file: the root directory's real
// path joined with the name. The guard resolves the symbolic links in it
// before the rules see it, so a link inside the root that points outside is
// judged by where it points. The call's sensitivity comes from
// [WithSensitivity] or [WithClassifier]. WriteFile passes the data as the
// call's arguments, so the secrets broker refuses a leased value written to
// a file. [Root.FS] adapts a Root to [io/fs], one authorized call per
// operation.
//
// # Names
//
// A name is relative to the root directory, or absolute and under it (its
// real path or the path it was opened by). Before any check or file access,
// a name that is empty, holds a NUL byte, or leads out of the root
// lexically ("../x", "a/../../x", an absolute name elsewhere) is denied
// with [ErrEscape] or [ErrInvalidName]. Symbolic links are followed only
// within the root and must be relative: os.Root refuses absolute links and
// links that lead out, and such a refusal at open time is a denial too,
// with [ErrEscape].
//
// # Errors
//
// Errors are *[fs.PathError] naming the operation and the name as given.
// Every refusal, by the policy or by the root, wraps an *[authz.DeniedError]
// (errors.Is(err, authz.ErrDenied)) and is written to the guard's audit log;
// the root's own refusals have the rule [authz.RuleEscape] and wrap
// [ErrEscape] for a name that leaves the root (lexically, or through a
// symbolic link at open time), or [authz.RuleDescribe] and wrap
// [ErrInvalidName]. Other errors are the file system's
// (errors.Is(err, fs.ErrNotExist), ...). No error holds file contents.
// After [Root.Close] every operation fails with [ErrClosed].
//
// # Taint
//
// Reads taint the task, so a host never has to remember
// [authz.Task.Observe]: after a successful ReadFile, Open or ReadDir, and
// only then, the task observes "file:" followed by the file's real path,
// with the call's sensitivity and as untrusted unless [WithTrusted] says
// otherwise. Policies read it as task.taint. Denied and failed reads
// observe nothing; Stat and writes observe nothing.
//
// # Platforms
//
// fsguard is for Unix-like systems, where os.Root holds the directory open
// and resolves every name relative to it. See [os.Root] for what it does
// not prevent (bind mounts, /proc, device files).
package fsguard
