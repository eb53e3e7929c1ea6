#!/usr/bin/env bash
# Builds the native addons with node-gyp against the headers of the Node.js that will load them:
# the router's data path (native/relay.c -> build/Release/pgha_relay.node) and the agent's memory
# release (native/memory.c -> build/Release/pgha_memory.node), and the collection of orphaned
# processes by an agent that runs as a container's first process (native/reap.c ->
# build/Release/pgha_reap.node). Skips the build when all three are current.
# It lives next to relay.c, not in scripts/, because the package ships it: npm install runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
current() { # <addon> <source>
  [[ -f $1 && $1 -nt $2 && $1 -nt binding.gyp && $1 -nt native/napi-result.h ]]
}
if current build/Release/pgha_relay.node native/relay.c && current build/Release/pgha_memory.node native/memory.c &&
  current build/Release/pgha_reap.node native/reap.c; then
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
echo "setup: building the native addons (build/Release/pgha_relay.node, pgha_memory.node, pgha_reap.node)" >&2
"${gyp[@]}" rebuild --loglevel=warn "${args[@]}" >&2
