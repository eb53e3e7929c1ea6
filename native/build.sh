#!/usr/bin/env bash
# Builds the router's native data path, native/relay.c -> build/Release/pgha_relay.node, with
# node-gyp against the headers of the Node.js that will load it. Skips the build when it is current.
# It lives next to relay.c, not in scripts/, because the package ships it: npm install runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/Release/pgha_relay.node
if [[ -f $out && $out -nt native/relay.c && $out -nt binding.gyp ]]; then
  exit 0
fi
# node-gyp ships with npm; npm puts it on PATH for scripts, and this finds it otherwise.
gyp=(node-gyp)
if ! command -v node-gyp >/dev/null; then
  npm_root=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  gyp=(node "$npm_root/node_modules/node-gyp/bin/node-gyp.js")
fi
# Node's own headers (Debian's nodejs and NodeSource's packages install them under <prefix>/include/node),
# so node-gyp needs no download.
prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
args=()
if [[ -f $prefix/include/node/node_api.h ]]; then
  args+=("--nodedir=$prefix")
fi
echo "setup: building the router's native data path ($out)" >&2
"${gyp[@]}" rebuild --loglevel=warn "${args[@]}" >&2
