package dest_test

import (
	"fmt"

	"github.com/taskguard/taskguard/internal/dest"
)

func ExampleParse() {
	for _, raw := range []string{
		"HTTPS://API.GitHub.com./repos/x/../y/?page=2",
		"http://0x7f.1:8080/admin",
		"https://аpple.com/",
		"file:///workspace/%2e%2e/etc/shadow",
		"./notes.txt",
		"mailto:Bob@Example.ORG?subject=hi",
		"db://orders",
	} {
		d, err := dest.Parse(raw, "/workspace")
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%-5s %-40s private=%v\n", d.Kind, d, d.Private)
	}
	// Output:
	// url   https://api.github.com/repos/y           private=false
	// url   http://127.0.0.1:8080/admin              private=true
	// url   https://xn--pple-43d.com/                private=false
	// file  /etc/shadow                              private=false
	// file  /workspace/notes.txt                     private=false
	// email Bob@example.org                          private=false
	// other db://orders                              private=false
}

func ExampleParse_errors() {
	for _, raw := range []string{
		"http://1.2.3.4.5/",
		"https://github.com@evil.com/",
		"example.com",
	} {
		_, err := dest.Parse(raw, "/workspace")
		fmt.Println(err)
	}
	// Output:
	// dest: "http://1.2.3.4.5/": invalid IPv4 address "1.2.3.4.5"
	// dest: "https://REDACTED@evil.com/": userinfo (user@ or user:password@ before the host) is not allowed
	// dest: "example.com": bare name: expected a URL with a scheme (https://host/...), an absolute path, a ./relative path or an e-mail address
}

func ExampleParseText() {
	for _, raw := range []string{
		"https://api.github.com/repos/taskguard/taskguard",
		"https://api.github.com/repos/taskguard/taskguard?page=2",
		"HTTPS://API.GitHub.com:443/repos/x/../taskguard/",
		"redis://0x7f.1/",
		"https://example.com/admin;jsessionid=1",
	} {
		d, text, err := dest.ParseText(raw, "/workspace")
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s same=%v private=%v\n", text, text == raw, d.Private)
	}
	// Output:
	// https://api.github.com/repos/taskguard/taskguard same=true private=false
	// https://api.github.com/repos/taskguard/taskguard same=false private=false
	// https://api.github.com/repos/taskguard same=false private=false
	// redis://127.0.0.1/ same=false private=true
	// dest: "https://example.com/admin;jsessionid=1": ';' in path "/admin;jsessionid=1" (path parameters: some servers strip them, others do not)
}
