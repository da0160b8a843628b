"""Squid's CARP choice for many URLs at once (``select_batch``), on vectors of URLs and, for big
batches, on the controller's other CPU cores (``carpfarm.carp.cores``).

``CarpArray.select`` walks one URL through every peer: per peer, the URL key is hashed on
top of the previous peer's state. For thousands of URLs and hundreds of peers that is
hundreds of millions of byte steps, too slow one at a time in Python. ``select_batch``
computes the same numbers for many URLs at once: each URL is a lane of one Python integer
(a "SIMD within a register" vector), so one integer operation advances every lane. Per
lane, the low 32 bits hold the hash state and the bits above are scratch room that keeps
carries from reaching the next lane.

The key bytes are walked in 40-bit lanes (the cost of an integer operation grows with its
bits, and the walk is nearly all of the work):

* ``rotl(h, 19)`` is ``((h & 0x1FFF) << 19) | ((h >> 13) & 0x7FFFF)``: masking before the
  left shift keeps it inside the lane, masking after the right shift drops what comes down
  from the next lane;
* ``h + rotl(h, 19) + c`` adds less than 2**33 per byte; the bits above 32 never reach the
  low 32 (carries only go up) and the rotation reads bits 0-31 only, so the lanes are masked
  back to 32 bits only every ``_UNMASKED`` bytes, before they could spill.

After each peer's walk the state is widened to 64-bit lanes (a copy of bytes), where
``mix`` is ``(x * 0x62531966) & MASK`` (below 2**63) then ``rotl(., 21)`` as
``((x << 21) | (x >> 11)) & MASK`` (the high half of every lane is zero, so neither shift
brings in a neighbour's bits below bit 32), and the scores are compared.

The state after peer k does not depend on which peers came before, only on k and the key,
so one walk serves every array (old farm, new farm, new farm with peers down) in a batch.
"""

from __future__ import annotations

import math
from array import array as array_module
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from carpfarm.carp.cores import fork_map, usable_cores
from carpfarm.carp.select import HASH_MULTIPLIER, MASK, CarpArray, CarpPeer, char_values
from carpfarm.carp.url import url_key

_NARROW = 5  # bytes per lane of the walk: 32 bits of state, 8 of carry room
_UNMASKED = 64  # bytes walked between masks: a lane stays below 2**32 + 64 * 2**33 < 2**40
_MIX = 1 + HASH_MULTIPLIER
_CHUNK = 512  # URLs per vector: big enough to amortise, small enough to report progress
# Byte steps (lanes x key length x peers) from which forking workers pays: about 0.1 s of work.
PARALLEL_WORK = 10_000_000
Job = tuple[CarpArray, Iterable[str]]
_MIXED = ("mixed",)  # the carp-key "spec" of an array whose peers do not share one
_Plan = tuple[tuple[str, ...] | None, bool]  # (carp-key spec, signed char): one walk of the keys serves a plan


def select_batch(
    jobs: Sequence[Job],
    urls: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
    parallel_from: int = PARALLEL_WORK,
) -> list[list[CarpPeer | None]]:
    """``[[array.select(url, down) for url in urls] for array, down in jobs]``, computed fast.

    Arrays whose peers share one carp-key (as every carpfarm farm does) are computed on
    vectors of URLs; an array mixing carp-keys falls back to ``select``. ``progress`` is
    called with (URLs done, URLs in all) after every few hundred URLs. When the vectors add
    up to ``parallel_from`` byte steps or more, they are shared among the CPU cores.
    """
    results: list[list[CarpPeer | None]] = [[None] * len(urls) for _ in jobs]
    plans = _plans(jobs)
    total, done = len(urls) * len(plans), 0
    vectors: list[_Vector] = []
    for (spec, signed), members in plans.items():
        if spec == _MIXED:
            for n in members:
                results[n] = _select_each(jobs[n], urls)
            done += len(urls)
            if progress:
                progress(done, total)
            continue
        vectors += _vectors(members, [char_values(url_key(u, spec), signed) for u in urls])
    workers = usable_cores() if _work(jobs, vectors) >= parallel_from else 1
    vectors.sort(key=lambda v: -len(v.lanes))  # the biggest first: the cores finish together

    def run(index: int) -> list[list[int]]:
        return _select_lanes([jobs[n] for n in vectors[index].members], vectors[index].keys)

    for index, winners in fork_map(run, len(vectors), workers):
        _record(results, jobs, vectors[index], winners)
        done += len(vectors[index].lanes)
        if progress:
            progress(done, total)
    return results


def _plans(jobs: Sequence[Job]) -> dict[_Plan, list[int]]:
    """The jobs' indices grouped by what their URL keys are walked with."""
    plans: dict[_Plan, list[int]] = {}
    for n, (array, _) in enumerate(jobs):
        plans.setdefault((_key_spec(array), array.signed_char), []).append(n)
    return plans


def _key_spec(array: CarpArray) -> tuple[str, ...] | None:
    """The carp-key all of the array's peers share (None: the whole URL), or ``_MIXED``."""
    specs = {r.peer.carp_key or None for r in array.ranked}
    if len(specs) > 1:
        return _MIXED
    return specs.pop() if specs else None


def _select_each(job: Job, urls: Sequence[str]) -> list[CarpPeer | None]:
    """One URL at a time, with ``select`` (for an array mixing carp-keys)."""
    array, down = job
    excluded = set(down)
    return [array.select(u, excluded) for u in urls]


def _work(jobs: Sequence[Job], vectors: Sequence[_Vector]) -> int:
    """Byte steps the vectors take in all: lanes x key length x the longest walk through peers."""
    walk = max((len(jobs[n][0].ranked) for v in vectors for n in v.members), default=0)
    return sum(len(v.lanes) * len(v.keys[0]) for v in vectors) * walk


