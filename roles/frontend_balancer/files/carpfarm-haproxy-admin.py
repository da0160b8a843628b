"""Send one command to HAProxy's admin socket and print the answer.

    python3 carpfarm-haproxy-admin.py SOCKET COMMAND

Exits 1 when a "set" command gets an answer: HAProxy answers those only to refuse them.
Run on the CARP box by the frontend_balancer role (ansible.builtin.script).
"""

import socket
import sys


def ask(path: str, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(path)
        conn.sendall(command.encode() + b"\n")
        return b"".join(iter(lambda: conn.recv(4096), b"")).decode().strip()


def main() -> int:
    path, command = sys.argv[1], sys.argv[2]
    answer = ask(path, command)
    print(answer)
    return 1 if answer and command.startswith("set ") else 0


if __name__ == "__main__":
    sys.exit(main())
