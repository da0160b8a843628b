"""Where a backend instance's cache_dir may be: a directory of its own, never a system one.

squid_backend creates each cache_dir as the proxy user's, Squid fills it with its swap
directories, and the purge of a removed instance deletes it. A cache_dir that is, holds or sits
in a directory the system needs would hand that directory to Squid and then delete it.

Paths are compared component by component (/srv/cache is not inside /srv/cache2). They are the
model's: absolute, without empty, "." or ".." components (``variables.CACHE_DIR_PATTERN``).
"""

from __future__ import annotations

from collections.abc import Sequence

from carpfarm.variables import DEFAULT_CACHE_ROOT

Parts = tuple[str, ...]

_SYSTEM = "holds the system's programs or configuration (read-only to Squid: ProtectSystem=full)"
_RUNTIME = "is a kernel or runtime file system, not a disk (what is there is gone at the next boot)"
_HOME = "is hidden from Squid (squid@ runs with ProtectHome=yes)"
_TMP = "is private to each service (squid@ runs with PrivateTmp=yes: Squid would see an empty one of its own)"
_DAEMON = "belongs to another service (its spool, mail or web files)"
# Never a cache, nor anywhere inside, each with the reason: what the system runs from (/usr, /etc,
# /boot; /bin, /sbin and /lib* are links into /usr on Debian 12 and 13), what the kernel and
# systemd mount (/proc, /sys, /dev, /run), what squid@'s sandbox hides or replaces (/root, /home,
# /tmp, /var/tmp), the logs and the state of packages and services, and other daemons' data.
NEVER_INSIDE: dict[str, str] = {
    "/etc": _SYSTEM,
    "/usr": _SYSTEM,
    "/boot": _SYSTEM,
    "/bin": _SYSTEM,
    "/sbin": _SYSTEM,
    "/lib": _SYSTEM,
    "/lib32": _SYSTEM,
    "/lib64": _SYSTEM,
    "/libx32": _SYSTEM,
    "/proc": _RUNTIME,
    "/sys": _RUNTIME,
    "/dev": _RUNTIME,
    "/run": _RUNTIME,
    "/var/run": _RUNTIME,  # a link to /run
    "/var/lock": _RUNTIME,  # a link to /run/lock
    "/root": _HOME,
    "/home": _HOME,
    "/tmp": _TMP,
    "/var/tmp": _TMP,
    "/var/log": "holds the logs (Squid's own in /var/log/squid): logrotate rotates them and the purge of a "
    "removed instance deletes them",
    "/var/lib": "holds the state of packages and services (dpkg, apt, systemd)",
    "/var/backups": "holds the system's own backups (dpkg, passwd)",
    "/var/cache/apt": "is apt's package cache",
    "/var/cache/debconf": "is debconf's database",
    "/var/mail": _DAEMON,
    "/var/www": _DAEMON,
    "/var/spool/cron": _DAEMON,
    "/var/spool/postfix": _DAEMON,
    "/var/spool/exim4": _DAEMON,
    "/var/spool/cups": _DAEMON,
    "/var/spool/rsyslog": _DAEMON,
    "/var/spool/anacron": _DAEMON,
    "/lost+found": "is where fsck puts what it recovers",
}
# The other directories every Debian host has (base-files and the Filesystem Hierarchy Standard):
# none of them may be a cache, nor may any directory that holds one of them or of the above (/ holds
# them all), or the role would make it the proxy user's and the purge delete it. Inside those meant
# to hold data a directory of its own is fine: /srv/cache1, /mnt/disk1/squid, /cache1.
SYSTEM_DIRS = ("/", "/srv", "/mnt", "/media", "/opt", "/var", "/var/cache", "/var/spool", "/var/local", "/var/opt")
_SYSTEM_DIR = (
    "is a system directory, or holds one: the role would make it the proxy user's and the purge of a "
    "removed instance would delete it"
)
# Squid's own: the parent of every default cache_dir (/var/spool/squid/<name>), and its logs.
SQUID_DIRS: dict[str, str] = {
    DEFAULT_CACHE_ROOT: f"is the parent of every instance's default cache_dir ({DEFAULT_CACHE_ROOT}/<name>): "
    "one instance would hold, and its purge delete, the others' caches",
}


def parts(path: str) -> Parts:
    return tuple(p for p in path.split("/") if p)


def within(inner: Parts, outer: Parts) -> bool:
    """Whether ``inner`` is ``outer`` or a path under it."""
    return inner[: len(outer)] == outer


def refusal(path: str) -> str | None:
    """Why ``path`` cannot be a cache_dir (words that follow the path), or None when it may be."""
    here = parts(path)
    for directory, why in NEVER_INSIDE.items():
        outer = parts(directory)
        if within(here, outer):
            return why if here == outer else f"is inside {directory}, which {why}"
    for directory, why in SQUID_DIRS.items():
        if here == parts(directory):
            return why
    if any(within(parts(directory), here) for directory in (*SYSTEM_DIRS, *NEVER_INSIDE)):
        return _SYSTEM_DIR
    return None


def nesting(path: str, other: str) -> str | None:
    """How two cache_dirs of one host collide: 'is', 'is inside' or 'contains', or None."""
    mine, theirs = parts(path), parts(other)
    if mine == theirs:
        return "is"
    if within(mine, theirs):
        return "is inside"
    if within(theirs, mine):
        return "contains"
    return None


def collisions(paths: Sequence[str]) -> list[tuple[int, int, str]]:
    """(later, earlier, how) for each pair of ``paths`` that is the same directory or nested."""
    found = []
    for n, path in enumerate(paths):
        for m in range(n):
            how = nesting(path, paths[m])
            if how is not None:
                found.append((n, m, how))
                break
    return found
