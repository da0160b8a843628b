#!/usr/bin/env bash
# Build the Squid that the lab's WCCP boxes run: Debian's own squid source package of one release,
# with the two upstream corrections to its WCCPv2 parser (lab/wccp-squid.patch), configured with
# Debian's paths and the features carpfarm's frontends use, and built in a container of the lab's
# base image of that release, so that it links against the libraries the boxes have. Only the
# squid binary is built (no helpers, no manual pages): a box keeps Debian's package and runs this
# binary in place of /usr/sbin/squid (dpkg-divert).
#
#   bash lab/build-wccp-squid.sh [SUITE]   SUITE defaults to bookworm (squid 5.7)
#
#   CARPFARM_IMAGE       the lab's base image of bookworm (default localhost/carpfarm-base; other
#                        releases: <name>-<release>, as lab/build-image.sh names them)
#   CARPFARM_WCCP_SQUID  where builds live (default ${XDG_CACHE_HOME:-~/.cache}/carpfarm/wccp-squid: the
#                        machine's, like the base images in podman's store, so a fresh clone finds it)
#   CARPFARM_JOBS        parallel compile jobs (default: the CPUs)
#   CARPFARM_WCCP_SQUID_CFLAGS  the compiler's flags (default -O0: a lab binary, built in half the time;
#                        for a box in production give -O2, as Debian builds it; builds of other flags
#                        are kept apart, the flags being part of the hash)
#   CARPFARM_CPU_SHARES  run the build in the background cgroup /carpfarm-background with this CPU
#                        weight (cgroup v1 cpu.shares; v2: cpu.weight 1). make test gives 2 and builds
#                        beside the first molecule scenarios: the build then takes only CPU that the
#                        lab's containers and the Ansible controller leave idle (nice would not do:
#                        the container would be its own cgroup, weighed like the lab's together)
#
# The build goes to $CARPFARM_WCCP_SQUID/SUITE-<hash of this recipe and the patch>/ (squid, and
# squid-version: `squid -v`'s first line, written last); the last line printed is "binary: <its path>".
# When that directory is complete the build is skipped: a machine pays for it once per recipe (each
# recipe's build stays, about 10 MB, so checkouts of different commits do not rebuild in turn). One
# build at a time: a second call waits for the first (a lock beside the builds), then finds its result.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=${1:-bookworm}
base=${CARPFARM_IMAGE:-localhost/carpfarm-base}
image=$base
[ "$suite" = bookworm ] || image="$base-$suite"
builds=${CARPFARM_WCCP_SQUID:-${XDG_CACHE_HOME:-$HOME/.cache}/carpfarm/wccp-squid}
jobs=${CARPFARM_JOBS:-$(nproc)}
background=()
if [ -n "${CARPFARM_CPU_SHARES:-}" ]; then
    if [ -d /sys/fs/cgroup/cpu ] && mkdir -p /sys/fs/cgroup/cpu/carpfarm-background 2>/dev/null \
        && echo "$CARPFARM_CPU_SHARES" > /sys/fs/cgroup/cpu/carpfarm-background/cpu.shares; then
        background=(--cgroup-parent=/carpfarm-background)
    elif [ -f /sys/fs/cgroup/cgroup.controllers ] && mkdir -p /sys/fs/cgroup/carpfarm-background 2>/dev/null \
        && echo 1 > /sys/fs/cgroup/carpfarm-background/cpu.weight 2>/dev/null; then
        background=(--cgroup-parent=/carpfarm-background)
    else
        echo "note: no background cgroup here; the build competes with the lab for CPU" >&2
    fi
fi
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

cflags=${CARPFARM_WCCP_SQUID_CFLAGS:--O0}
recipe=$(cat "$0" "$here/wccp-squid.patch" | { cat; echo "$suite $cflags"; } | sha256sum | cut -c1-12)
mkdir -p "$builds"
builds=$(cd "$builds" && pwd)
exec 9>"$builds/.lock"
flock 9
out="$builds/$suite-$recipe"
if [ -s "$out/squid-version" ]; then
    echo "wccp squid $out is up to date: $(cat "$out/squid-version")"
    echo "binary: $out/squid"
    exit 0
fi
podman image exists "$image" || { echo "no lab image $image: run make image first" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out"

# Inside the container: the source package from the image's own apt sources (deb-src added), the
# build dependencies of this configure, the patch, configure, make.
started=$(date +%s)
podman run --rm "${background[@]}" --network host -v "$out:/out" -v "$here/wccp-squid.patch:/wccp-squid.patch:ro" \
    "$image" bash -euo pipefail -c "
export DEBIAN_FRONTEND=noninteractive
sed -i 's/^Types: deb\$/Types: deb deb-src/' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >> /etc/apt/sources.list 2>/dev/null || true
apt-get update -qq
apt-get install -y -qq --no-install-recommends dpkg-dev build-essential pkg-config libltdl-dev libcap-dev \
    libsystemd-dev libexpat1-dev libxml2-dev autoconf automake libtool >/dev/null
mkdir /build && cd /build
apt-get source -qq squid >/dev/null 2>&1
cd squid-*/
patch -p1 < /wccp-squid.patch
# Debian's patches change Makefile.am (one removes gopher): regenerate, as Debian's build does.
autoreconf -fi >/dev/null 2>&1
# Debian's paths (debian/rules), and of its features those carpfarm's squid.conf uses: intercept
# (netfilter), systemd notification, ICMP (pinger_enable), the cache stores, WCCPv2. No helpers, no
# debug information (-g), and by default no optimisation (-O0): the lab's boxes carry the handshake and
# a few requests a second, and the compile takes about half the CPU of -O2 (four of Squid's larger
# files: 5.3 s at -O0, 7.4 s at -O1, 9.8 s at -O2), which make test spends beside the scenarios.
CFLAGS='$cflags' CXXFLAGS='$cflags' ./configure -q --prefix=/usr --sysconfdir=/etc/squid --localstatedir=/var --libexecdir=/usr/lib/squid \
    --datadir=/usr/share/squid --mandir=/usr/share/man --with-default-user=proxy \
    --with-logdir=/var/log/squid --with-pidfile=/run/squid.pid --with-swapdir=/var/spool/squid \
    --with-filedescriptors=65536 --with-large-files --enable-linux-netfilter --with-systemd --enable-icmp \
    --enable-storeio=ufs,aufs,rock --enable-removal-policies=lru,heap --enable-wccpv2 --disable-arch-native \
    --disable-auth --disable-external-acl-helpers --disable-url-rewrite-helpers \
    --disable-storeid-rewrite-helpers --disable-security-cert-validators --disable-security-cert-generators \
    --without-openssl --without-gnutls --disable-esi --disable-ecap --disable-icap-client --disable-translation \
    --disable-eui --without-mit-krb5 --without-heimdal-krb5 --without-gss >/dev/null
make -s -j$jobs >/build/make.log 2>&1 || { tail -40 /build/make.log; exit 1; }
strip -o /out/squid src/squid
/out/squid -v | head -1 > /out/squid-version.tmp
"
mv "$out/squid-version.tmp" "$out/squid-version"
echo "built $out in $(( $(date +%s) - started )) s: $(cat "$out/squid-version")"
echo "binary: $out/squid"
