#!/bin/sh
# Installs what building and testing the module needs on Debian bookworm:
# Kamailio 5.6.3 and friends from apt, and Kamailio's headers from the Debian
# source package of the installed version (into .kamailio-src/, ignored by
# git). Idempotent: does nothing when everything is already there.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="kamailio kamailio-sqlite-modules kamailio-extra-modules sip-tester libclang-dev clang sqlite3 dpkg-dev"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

enable_deb_src() {
    # deb822 sources (bookworm default) and classic sources.list both work.
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        $SUDO sed -i 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources
    fi
    if [ -f /etc/apt/sources.list ] && grep -q '^deb ' /etc/apt/sources.list \
        && ! grep -q '^deb-src ' /etc/apt/sources.list; then
        grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' | $SUDO tee -a /etc/apt/sources.list >/dev/null
    fi
}

updated=0
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    enable_deb_src
    $SUDO apt-get update -q
    updated=1
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi

version=$(dpkg-query -W -f='${Version}' kamailio)
upstream=${version%%-*}
upstream=${upstream#*:}
if [ -n "${KAMAILIO_SRC:-}" ]; then
    [ -f "$KAMAILIO_SRC/core/sr_module.h" ] || { echo "KAMAILIO_SRC=$KAMAILIO_SRC has no core/sr_module.h" >&2; exit 1; }
elif [ ! -f ".kamailio-src/kamailio-$upstream/src/core/sr_module.h" ]; then
    echo "setup: fetching the Debian source package kamailio=$version for its headers"
    enable_deb_src
    [ $updated -eq 1 ] || $SUDO apt-get update -q
    mkdir -p .kamailio-src
    (cd .kamailio-src && apt-get source -q --download-only "kamailio=$version" \
        && dpkg-source -x --no-check kamailio_*.dsc "kamailio-$upstream" >/dev/null)
fi

command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust (rustup)" >&2; exit 1; }
