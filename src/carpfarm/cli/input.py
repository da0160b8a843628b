"""What ``carpfarm`` accepts on its command line, checked before any work starts.

Each check raises ``UsageError`` with one line that names the offending value and the fix;
the CLI prints it and exits 2. Nothing here reads an inventory's contents.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Sequence
from pathlib import Path

# The schemes Squid parses as an absolute URL and forwards to a CARP parent.
SCHEMES = ("http", "https", "ftp")
MAX_PORT = 65535
PEERS_LISTED = 8
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")  # RFC 3986


class UsageError(ValueError):
    """A command-line mistake: one line for the user, exit 2."""


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {value}")
    return value


def url_problem(url: str) -> str | None:
    """Why Squid could not parse ``url`` as an absolute http, https or ftp URL (None: it can)."""
    if not url or any(c.isspace() or ord(c) < 0x20 for c in url):
        return "is empty or contains whitespace; percent-encode spaces as %20"
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _no_separator_problem(url)
    if scheme.lower() not in SCHEMES:
        return f"has scheme {scheme!r}; CARP routes {', '.join(SCHEMES)} URLs only"
    return _authority_problem(rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2])


def _no_separator_problem(url: str) -> str:
    """What is wrong with a URL that has no '://': a scheme without it, another scheme, or none."""
    head, colon, tail = url.partition(":")
    if head.lower() in SCHEMES:
        return f"needs '://' after its scheme {head!r}"
    if colon and _SCHEME.fullmatch(head) and not tail[:1].isdigit():  # mailto:x, not host:port
        return f"has scheme {head!r}; CARP routes {', '.join(SCHEMES)} URLs only"
    return f"has no scheme; write it as 'http://{url}'"


def _authority_problem(authority: str) -> str | None:
    """Why ``host[:port]`` (or ``[v6][:port]``) is no host and port Squid takes (None: it is)."""
    if authority.startswith("["):
        problem = _ipv6_problem(authority)
        if problem is not None:
            return problem
    host, port = _host_and_port(authority)
    if not host or host == "[]":
        return "has no host; write it as 'scheme://host/path'"
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= MAX_PORT):
        return f"has port {port!r}; a port is a number from 1 to {MAX_PORT}"
    return None


def _ipv6_problem(authority: str) -> str | None:
    """A bracketed IPv6 host must close, and only ':PORT' may follow it."""
    end = authority.find("]")
    if end < 0:
        return f"has an IPv6 host without its closing ']': {authority!r}"
    tail = authority[end + 1 :]
    if tail and not tail.startswith(":"):
        return f"has {tail!r} after the IPv6 host; only ':PORT' may follow it"
    return None


def _host_and_port(authority: str) -> tuple[str, str]:
    """(host, port as written, '' for none) of an authority ``_ipv6_problem`` passed."""
    if authority.startswith("["):
        end = authority.find("]")
        return authority[: end + 1], authority[end + 2 :]
    host, _, port = authority.partition(":")
    return host, port


def check_urls(urls: Sequence[str]) -> list[str]:
    """``urls`` unchanged, or ``UsageError`` for the first one Squid would refuse."""
    for url in urls:
        reason = url_problem(url)
        if reason is not None:
            raise UsageError(f"URL {url!r} {reason}")
    return list(urls)


def read_urls(path: str) -> list[str]:
    """The URLs of a file with one per line (blank lines skipped), each checked."""
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(f"--urls-file {path!r} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"--urls-file {path!r} is a directory; pass a file with one URL per line") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"--urls-file {path!r} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"--urls-file {path!r} cannot be read: {exc.strerror or exc}") from None
    urls = [line.strip() for line in lines]
    numbered = [(n, u) for n, u in enumerate(urls, start=1) if u]
    if not numbered:
        raise UsageError(f"--urls-file {path!r} holds no URL; write one URL per line")
    for number, url in numbered:
        reason = url_problem(url)
        if reason is not None:
            raise UsageError(f"--urls-file {path!r} line {number}: URL {url!r} {reason}")
    return [u for _, u in numbered]


def vault_password_file(text: str) -> str:
    """argparse ``type=`` for --vault-password-file: a file (or an executable script printing the
    password, as Ansible takes it) that exists, as an absolute path."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r} does not exist; pass the file that holds the vault password")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; pass the file that holds the vault password")
    return str(path.absolute())


def limit_pattern(text: str) -> str:
    """argparse ``type=`` for status --limit: an Ansible host pattern, not blank."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"expected an Ansible host pattern such as 'cache1' or 'squid_backends:!cache2', got {text!r}"
        )
    return text


def check_inventory_path(path: str) -> str:
    """``path`` unchanged if something is there (its contents are the model's to judge)."""
    if not Path(path).exists():
        raise UsageError(f"inventory {path!r} does not exist; pass a directory with hosts.yml or a hosts file")
    return path


def _closest(name: str, candidates: Sequence[str], cutoff: float = 0.6) -> list[str]:
    """The candidates most like ``name`` (all that tie for best, at most 3), or none close enough."""
    scored = [(difflib.SequenceMatcher(None, name, c).ratio(), c) for c in candidates]
    best = max((score for score, _ in scored), default=0.0)
    return sorted(c for score, c in scored if score == best and score >= cutoff)[:3]


def check_peers(names: Sequence[str], peers: Sequence[str], inventory: str) -> list[str]:
    """``names`` unchanged if each is one of ``peers``; otherwise name the first stranger and a fix."""
    for name in names:
        if name in peers:
            continue
        close = _closest(name, peers)
        if close:
            hint = f"did you mean {' or '.join(repr(c) for c in sorted(close))}?"
        else:
            listed = ", ".join(peers[:PEERS_LISTED])
            more = f", ... ({len(peers)} in all; see 'carpfarm plan {inventory}')" if len(peers) > PEERS_LISTED else ""
            hint = f"its peers are {listed}{more}" if peers else "it has no CARP peer"
        raise UsageError(f"--down {name!r} is not a CARP peer of {inventory}; {hint}")
    return list(names)
