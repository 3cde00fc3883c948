#!/bin/sh
# Replaces every workspace crate's sources with stubs, for the Dockerfile's dependency layer:
# with only the manifests copied in, cargo needs a file behind every target they name.
# Each crate gets src/lib.rs and src/main.rs, and a `fn main() {}` at the path of every
# [lib], [[bin]], [[bench]], [[example]] and [[test]] target its manifest declares (the explicit
# `path`, or cargo's default for that kind). Run from the workspace root. POSIX sh + awk only,
# because the builder image has nothing else.
set -eu

for manifest in crates/*/Cargo.toml; do
    dir=$(dirname "$manifest")
    mkdir -p "$dir/src"
    : > "$dir/src/lib.rs"
    echo 'fn main() {}' > "$dir/src/main.rs"
    awk '
        function value(s) { sub(/^[^"]*"/, "", s); sub(/".*$/, "", s); return s }
        function flush() {
            if (kind == "") return
            if (path == "") {
                if (kind == "lib") path = "src/lib.rs"
                else if (kind == "bin") path = "src/bin/" name ".rs"
                else if (kind == "bench") path = "benches/" name ".rs"
                else if (kind == "example") path = "examples/" name ".rs"
                else path = "tests/" name ".rs"
            }
            print path
            kind = ""
        }
        /^\[lib\]/ { flush(); kind = "lib"; name = ""; path = ""; next }
        /^\[\[(bin|bench|example|test)\]\]/ {
            flush(); kind = $0; gsub(/[^a-z]/, "", kind); name = ""; path = ""; next
        }
        /^\[/ { flush(); next }
        kind != "" && /^[ \t]*name[ \t]*=/ { name = value($0) }
        kind != "" && /^[ \t]*path[ \t]*=/ { path = value($0) }
        END { flush() }
    ' "$manifest" | while IFS= read -r rel; do
        mkdir -p "$dir/$(dirname "$rel")"
        [ "$rel" = "src/lib.rs" ] || echo 'fn main() {}' > "$dir/$rel"
    done
done
