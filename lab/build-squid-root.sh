#!/usr/bin/env bash
# Build a Debian root that holds that release's squid and haproxy packages, for the
# tests that hold carpfarm.carp to more releases than the host's own
# (tests/carp/test_carp_squid.py runs `chroot ROOT /usr/sbin/squid`,
# tests/carp/test_chash_haproxy.py `chroot ROOT /usr/sbin/haproxy`).
#
#   bash lab/build-squid-root.sh [SUITE]     SUITE defaults to trixie (squid 6.13, haproxy 3.0)
#
#   CARPFARM_MIRROR       Debian mirror URL   (default: read from this host's apt sources)
#   CARPFARM_SECURITY_MIRROR  Debian security mirror URL (default: likewise; none if not found)
#   CARPFARM_SQUID_ROOTS  where roots live    (default: .cache/squid-roots in the checkout)
#
# The root goes to $CARPFARM_SQUID_ROOTS/SUITE-<hash of this recipe>, and the
# link $CARPFARM_SQUID_ROOTS/SUITE points at it. When that directory exists
# the build is skipped; roots of older recipes are removed. The root's
# .carpfarm-squid-root holds `squid -v`'s first line. Runs as root
# (debootstrap, chroot); no service starts inside (policy-rc.d exits 101).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=${1:-trixie}
packages="squid haproxy"
roots=${CARPFARM_SQUID_ROOTS:-$here/../.cache/squid-roots}

recipe=$( { cat "$0"; echo "$suite $packages"; } | sha256sum | cut -c1-12)
mkdir -p "$roots"
roots=$(cd "$roots" && pwd)
root="$roots/$suite-$recipe"

# Written last, so a root without it is an interrupted build. (usr/sbin/squid itself is an
# absolute link into the root's /etc/alternatives, so it cannot be tested from outside.)
stamp=.carpfarm-squid-root
if [ -s "$root/$stamp" ]; then
    ln -sfn "$(basename "$root")" "$roots/$suite"
    echo "squid root $root is up to date"
    exit 0
fi

# The mirror this host's own release comes from (host_mirror -security: its security
# mirror); each serves every suite.
host_mirror() {
    local host_suite uri
    host_suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")${1:-}
    uri=$(awk -v want="$host_suite" '
        /^URIs:/ { uris = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == want) found = uris }
        /^$/ { uris = "" }
        END { print found }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk -v want="$host_suite" '$1 == "deb" && $3 == want { print $2; exit }' /etc/apt/sources.list)
    fi
    echo "$uri"
}

mirror=${CARPFARM_MIRROR:-$(host_mirror)}
security=${CARPFARM_SECURITY_MIRROR:-$(host_mirror -security)}
if [ -z "$mirror" ]; then
    echo "no Debian mirror found in /etc/apt/sources*; set CARPFARM_MIRROR=<url>" >&2
    exit 1
fi
# Debian 12's debootstrap has no script for suites newer than trixie; sid's fits them.
script=$suite
[ -e "/usr/share/debootstrap/scripts/$suite" ] || script=sid

build="$root.partial"
rm -rf "$build"
trap 'rm -rf "$build" "$build.log"' EXIT
echo "debootstrap $suite, then $packages, into $root"
debootstrap --variant=minbase "$suite" "$build" "$mirror" "/usr/share/debootstrap/scripts/$script" \
    > "$build.log" 2>&1 \
    || { tail -5 "$build.log" >&2; tail -30 "$build/debootstrap/debootstrap.log" >&2 2>/dev/null; exit 1; }

# No package may start a service inside this root, now or later.
printf '#!/bin/sh\nexit 101\n' > "$build/usr/sbin/policy-rc.d"
chmod 755 "$build/usr/sbin/policy-rc.d"
# The suite's updates and security fixes too, as a patched host of that release has them.
{
    echo "deb $mirror $suite main"
    echo "deb $mirror $suite-updates main"
    [ -z "$security" ] || echo "deb $security $suite-security main"
} > "$build/etc/apt/sources.list"
# Installed with apt, not debootstrap's --include: with trixie's squid, --include orders
# systemd before the libsystemd-shared it pre-depends on, and the bootstrap fails.
in_root() { chroot "$build" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
{ in_root apt-get update -q && in_root apt-get install -y -q --no-install-recommends $packages; } \
    >> "$build.log" 2>&1 || { tail -30 "$build.log" >&2; exit 1; }

# The tests write configs and logs under tmp/. Squid runs as 'proxy' and creates its
# shared memory segments (shm_open) in dev/shm, a plain directory in this root.
chmod 1777 "$build/tmp" "$build/dev/shm"
rm -rf "$build"/var/lib/apt/lists/* "$build"/var/cache/apt/*.bin "$build"/var/cache/apt/archives/*.deb

echo "squid package $(chroot "$build" dpkg-query -W -f '${Version}' squid)"
echo "haproxy package $(chroot "$build" dpkg-query -W -f '${Version}' haproxy)"
chroot "$build" /usr/sbin/squid -v | head -1 | tee "$build/$stamp"
for old in "$roots/$suite"-*; do
    [ "$old" = "$build" ] || [ "$old" = "$build.log" ] || rm -rf "$old"
done
mv "$build" "$root"
ln -sfn "$(basename "$root")" "$roots/$suite"
echo "built $root"