def _record(
    results: list[list[CarpPeer | None]], jobs: Sequence[Job], vector: _Vector, winners: Sequence[Sequence[int]]
) -> None:
    """Write a vector's winners (a rank per lane, -1 for none) into its jobs' results, as peers."""
    for n, column in zip(vector.members, winners, strict=True):
        ranked, chosen = jobs[n][0].ranked, results[n]
        for i, k in zip(vector.lanes, column, strict=True):
            chosen[i] = None if k < 0 else ranked[k].peer


@dataclass(frozen=True)
class _Vector:
    """URL keys of one length, one lane each, to walk through the arrays ``members``."""

    members: list[int]  # indices of jobs
    lanes: list[int]  # indices of URLs
    keys: list[tuple[int, ...]]


def _vectors(members: list[int], keys: Sequence[tuple[int, ...]]) -> list[_Vector]:
    """The URL keys in vectors of at most ``_CHUNK`` lanes, one key length per vector."""
    by_length: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        by_length.setdefault(len(key), []).append(i)
    return [
        _Vector(members, lanes, [keys[i] for i in lanes])
        for length in sorted(by_length)
        for lanes in (by_length[length][start : start + _CHUNK] for start in range(0, len(by_length[length]), _CHUNK))
    ]


def _pack(values: Sequence[int]) -> int:
    """One 64-bit lane per value, the first value in the lowest lane."""
    return int.from_bytes(array_module("Q", values).tobytes(), "little")


def _unpack(vector: int, lanes: int) -> list[int]:
    return array_module("Q", vector.to_bytes(8 * lanes, "little")).tolist()


def _pack_narrow(values: Sequence[int]) -> int:
    """One ``_NARROW``-byte lane per value (below 2**32), the first value in the lowest lane."""
    return int.from_bytes(b"".join(v.to_bytes(_NARROW, "little") for v in values), "little")


def _widen(vector: int, lanes: int) -> int:
    """The same values (below 2**32) from ``_NARROW``-byte lanes into 64-bit lanes."""
    narrow = vector.to_bytes(_NARROW * lanes, "little")
    wide = bytearray(8 * lanes)
    for byte in range(4):
        wide[byte::8] = narrow[byte::_NARROW]
    return int.from_bytes(wide, "little")


def _select_lanes(jobs: Sequence[Job], keys: Sequence[Sequence[int]]) -> list[list[int]]:
    """The winners of every job for URL keys of one length, one lane per key: their index in
    the job's ``ranked`` peers, -1 for none."""
    lanes = len(keys)
    ones = _pack([1] * lanes)
    mask = ones * MASK
    narrow_ones = _pack_narrow([1] * lanes)
    narrow_mask, low13, low19 = narrow_ones * MASK, narrow_ones * 0x1FFF, narrow_ones * 0x7FFFF
    columns = [_pack_narrow([key[j] for key in keys]) for j in range(len(keys[0]))]
    blocks = [columns[start : start + _UNMASKED] for start in range(0, len(columns), _UNMASKED)]
    trackers = [_Tracker(array, set(down), lanes, ones) for array, down in jobs]
    peers = max(len(array.ranked) for array, _ in jobs)
    walked = 0
    mixed: dict[int, int] = {}
    for k in range(peers):
        for block in blocks:
            for c in block:
                walked = walked + (((walked & low13) << 19) | ((walked >> 13) & low19)) + c
            walked &= narrow_mask
        state = _widen(walked, lanes)
        mixed.clear()
        for tracker in trackers:
            if k >= len(tracker.ranked):
                continue
            peer_hash_k = tracker.ranked[k].hash
            combined = mixed.get(peer_hash_k)
            if combined is None:
                x = ((state ^ (ones * peer_hash_k)) * _MIX) & mask
                combined = mixed[peer_hash_k] = ((x << 21) | (x >> 11)) & mask
            tracker.offer(k, combined)
    return [t.winners() for t in trackers]


class _Tracker:
    """The running best score per lane of one array, as ``select``'s ``high``/``best``."""

    def __init__(self, array: CarpArray, excluded: set[str], lanes: int, ones: int) -> None:
        self.ranked = array.ranked
        self.excluded = excluded
        self.lanes, self.ones = lanes, ones
        multipliers = {r.multiplier for r in array.ranked}
        m = next(iter(multipliers)) if len(multipliers) == 1 else math.nan
        # One common, ordinary multiplier keeps the order of the combined hashes (a product
        # with m rounds monotonically and cannot merge two integers below 2**32), so the best
        # score is the largest combined hash, compared in the vector. Otherwise, in floats.
        self.integers = 1e-200 < m < 1e200
        self.best, self.index = 0, ones * MASK  # index MASK: nobody yet
        self.high = [0.0] * lanes
        self.chosen = [-1] * lanes

    def offer(self, k: int, combined: int) -> None:
        if self.ranked[k].peer.name in self.excluded:
            return
        if self.integers:
            # Bit 32 of (combined + 2**32 - 1 - best) is set where combined > best.
            wins = (((combined + self.ones * MASK - self.best) >> 32) & self.ones) * MASK
            self.best ^= (self.best ^ combined) & wins
            self.index ^= (self.index ^ (self.ones * k)) & wins
            return
        m = self.ranked[k].multiplier
        high, chosen = self.high, self.chosen
        for i, h in enumerate(_unpack(combined, self.lanes)):
            score = h * m
            if score > high[i]:
                high[i], chosen[i] = score, k
        # A multiplier of inf or nan compares like Squid's doubles: nan never wins.

    def winners(self) -> list[int]:
        chosen = _unpack(self.index, self.lanes) if self.integers else self.chosen
        return [-1 if k == MASK else k for k in chosen]
