#!/usr/bin/env bash
# Build the carpfarm lab's base images from nothing: debootstrap one Debian
# release each, then `podman import`. systemd is PID 1; python3 and python3-apt
# are there for Ansible, and sshd and sudo for reaching the hosts as production does: the account
# "deploy" may sudo without a password, and logs in by key only (playbooks/lab-up.yml gives each
# container its own host keys and the controller's key). No role package (squid, haproxy, ...) is
# installed: roles install what they use.
#
#   CARPFARM_LAB_RELEASES the Debian releases to build (default "bookworm trixie")
#   CARPFARM_IMAGE        image name of bookworm (default localhost/carpfarm-base);
#                         any other release is "<name>-<release>", e.g. localhost/carpfarm-base-trixie
#   CARPFARM_MIRROR       Debian mirror URL     (default: read from this host's apt sources)
#   CARPFARM_FROM_IMAGE   a registry image to start from instead of debootstrap, without its tag:
#                         ":<release>" is appended (for machines that can pull; not exercised here)
#
# Each image is tagged with a hash of this recipe and its release; when that tag
# exists its build is skipped. inventory/lab maps a host's lab_release to these names.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
releases=${CARPFARM_LAB_RELEASES:-bookworm trixie}
base=${CARPFARM_IMAGE:-localhost/carpfarm-base}
packages=python3,python3-apt,systemd,systemd-sysv,dbus,iproute2,procps,ca-certificates,openssh-server,sudo
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
# This host's own release, as its apt sources name it.
host_suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")

# The first Debian (not security) mirror in this host's apt sources: the same mirror serves every release.
host_mirror() {
    local uri
    uri=$(awk '
        /^URIs:/ { uris = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i !~ /-security$/ && found == "") found = uris }
        /^$/ { uris = "" }
        END { print found }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $3 !~ /-security$/ { print $2; exit }' /etc/apt/sources.list)
    fi
    echo "$uri"
}

build() {
local suite=$1 image=$2
local recipe tag mirror
recipe=$( { cat "$0"; echo "$suite $packages ${CARPFARM_FROM_IMAGE:-debootstrap}"; } | sha256sum | cut -c1-12)
tag="$image:$recipe"

if podman image exists "$tag"; then
    podman tag "$tag" "$image:latest"
    echo "image $tag ($suite) is up to date"
    return 0
fi

if [ -n "${CARPFARM_FROM_IMAGE:-}" ]; then
    podman build -t "$tag" -f - "$here" <<CONTAINERFILE
FROM $CARPFARM_FROM_IMAGE:$suite
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      $(echo "$packages" | tr , ' ') && rm -rf /var/lib/apt/lists/* && touch -d @0 /var/lib/apt/lists \
    && printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
    && rm -f /etc/ssh/ssh_host_* && mkdir -p /etc/systemd/system/ssh.service.d /etc/ssh/sshd_config.d \
    && printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
         > /etc/systemd/system/ssh.service.d/carpfarm-lab-host-keys.conf \
    && printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n' \
         > /etc/ssh/sshd_config.d/carpfarm-lab.conf \
    && useradd --create-home --shell /bin/bash deploy \
    && printf 'deploy ALL=(ALL:ALL) NOPASSWD: ALL\n' > /etc/sudoers.d/carpfarm-lab-deploy \
    && chmod 0440 /etc/sudoers.d/carpfarm-lab-deploy
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
CONTAINERFILE
    podman tag "$tag" "$image:latest"
    return 0
fi

mirror=${CARPFARM_MIRROR:-$(host_mirror)}
if [ -z "$mirror" ]; then
    echo "no Debian mirror found in /etc/apt/sources*; set CARPFARM_MIRROR=<url>" >&2
    return 1
fi

rootfs=$(mktemp -d /var/tmp/carpfarm-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap $suite into $rootfs"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" > "$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; return 1; }
rm -f "$rootfs.log"

# Containers have no consoles or udev.
systemctl --root="$rootfs" mask \
    getty@tty1.service console-getty.service serial-getty@.service getty.target \
    systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-udev-trigger.service systemd-udev-settle.service systemd-hwdb-update.service \
    sys-kernel-config.mount sys-kernel-debug.mount dev-hugepages.mount >/dev/null 2>&1

# The host's apt sources (debootstrap writes only "<release> main", and would miss security updates),
# with the host's release renamed to the image's (bookworm-security -> trixie-security, ...).
if [ -z "${CARPFARM_MIRROR:-}" ]; then
    cp /etc/apt/sources.list.d/*.sources "$rootfs/etc/apt/sources.list.d/" 2>/dev/null || true
    if [ -f /etc/apt/sources.list ]; then cp /etc/apt/sources.list "$rootfs/etc/apt/sources.list"; fi
    if [ -n "$(ls "$rootfs"/etc/apt/sources.list.d/*.sources 2>/dev/null)" ]; then : > "$rootfs/etc/apt/sources.list"; fi
    if [ -n "$host_suite" ] && [ "$host_suite" != "$suite" ]; then
        sed -i -E "/^(Suites:|deb(-src)? )/ s/\\b$host_suite\\b/$suite/g" \
            "$rootfs"/etc/apt/sources.list.d/*.sources "$rootfs/etc/apt/sources.list" 2>/dev/null || true
    fi
else
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$suite" "$mirror" "$suite" \
        > "$rootfs/etc/apt/sources.list"
fi

# SSH as on a production host: no host keys in the image (each container makes its own when sshd
# first starts), no passwords, no root logins; "deploy" logs in with a key and uses sudo.
rm -f "$rootfs"/etc/ssh/ssh_host_*
mkdir -p "$rootfs/etc/systemd/system/ssh.service.d" "$rootfs/etc/ssh/sshd_config.d"
printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
    > "$rootfs/etc/systemd/system/ssh.service.d/carpfarm-lab-host-keys.conf"
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n' \
    > "$rootfs/etc/ssh/sshd_config.d/carpfarm-lab.conf"
chroot "$rootfs" useradd --create-home --shell /bin/bash deploy
printf 'deploy ALL=(ALL:ALL) NOPASSWD: ALL\n' > "$rootfs/etc/sudoers.d/carpfarm-lab-deploy"
chmod 0440 "$rootfs/etc/sudoers.d/carpfarm-lab-deploy"

# Packages must not start with their default configuration; roles start services.
printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"
chmod 755 "$rootfs/usr/sbin/policy-rc.d"

# Empty package lists, dated at the epoch, so apt's cache_valid_time refreshes them.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
touch -d @0 "$rootfs/var/lib/apt/lists"
: > "$rootfs/etc/machine-id"

tar -C "$rootfs" -c . | podman import \
    --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' - "$tag" >/dev/null
podman tag "$tag" "$image:latest"
rm -rf "$rootfs"
trap - EXIT
echo "built $tag ($suite)"
}

for suite in $releases; do
    case $suite in
        bookworm) build "$suite" "$base" ;;
        trixie) build "$suite" "$base-$suite" ;;
        *) echo "CARPFARM_LAB_RELEASES: '$suite' is not a release carpfarm supports (bookworm, trixie)" >&2; exit 1 ;;
    esac
done
