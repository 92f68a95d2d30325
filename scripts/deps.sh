#!/bin/sh
# Installs hearth's Debian build/test dependencies (apt-get; as root or via sudo).
# Called by the Makefile when pkg-config or node misses something.
set -e
PKGS="build-essential pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev
libssl-dev libpcre2-dev libcurl4-openssl-dev clang nodejs npm wrk nginx curl
libicu-dev nettle-dev"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# node may come from elsewhere than Debian's package: keep it if it works.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=$(echo "$missing" | tr ' ' '\n' | grep -v -x -e nodejs -e npm | tr '\n' ' ')
fi
[ -z "$(echo $missing)" ] && exit 0
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q || true
$SUDO apt-get install -y -q --no-install-recommends $missing
