"""What runs on the hosts themselves, standard library only: the balancer's arithmetic, the kernel
rules it prints, and carpfarm-watch (``watch``, the daemon; ``health``, its state machine;
``listening``, its sock_diag probe; ``watchconfig``, the configuration it reads). Nothing here
imports from outside this package (the lint step checks it), so the modules copied onto a box run
with the box's plain ``python3``.

``copies`` lists every module a role copies onto a host, by purpose: the one list both the
frontend_balancer role (the watch) and the lab's WCCP router stand-in take theirs from.
"""

from __future__ import annotations

from pathlib import Path

# Purpose -> the package's files a host needs for it, relative to the carpfarm package's parent.
COPIES: dict[str, tuple[str, ...]] = {
    "watch": (
        "carpfarm/__init__.py",
        "carpfarm/box/__init__.py",
        "carpfarm/box/balancer.py",
        "carpfarm/box/health.py",
        "carpfarm/box/kernelrules.py",
        "carpfarm/box/listening.py",
        "carpfarm/box/watch.py",
        "carpfarm/box/watchconfig.py",
    ),
    "wccp-router": (
        "carpfarm/__init__.py",
        "carpfarm/wccp/__init__.py",
        "carpfarm/wccp/bodies.py",
        "carpfarm/wccp/wire.py",
        "carpfarm/wccp/router.py",
    ),
}


def copies(purpose: str) -> dict[str, str]:
    """The files a host needs for ``purpose`` (a key of COPIES): relative path -> source text."""
    root = Path(__file__).resolve().parent.parent.parent
    return {path: (root / path).read_text() for path in COPIES[purpose]}
