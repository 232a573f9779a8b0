#!/usr/bin/env bash
# Makes the external servers Clover's local stack runs available, and prints where they are:
#   CLOVER_TEMPORAL_BIN=/path/to/temporal
#   CLOVER_VERSITYGW_BIN=/path/to/versitygw
#   CLOVER_TOXIPROXY_BIN=/path/to/toxiproxy-server   (the tests' fault-injection proxy)
# Order of preference for each tool:
#   1. the path in CLOVER_TEMPORAL_BIN / CLOVER_VERSITYGW_BIN / CLOVER_TOXIPROXY_BIN, when its version fits;
#   2. `temporal` / `versitygw` / `toxiproxy-server` on PATH, when its version fits;
#   3. a build cached earlier in $CLOVER_TOOLS_DIR (default: ${XDG_CACHE_HOME:-~/.cache}/clover/tools);
#   4. a fresh `go install` into that cache (a few minutes the first time; progress is shown on stderr).
# Everything but the final KEY=path lines goes to stderr, so callers can `eval` stdout.
set -euo pipefail

TEMPORAL_VERSION=1.5.1
VERSITYGW_VERSION=1.7.0
TOXIPROXY_VERSION=2.5.0
TOOLS_DIR=${CLOVER_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clover/tools}

say() { printf 'clover tools: %s\n' "$*" >&2; }

# The Go module version a binary was built from (go version -m), or empty when Go is missing.
go_module_version() {
  command -v go >/dev/null 2>&1 || return 0
  go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}

# A binary fits when `go version -m` says it was built from the wanted module version. Binaries built by
# `go install` report no version of their own (temporal says 0.0.0-DEV), so the build info is the check.
fits() { # binary wanted-version
  [ -x "$1" ] || return 1
  local v
  v=$(go_module_version "$1")
  if [ -z "$v" ]; then
    "$1" --help >/dev/null 2>&1 || return 1
    say "cannot confirm the version of $1 (Go is missing); using it as given"
    return 0
  fi
  [ "$v" = "v$2" ]
}
temporal_fits() { fits "$1" "$TEMPORAL_VERSION"; }
versitygw_fits() { fits "$1" "$VERSITYGW_VERSION"; }
toxiproxy_fits() { fits "$1" "$TOXIPROXY_VERSION"; }

build() { # name module version check-fn env-var binary-name
  local name=$1 module=$2 version=$3 fits=$4 bin=$6
  local dest="$TOOLS_DIR/$name-$version/bin"
  if "$fits" "$dest/$bin"; then
    echo "$dest/$bin"; return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    say "Go is not installed, so $name $version cannot be built; install Go (https://go.dev/dl) or point ${5} at a $name $version binary"
    exit 1
  fi
  say "building $name $version with go install into $dest (first time only; this takes a few minutes)"
  mkdir -p "$dest"
  local log="$TOOLS_DIR/$name-$version/build.log"
  # -v prints each package as it is compiled: that is the progress shown here.
  if ! GOBIN="$dest" GOFLAGS="${GOFLAGS:-} -trimpath" go install -v "$module@v$version" 2> >(tee "$log" | awk '{ n++; if (n % 100 == 0) { printf "clover tools: %s: %d packages compiled...\n", name, n > "/dev/stderr" } }' name="$name"); then
    say "building $name failed; see $log"
    exit 1
  fi
  wait
  "$fits" "$dest/$bin" || { say "built $dest/$bin but its version does not check out; see $log"; exit 1; }
  say "$name $version ready"
  echo "$dest/$bin"
}

# binary-name: what `go install` names the binary (the last element of the module path); path-name: what
# to look for on PATH. Both default to name.
resolve() { # name module version check-fn env-var [binary-name] [path-name]
  local name=$1 module=$2 version=$3 fits=$4 var=$5 bin=${6:-$1} pathname=${7:-$1}
  local given=${!var:-}
  if [ -n "$given" ]; then
    if "$fits" "$given"; then echo "$given"; return 0; fi
    say "$var=$given is not a usable $name $version; falling back to PATH or the cache"
  fi
  local onpath
  onpath=$(command -v "$pathname" 2>/dev/null || true)
  if [ -n "$onpath" ] && "$fits" "$onpath"; then echo "$onpath"; return 0; fi
  build "$name" "$module" "$version" "$fits" "$var" "$bin"
}

temporal=$(resolve temporal github.com/temporalio/cli/cmd/temporal "$TEMPORAL_VERSION" temporal_fits CLOVER_TEMPORAL_BIN)
versitygw=$(resolve versitygw github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION" versitygw_fits CLOVER_VERSITYGW_BIN)
# Toxiproxy's server command is the module's cmd/server, so go install names the binary `server`.
toxiproxy=$(resolve toxiproxy github.com/Shopify/toxiproxy/v2/cmd/server "$TOXIPROXY_VERSION" toxiproxy_fits CLOVER_TOXIPROXY_BIN server toxiproxy-server)
# Chromium renders the HTML residency report in a test (test/report.e2e.test.ts). Installed here only when
# missing, apt-get is available and we are root (a fresh CI machine); otherwise say how to get it.
ensure_chromium() {
  [ "${CLOVER_SKIP_BROWSER_TESTS:-}" = 1 ] && return 0
  local c
  for c in chromium chromium-browser google-chrome; do
    command -v "$c" >/dev/null 2>&1 && return 0
  done
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing chromium with apt-get (for the HTML report rendering test)"
    if apt-get install -y -qq chromium >&2 || { apt-get update -qq >&2 && apt-get install -y -qq chromium >&2; }; then
      say "chromium ready: $(command -v chromium)"
    else
      say "installing chromium failed; the HTML rendering test will fail (or set CLOVER_SKIP_BROWSER_TESTS=1)"
    fi
  else
    say "chromium is missing and cannot be installed here (needs apt-get as root): install it, or set CLOVER_SKIP_BROWSER_TESTS=1"
  fi
}
ensure_chromium

echo "CLOVER_TEMPORAL_BIN=$temporal"
echo "CLOVER_VERSITYGW_BIN=$versitygw"
echo "CLOVER_TOXIPROXY_BIN=$toxiproxy"
