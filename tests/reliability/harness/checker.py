"""Jepsen-style checkers: what was committed against what a reader delivered.

`check_delivery` compares keys as multisets (Jepsen's total-queue checker):

- committed: writers got an acknowledgement; each must be delivered, once per commit.
- indeterminate: the outcome is unknown (crash or broken connection mid-commit);
  delivering one at most once is fine and counts as *recovered*.
- failed: definitely not committed (rolled back); delivering one is *unexpected*.

``lost`` counts missing deliveries of committed keys, ``duplicated`` deliveries past
the allowed count, ``unexpected`` deliveries of keys never committed nor in doubt.
`outcomes_from_history` derives the three sets from a history log, `inversions` and
`stream_inversions` count order violations, and `canonical_hash` fingerprints a read
model so a live one can be compared with a rebuild.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from .history import HistoryRecord, Key

K = TypeVar("K", bound=Hashable)
S = TypeVar("S", bound=Hashable)

SAMPLE_SIZE = 5
"""How many example keys a `CheckResult` keeps for each kind of anomaly."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Counts of anomalies, with a few example keys of each; ``ok`` when all are zero.

    ``recovered`` (indeterminate keys that were delivered) and ``unexpected_failed``
    (the part of ``unexpected`` whose keys were attempted and failed) are
    information, not anomalies of their own.
    """

    committed: int
    delivered: int
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    unexpected_failed: int = 0
    recovered: int = 0
    inversions: int = 0
    lost_sample: tuple[Hashable, ...] = ()
    duplicated_sample: tuple[Hashable, ...] = ()
    unexpected_sample: tuple[Hashable, ...] = ()

    @property
    def ok(self) -> bool:
        """Tell whether nothing was lost, duplicated, unexpected or out of order."""
        return self.lost == self.duplicated == self.unexpected == self.inversions == 0

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        failed_part = (
            f" ({self.unexpected_failed} were failed writes)" if self.unexpected_failed else ""
        )
        parts = [
            f"{verdict}: committed {self.committed}, delivered {self.delivered}",
            f"lost {self.lost}{_sample(self.lost_sample)}",
            f"duplicated {self.duplicated}{_sample(self.duplicated_sample)}",
            f"unexpected {self.unexpected}{_sample(self.unexpected_sample)}{failed_part}",
            f"recovered {self.recovered}",
            f"inversions {self.inversions}",
        ]
        return "; ".join(parts)


def _sample(keys: tuple[Hashable, ...]) -> str:
    return f" e.g. {list(keys)!r}" if keys else ""


@dataclass(frozen=True, slots=True)
class Outcomes:
    """What happened to each key, as `outcomes_from_history` reads it from a history."""

    committed: frozenset[Key]
    failed: frozenset[Key]
    indeterminate: frozenset[Key]


def check_delivery(
    *,
    committed: Iterable[K],
    delivered: Iterable[K],
    failed: Iterable[K] = (),
    indeterminate: Iterable[K] = (),
    expected_order: Sequence[K] | None = None,
) -> CheckResult:
    """Count lost, duplicated and unexpected deliveries (and inversions, given an order).

    ``committed`` is a multiset: a key committed twice must be delivered twice. An
    indeterminate key may be delivered once more than it was committed (at least
    once). With ``expected_order``, ``inversions`` counts the pairs of ``delivered``
    in the wrong relative order (see `inversions`).
    """
    delivered_order = list(delivered)
    expected, seen = Counter(committed), Counter(delivered_order)
    in_doubt, failed_keys = set(indeterminate), set(failed)
    lost: Counter[K] = Counter()
    duplicated: Counter[K] = Counter()
    unexpected: Counter[K] = Counter()
    recovered = 0
    for key in expected.keys() | seen.keys():
        allowed = max(expected[key], 1) if key in in_doubt else expected[key]
        lost[key] = max(0, expected[key] - seen[key])
        if allowed == 0:
            unexpected[key] = seen[key]
        else:
            duplicated[key] = max(0, seen[key] - allowed)
        if expected[key] == 0 and key in in_doubt and seen[key] > 0:
            recovered += 1
    order_violations = 0 if expected_order is None else inversions(delivered_order, expected_order)
    return CheckResult(
        committed=expected.total(),
        delivered=len(delivered_order),
        lost=lost.total(),
        duplicated=duplicated.total(),
        unexpected=unexpected.total(),
        unexpected_failed=sum(count for key, count in unexpected.items() if key in failed_keys),
        recovered=recovered,
        inversions=order_violations,
        lost_sample=_first_keys(lost),
        duplicated_sample=_first_keys(duplicated),
        unexpected_sample=_first_keys(unexpected),
    )


def _first_keys(counts: Counter[K]) -> tuple[Hashable, ...]:
    keys = [key for key, count in counts.items() if count > 0]
    keys.sort(key=repr)  # keys may mix types; repr keeps the sample stable
    return tuple(keys[:SAMPLE_SIZE])


def outcomes_from_history(records: Iterable[HistoryRecord], *, op: str) -> Outcomes:
    """Classify each key of operation ``op`` as committed, failed or indeterminate.

    A key with an ``ok`` record is committed, however many attempts failed before.
    Otherwise it is indeterminate when some attempt has an ``info`` record or more
    ``invoke`` records than completions (the process died waiting), else failed
    when it has a ``fail`` record.
    """
    phases: defaultdict[Key, Counter[str]] = defaultdict(Counter)
    for record in records:
        if record.op == op:
            phases[record.key][record.phase] += 1
    committed, failed, indeterminate = set(), set(), set()
    for key, counts in phases.items():
        completions = counts["ok"] + counts["fail"]
        if counts["ok"]:
            committed.add(key)
        elif counts["info"] or counts["invoke"] > completions:
            indeterminate.add(key)
        elif counts["fail"]:
            failed.add(key)
    return Outcomes(frozenset(committed), frozenset(failed), frozenset(indeterminate))


def inversions(order: Sequence[K], expected_order: Sequence[K]) -> int:
    """Count the pairs of ``order`` whose relative order differs from ``expected_order``.

    A pair (i < j) is inverted when ``order[j]`` comes before ``order[i]`` in
    ``expected_order``. Items absent from ``expected_order`` are ignored (they are
    unexpected, counted elsewhere); a repeated item keeps its first expected rank,
    so a late redelivery counts against everything delivered in between. Runs in
    O(n log n) with a Fenwick tree.
    """
    rank: dict[K, int] = {}
    for item in expected_order:
        rank.setdefault(item, len(rank) + 1)
    tree = [0] * (len(rank) + 1)
    inverted = seen = 0
    for item in order:
        position = rank.get(item)
        if position is None:
            continue
        not_after, index = 0, position
        while index > 0:  # prefix sum: how many seen items rank at or before this one
            not_after += tree[index]
            index -= index & -index
        inverted += seen - not_after
        seen += 1
        index = position
        while index < len(tree):
            tree[index] += 1
            index += index & -index
    return inverted


def stream_inversions(records: Iterable[tuple[S, int]]) -> dict[S, int]:
    """Count, per stream, deliveries whose version is lower than the one just before.

    ``records`` are ``(stream, version)`` pairs in delivery order. Only streams
    with at least one inversion appear; an equal version is a duplicate, not an
    inversion. ``sum(result.values())`` is the total.
    """
    last_version: dict[S, int] = {}
    counts: Counter[S] = Counter()
    for stream, version in records:
        previous = last_version.get(stream)
        if previous is not None and version < previous:
            counts[stream] += 1
        last_version[stream] = version
    return dict(counts)


def canonical_hash(rows: Iterable[Mapping[str, object]]) -> str:
    """Return the sha256 hex digest of the rows, independent of row and key order.

    Each row is dumped as JSON with sorted keys; the dumps are sorted and hashed
    together. UUIDs, datetimes, dates and Decimals are written as their ``str``
    (so ``Decimal("1.0")`` and ``Decimal("1.00")`` differ, as they do in a
    database); bytes as hex. Other non-JSON values raise `TypeError`.
    """
    dumps = sorted(
        json.dumps(dict(row), sort_keys=True, separators=(",", ":"), default=_plain) for row in rows
    )
    digest = hashlib.sha256()
    for dump in dumps:
        digest.update(dump.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _plain(value: object) -> object:
    if isinstance(value, uuid.UUID | dt.datetime | dt.date | dt.time | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    msg = f"canonical_hash cannot encode {type(value).__name__} value {value!r}"
    raise TypeError(msg)
