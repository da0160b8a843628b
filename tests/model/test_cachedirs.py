"""carpfarm.model.cachedirs: a cache_dir is a directory of its own, never a system one, apart from the others."""

from __future__ import annotations

import pytest

from carpfarm.model import cachedirs

REFUSED = [
    ("/", "is a system directory"),
    ("/etc", "ProtectSystem"),
    ("/etc/squid", "is inside /etc"),
    ("/usr", "ProtectSystem"),
    ("/usr/local/squid", "is inside /usr"),
    ("/boot/cache", "is inside /boot"),
    ("/bin", "ProtectSystem"),
    ("/sbin/x", "is inside /sbin"),
    ("/lib", "ProtectSystem"),
    ("/lib64/cache", "is inside /lib64"),
    ("/libx32", "ProtectSystem"),
    ("/proc/1", "runtime file system"),
    ("/sys", "runtime file system"),
    ("/dev/shm/cache", "is inside /dev"),
    ("/run/squid", "is inside /run"),
    ("/var/run/squid", "is inside /var/run"),
    ("/root", "ProtectHome"),
    ("/home/proxy/cache", "ProtectHome"),
    ("/tmp", "PrivateTmp"),
    ("/var/tmp/squid", "PrivateTmp"),
    ("/var/log", "holds the logs"),
    ("/var/log/squid", "is inside /var/log"),
    ("/var/log/squid/backend1", "is inside /var/log"),
    ("/var/lib", "state of packages"),
    ("/var/lib/squid", "is inside /var/lib"),
    ("/var/cache/apt/archives", "apt's package cache"),
    ("/var/spool/cron", "another service"),
    ("/var/mail/proxy", "another service"),
    ("/var", "is a system directory"),
    ("/var/cache", "is a system directory"),
    ("/var/spool", "is a system directory"),
    ("/srv", "is a system directory"),
    ("/opt", "is a system directory"),
    ("/mnt", "is a system directory"),
    ("/media", "is a system directory"),
    ("/var/spool/squid", "parent of every instance's default cache_dir"),
    ("/lost+found", "fsck"),
]
ALLOWED = [
    "/var/spool/squid/backend1",
    "/var/spool/squid/a/b",
    "/srv/cache1",
    "/mnt/disk1/squid",
    "/cache1",
    "/opt/squid-cache",
    "/var/cache/squid",
    "/media/ssd0/cache",
    "/liberty",  # not /lib*
    "/etcetera",  # component-wise: not inside /etc
    "/varnish",
    "/homes/cache",
]


@pytest.mark.parametrize(("path", "words"), REFUSED)
def test_a_system_directory_its_parents_and_what_is_inside_the_protected_ones_are_refused(
    path: str, words: str
) -> None:
    why = cachedirs.refusal(path)
    assert why is not None and words in why, why


@pytest.mark.parametrize("path", ALLOWED)
def test_a_directory_of_its_own_is_a_cache_dir(path: str) -> None:
    assert cachedirs.refusal(path) is None


@pytest.mark.parametrize(
    ("paths", "found"),
    [
        (["/srv/c", "/srv/c/x"], [(1, 0, "is inside")]),
        (["/srv/c/x", "/srv/c"], [(1, 0, "contains")]),
        (["/srv/c", "/srv/c"], [(1, 0, "is")]),
        (["/srv/cache", "/srv/cache2"], []),  # component-wise
        (["/srv/cache2", "/srv/cache"], []),
        (["/var/spool/squid/a", "/var/spool/squid/b", "/var/spool/squid/a/x"], [(2, 0, "is inside")]),
        (["/mnt/a", "/mnt/b", "/mnt/c"], []),
    ],
)
def test_cache_dirs_of_one_host_that_are_the_same_or_nested_collide(
    paths: list[str], found: list[tuple[int, int, str]]
) -> None:
    assert cachedirs.collisions(paths) == found
