#!/bin/sh
# Installs what building and testing the module needs on Debian (bookworm,
# trixie or sid): that release's Kamailio and friends from apt, and
# Kamailio's headers from the Debian source package of the installed version
# (into .kamailio-src/, ignored by git). Idempotent: does nothing when everything is already there.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="kamailio kamailio-sqlite-modules kamailio-extra-modules sip-tester libclang-dev clang sqlite3 dpkg-dev curl"
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
series=${upstream%.*}

have_headers() {
    for d in .kamailio-src/kamailio-$upstream .kamailio-src/kamailio-$series.*; do
        [ -f "$d/src/core/sr_module.h" ] && return 0
    done
    return 1
}

# The source of the installed version, from the archive's deb-src. Where apt
# refuses (trixie lacks the upstream signature .orig.tar.gz.asc) the files it
# lists are fetched one by one; where the archive has none of that version's
# sources (sid served 6.1.5 binaries with 6.1.4 sources) the nearest earlier
# patch release's upstream tarball of the same series stands in: build.rs
# accepts headers of the same major.minor, and says so.
fetch_source() {
    mkdir -p .kamailio-src
    cd .kamailio-src
    if apt-get source -q --download-only "kamailio=$version" >/dev/null 2>&1; then
        dpkg-source -x --no-check "kamailio_${version#*:}.dsc" "kamailio-$upstream" >/dev/null
        cd ..
        return 0
    fi
    uris=$(apt-get source -qq --print-uris "kamailio=$version" | sed -n "s/^'\([^']*\)'.*/\1/p")
    [ -n "$uris" ] || { echo "setup: no deb-src entry lists kamailio=$version" >&2; exit 1; }
    complete=1
    for u in $uris; do
        case "$u" in *.asc) continue ;; esac
        curl -fsS -o "${u##*/}" "$u" || complete=0
    done
    if [ $complete -eq 1 ]; then
        dpkg-source -x --no-check "kamailio_${version#*:}.dsc" "kamailio-$upstream" >/dev/null
        cd ..
        return 0
    fi
    pool=$(echo "$uris" | sed -n 's|/[^/]*\.dsc$||p')
    patch=${upstream##*.}
    while [ "$patch" -gt 0 ]; do
        patch=$((patch - 1))
        tarball="kamailio_$series.$patch.orig.tar.gz"
        if curl -fsS -o "$tarball" "$pool/$tarball"; then
            echo "setup: the archive has no source of kamailio $upstream; using the headers of $series.$patch"
            mkdir -p "kamailio-$series.$patch"
            tar xzf "$tarball" -C "kamailio-$series.$patch" --strip-components=1
            cd ..
            return 0
        fi
    done
    echo "setup: no source of the kamailio $series series found under $pool" >&2
    exit 1
}

if [ -n "${KAMAILIO_SRC:-}" ]; then
    [ -f "$KAMAILIO_SRC/core/sr_module.h" ] || { echo "KAMAILIO_SRC=$KAMAILIO_SRC has no core/sr_module.h" >&2; exit 1; }
elif ! have_headers; then
    echo "setup: fetching the Debian source package kamailio=$version for its headers"
    enable_deb_src
    [ $updated -eq 1 ] || $SUDO apt-get update -q
    fetch_source
fi

command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust (rustup)" >&2; exit 1; }
