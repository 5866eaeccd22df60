"""``UpcasterRegistry``: chains of upcasters, applied to events as they are read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cqrs_ddd_advanced_core.domain.exceptions import UpcasterRegistrationError, UpcastingError
from cqrs_ddd_advanced_core.upcasting.upcaster import EventUpcaster


class UpcasterRegistry:
    """Holds the upcasters of each event type as one contiguous chain of versions.

    :meth:`register` refuses a second upcaster for the same type and source
    version, and one that would leave a gap in the type's chain (an upcaster
    from version 3 beside one from version 1 needs the one from version 2 in
    between); register a chain in any order that keeps it contiguous, or all at
    once through the constructor. Reading applies the chain from the stored
    version to its end; an upcaster that raises, or returns anything but a
    mapping (``None`` from one that set keys in place and forgot to return), is
    an :class:`UpcastingError` naming the upcaster, the event type, stream and
    versions. A mapping that is not a ``dict`` is copied into one.
    """

    def __init__(self, upcasters: Iterable[EventUpcaster] = ()) -> None:
        self._chains: dict[str, dict[int, EventUpcaster]] = {}
        # in the order given: each is checked as it joins (never sorted first, as a
        # source_version that is not an int would fail the sort with a TypeError),
        # and the gaps once all have joined
        for upcaster in upcasters:
            self._add(upcaster, check_gaps=False)
        for event_type, chain in self._chains.items():
            self._check_contiguous(event_type, chain)

    def register(self, upcaster: EventUpcaster) -> None:
        """Add ``upcaster`` to its event type's chain (see the class docstring for errors)."""
        self._add(upcaster, check_gaps=True)

    def upcast(
        self,
        event_type: str,
        schema_version: int,
        payload: dict[str, Any],
        *,
        stream_id: str | None = None,
        version: int | None = None,
    ) -> tuple[dict[str, Any], int]:
        """Return ``payload`` upcast along the chain, and the schema version reached."""
        chain = self._chains.get(event_type)
        if not chain:
            return payload, schema_version
        current = schema_version
        # a shallow copy shields the stored payload from an upcaster that sets keys in place
        payload = dict(payload) if current in chain else payload
        while current in chain:
            upcaster = chain[current]
            try:
                result: object = upcaster.upcast(payload)
            except Exception as error:
                raise UpcastingError(
                    event_type,
                    schema_version=current,
                    stream_id=stream_id,
                    version=version,
                    upcaster=type(upcaster).__name__,
                    reason=f"{type(error).__name__}: {error}",
                ) from error
            if not isinstance(result, Mapping):
                # readers take a None payload for "the row's own": never let one through
                raise UpcastingError(
                    event_type,
                    schema_version=current,
                    stream_id=stream_id,
                    version=version,
                    upcaster=type(upcaster).__name__,
                    reason=f"upcast() returned {type(result).__name__}, not a mapping",
                )
            payload = result if type(result) is dict else dict(result)
            current += 1
        return payload, current

    def _add(self, upcaster: EventUpcaster, *, check_gaps: bool) -> None:
        event_type = getattr(upcaster, "event_type", None)
        source = getattr(upcaster, "source_version", None)
        if not isinstance(event_type, str) or not event_type:
            raise UpcasterRegistrationError(
                repr(event_type), -1, f"{type(upcaster).__name__} must set event_type"
            )
        if not isinstance(source, int) or isinstance(source, bool) or source < 1:
            raise UpcasterRegistrationError(
                event_type, -1, f"{type(upcaster).__name__}.source_version must be an int >= 1"
            )
        chain = self._chains.get(event_type, {})
        if source in chain:
            raise UpcasterRegistrationError(
                event_type, source, f"{type(chain[source]).__name__} already upcasts it"
            )
        extended = {**chain, source: upcaster}
        if check_gaps:
            self._check_contiguous(event_type, extended, refused=source)
        self._chains[event_type] = extended

    @staticmethod
    def _check_contiguous(
        event_type: str, chain: dict[int, EventUpcaster], refused: int | None = None
    ) -> None:
        versions = sorted(chain)
        missing = sorted(set(range(versions[0], versions[-1] + 1)) - set(versions))
        if missing:
            raise UpcasterRegistrationError(
                event_type,
                refused if refused is not None else missing[0],
                f"the chain {versions} has a gap: no upcaster from version "
                f"{', '.join(map(str, missing))}",
            )
