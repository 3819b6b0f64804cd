# code-server from the npm registry. Runs inside the new root filesystem
# (chroot) as root with set -eu; the build folder is /tmp/nbgate-build.
#
# Facts this relies on (issue 3):
# - 4.100.3 is the last code-server that runs on Debian's Node 20;
# - as root, its postinstall needs npm_config_unsafe_perm=true; node-pty's
#   build needs npm_config_yes=true, npm_config_nodedir=/usr and the
#   build-essential/pkg-config/libkrb5-dev packages;
# - @vscode/ripgrep downloads a ripgrep tarball from GitHub (unreachable
#   here) unless $TMPDIR/vscode-ripgrep-cache-<its version>/<asset> exists:
#   we seed that from Debian's ripgrep;
# - this network intercepts TLS: npm uses the host's CA bundle, copied in
#   for the build only (NBGATE_HOST_CA, removed with the build folder).
cd /tmp/nbgate-build
if [ -s "$NBGATE_HOST_CA" ]; then
	export npm_config_cafile="$NBGATE_HOST_CA"
fi
export npm_config_unsafe_perm=true npm_config_yes=true npm_config_nodedir=/usr
export npm_config_cache=/tmp/nbgate-build/npm-cache npm_config_update_notifier=false
export npm_config_fund=false npm_config_audit=false npm_config_loglevel=warn

npm pack "code-server@$CODE_SERVER_VERSION"
mkdir cs
tar -xzf "code-server-$CODE_SERVER_VERSION.tgz" -C cs
rgver=$(node -p 'require("./cs/package/lib/vscode/npm-shrinkwrap.json").packages["node_modules/@vscode/ripgrep"].version')
npm pack "@vscode/ripgrep@$rgver"
mkdir rgpkg
tar -xzf "vscode-ripgrep-$rgver.tgz" -C rgpkg
rgtag=$(sed -n "s/^const VERSION = '\(v[^']*\)';.*/\1/p" rgpkg/package/lib/postinstall.js)
case "$(uname -m)" in
x86_64) target=x86_64-unknown-linux-musl ;;
aarch64) target=aarch64-unknown-linux-musl ;;
*) echo "code-server.sh: no ripgrep asset name for $(uname -m)" >&2; exit 1 ;;
esac
[ -n "$rgtag" ] || { echo "code-server.sh: no VERSION in @vscode/ripgrep $rgver" >&2; exit 1; }
cache="${TMPDIR:-/tmp}/vscode-ripgrep-cache-$rgver"
mkdir -p "$cache" rgbin
cp /usr/bin/rg rgbin/rg
tar -czf "$cache/ripgrep-$rgtag-$target.tar.gz" -C rgbin rg
echo "code-server.sh: seeded $cache/ripgrep-$rgtag-$target.tar.gz from Debian's ripgrep"

# A local install in its own prefix, not `npm install -g`: under -g npm
# exports npm_config_global=true to lifecycle scripts, and code-server's
# postinstall then runs `npm install` in lib/vscode (whose package is also
# named code-server) as a global install that replaces code-server itself.
prefix=/usr/local/lib/code-server
mkdir -p "$prefix"
cd "$prefix"
printf '{"name": "nbgate-code-server", "private": true}\n' > package.json
npm install --omit=dev "code-server@$CODE_SERVER_VERSION"
chmod 755 "$prefix/node_modules/code-server/out/node/entry.js"
ln -sf "$prefix/node_modules/code-server/out/node/entry.js" /usr/local/bin/code-server
cd /tmp/nbgate-build
rm -rf "$cache"
/usr/local/bin/code-server --version

# Headers only the native modules needed. Not build-essential, pkg-config
# or libnode-dev: Debian's npm depends on them (through node-gyp), and
# purging them takes npm with it.
# shellcheck disable=SC2086
apt-get purge -y --autoremove $BUILD_ONLY_PACKAGES
apt-get clean
for tool in node npm rg git python3; do
	command -v "$tool" >/dev/null || { echo "code-server.sh: $tool missing after purge" >&2; exit 1; }
done
rm -rf /root/.npm /root/.cache /root/.node-gyp
