#!/bin/sh
# Runs a command in this checkout inside a minimal Debian root of another
# release, where /usr/sbin/kamailio, its modules (the C uac.so among them),
# sipp and the C toolchain are that release's own packages:
#
#   scripts/in-release.sh trixie make test-release
#   scripts/in-release.sh sid sh
#
# The root is made with debootstrap on first use and kept under
# $UAC_ROOTS/<suite> (default /var/tmp/uac-roots); a root whose package list
# is older than this script's is brought up to date with apt. The checkout and
# the Rust toolchain (~/.cargo, ~/.rustup) are bound in at their own paths;
# cargo builds into target/<suite>/ so releases never share objects. Mounts
# live in a private mount namespace and vanish with the command. Needs root.
set -eu

[ $# -ge 2 ] || { echo "usage: $0 SUITE COMMAND..." >&2; exit 2; }
suite=$1
shift
case "$suite" in
*[!a-z]* | "") echo "in-release: bad suite name '$suite'" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "in-release: must run as root (debootstrap, chroot)" >&2; exit 1; }

checkout=$(cd "$(dirname "$0")/.." && pwd)
roots=${UAC_ROOTS:-/var/tmp/uac-roots}
root=$roots/$suite
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cargo_home=${CARGO_HOME:-$HOME/.cargo}
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
# What building and testing needs inside; scripts/setup.sh lists the same
# Kamailio packages for the host.
PACKAGES="kamailio kamailio-sqlite-modules kamailio-extra-modules sip-tester
libclang-dev clang gcc libc6-dev make sqlite3 dpkg-dev curl ca-certificates"

in_root() {
    chroot "$root" env -i HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# sid's Release file can be past its Valid-Until on a mirror snapshot.
apt_conf() {
    cat > "$1/etc/apt/apt.conf.d/99uac" <<EOF
Acquire::Check-Valid-Until "false";
APT::Install-Recommends "false";
EOF
    printf 'deb %s %s main\ndeb-src %s %s main\n' "$mirror" "$suite" "$mirror" "$suite" \
        > "$1/etc/apt/sources.list"
}

if [ ! -f "$root/.uac-root" ]; then
    command -v debootstrap >/dev/null || apt-get install -y -q debootstrap
    echo "in-release: building the $suite root in $root (once)"
    rm -rf "$root.tmp"
    mkdir -p "$roots"
    debootstrap --variant=minbase "$suite" "$root.tmp" "$mirror" >"$roots/$suite.debootstrap.log" 2>&1 ||
        { tail -n 20 "$roots/$suite.debootstrap.log" >&2; exit 1; }
    rm -rf "$root"
    mv "$root.tmp" "$root"
    : > "$root/.uac-root"
fi

wanted=$(echo $PACKAGES)
if [ "$(cat "$root/.uac-packages" 2>/dev/null)" != "$wanted" ]; then
    echo "in-release: installing into the $suite root: $wanted"
    apt_conf "$root"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    in_root apt-get update -q
    # shellcheck disable=SC2086
    in_root apt-get install -y -q $wanted
    echo "$wanted" > "$root/.uac-packages"
fi

cp /etc/resolv.conf "$root/etc/resolv.conf"

# The mounts are made in a new mount namespace: nothing leaks to the host,
# and nothing is left behind when the command ends or is killed.
exec unshare --mount --propagation private sh -eu -c '
root=$1 checkout=$2 cargo_home=$3 rustup_home=$4 suite=$5
shift 5
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t sysfs sysfs "$root/sys"
mount -t tmpfs tmpfs "$root/tmp"
# After the tmpfs: a checkout or toolchain under /tmp needs its mount point there.
mkdir -p "$root$checkout" "$root$cargo_home" "$root$rustup_home"
mount --bind "$checkout" "$root$checkout"
mount --bind "$cargo_home" "$root$cargo_home"
mount --bind "$rustup_home" "$root$rustup_home"
cd "$root$checkout"
exec chroot "$root" env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
    PATH="$cargo_home/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    CARGO_HOME="$cargo_home" RUSTUP_HOME="$rustup_home" \
    CARGO_TARGET_DIR="$checkout/target/$suite" UAC_RELEASE="$suite" \
    ${FUZZ_SECONDS:+FUZZ_SECONDS=$FUZZ_SECONDS} \
    sh -c "cd \"\$0\" && exec \"\$@\"" "$checkout" "$@"
' in-release "$root" "$checkout" "$cargo_home" "$rustup_home" "$suite" "$@"
