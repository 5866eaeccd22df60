"""Reading the durability settings each side actually runs with, from its own connections."""

from __future__ import annotations

from sqlalchemy import text

from benchmarks.ours import OurBank
from benchmarks.theirs import TheirBank


async def durability(backend: str, ours: OurBank, theirs: TheirBank) -> dict[str, str]:
    """Return the settings that decide what a commit waits for, per side."""
    if backend == "sqlite":
        pragmas = ("journal_mode", "synchronous")
        async with ours.engine.connect() as connection:
            our_values = [
                str((await connection.execute(text(f"PRAGMA {name}"))).scalar()) for name in pragmas
            ]
        with theirs.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
            their_values = []
            for name in pragmas:
                cursor.execute(f"PRAGMA {name}")
                their_values.append(str(cursor.fetchone()[0]))
        return {
            f"sqlite {name} (ours / theirs)": f"{mine} / {its}  (synchronous: 1=NORMAL, 2=FULL)"
            if name == "synchronous"
            else f"{mine} / {its}"
            for name, mine, its in zip(pragmas, our_values, their_values, strict=True)
        }
    settings = ("synchronous_commit", "fsync", "wal_sync_method")
    async with ours.engine.connect() as connection:
        values = [
            str((await connection.execute(text(f"SHOW {name}"))).scalar()) for name in settings
        ]
    return {
        f"postgres {name} (server default, both)": value
        for name, value in zip(settings, values, strict=True)
    }
