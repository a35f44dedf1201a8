package glob_test

import (
	"fmt"

	"github.com/taskguard/taskguard/internal/glob"
)

func ExampleMatch() {
	fmt.Println(glob.Match("github.*", "github.create_issue"))
	fmt.Println(glob.Match("github.*", "gitlab.create_issue"))
	// Output:
	// true
	// false
}

func ExampleHost() {
	for _, host := range []string{"api.github.com", "a.b.github.com", "github.com", "evilgithub.com"} {
		ok, err := glob.Host("*.github.com", host)
		fmt.Println(host, ok, err)
	}
	_, err := glob.Host("git*.com", "github.com")
	fmt.Println(err)
	// Output:
	// api.github.com true <nil>
	// a.b.github.com true <nil>
	// github.com false <nil>
	// evilgithub.com false <nil>
	// glob: invalid pattern "git*.com": '*' must be a whole label, not part of "git*"
}

func ExampleWithin() {
	fmt.Println(glob.Within("/workspace/src/main.go", "/workspace"))
	fmt.Println(glob.Within("/workspace2/x", "/workspace"))
	fmt.Println(glob.Within("/workspace/../etc/passwd", "/workspace"))
	// Output:
	// true
	// false
	// false
}

func ExampleIndex() {
	patterns := []string{"github.*", "*.read", "fs.*.file", "*", "github.create_issue"}
	ix := glob.NewIndex(patterns)
	var buf []int
	for _, name := range []string{"github.create_issue", "fs.read", "fs.a.file", "slack.post"} {
		buf = ix.AppendMatches(buf[:0], name)
		fmt.Println(name, buf)
	}
	// Output:
	// github.create_issue [0 3 4]
	// fs.read [1 3]
	// fs.a.file [2 3]
	// slack.post [3]
}
