#!/usr/bin/env python3
"""Install Ansible collections without Galaxy: take them from the `ansible` wheel on PyPI.

Usage: install-collections.py WHEEL DEST NAMESPACE.NAME...
Extracts ansible_collections/<namespace>/<name>/ from WHEEL into DEST.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path


def main(wheel: str, dest: str, names: list[str]) -> int:
    target = Path(dest)
    with zipfile.ZipFile(wheel) as archive:
        members = archive.namelist()
        for name in names:
            prefix = "ansible_collections/{}/{}/".format(*name.split("."))
            wanted = [m for m in members if m.startswith(prefix)]
            if not wanted:
                print(f"{name} is not in {wheel}", file=sys.stderr)
                return 1
            shutil.rmtree(target / prefix, ignore_errors=True)
            for member in wanted:
                archive.extract(member, target)
            print(f"installed {name} ({len(wanted)} files) into {target / prefix}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
