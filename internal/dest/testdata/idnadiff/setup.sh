#!/bin/sh
# setup.sh DIR: builds the scratch module described in README.
set -e
D=$1
M=$(go env GOMODCACHE)
mkdir -p "$D/cmd"
cp "$(dirname "$0")/main.go.txt" "$D/cmd/main.go"
cat > "$D/go.mod" <<'MOD'
module idnadiff

go 1.26

require golang.org/x/text v0.43.0
MOD
grep 'golang.org/x/text v0.43.0' "$(cd "$(dirname "$0")" && git rev-parse --show-toplevel)/go.sum" >"$D/go.sum"
for v in 15 17; do
	for pkg in net@v0.62.0:idna text@v0.43.0:unicode/norm text@v0.43.0:unicode/bidi text@v0.43.0:secure/bidirule; do
		mod=${pkg%%:*}
		p=${pkg#*:}
		dst=$D/v$v/$(basename "$p")
		mkdir -p "$dst"
		for f in "$M/golang.org/x/$mod/$p"/*.go; do
			b=$(basename "$f")
			case $b in *_test.go | gen*.go | maketables.go | triegen.go) continue ;; esac
			case $b in tables*.go) [ "$b" = "tables$v.0.0.go" ] || continue ;; esac
			sed -e '/^\/\/go:build/d' \
				-e "s#\"golang.org/x/text/unicode/norm\"#\"idnadiff/v$v/norm\"#" \
				-e "s#\"golang.org/x/text/unicode/bidi\"#\"idnadiff/v$v/bidi\"#" \
				-e "s#\"golang.org/x/text/secure/bidirule\"#\"idnadiff/v$v/bidirule\"#" \
				-e 's#^package \([a-z]*\) // import.*#package \1#' "$f" >"$dst/$b"
		done
	done
done
