#!/bin/bash
# kill -9 worker 1 of the SMP Squid named $1 (squid -n NAME) and wait until its master has started a
# new worker 1 and that worker accepts again (its "Accepting HTTP Socket connections" line in the
# instance's cache.log). Prints the kill's time, the time it was back (epoch seconds) and "OLD NEW" pids.
# Used by molecule (faults/kill-worker.yml) and make bench (bench/smp.py).
set -euo pipefail
name=${1:?usage: carpfarm-kill-worker.sh NAME}
log=/var/log/squid/$name/cache.log
kid() { pgrep -f "^\(squid-1\) .* -n $name " || true; }
accepting() { grep -c 'kid1| Accepting HTTP Socket connections' "$log" || true; }
old=$(kid)
seen=$(accepting)
[ -n "$old" ] || { echo "no worker 1 of $name is running" >&2; exit 1; }
date +%s.%N
kill -9 "$old"
for _ in $(seq 1200); do
    new=$(kid)
    if [ -n "$new" ] && [ "$new" != "$old" ] && [ "$(accepting)" -gt "$seen" ]; then
        date +%s.%N
        echo "$old $new"
        exit 0
    fi
    sleep 0.05
done
echo "worker 1 of $name did not accept again within 60 s" >&2
exit 1
