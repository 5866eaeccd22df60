"""Tests of the reliability harness itself: if these fail, no scenario can be trusted."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from harness.checker import (
    CheckResult,
    canonical_hash,
    check_delivery,
    inversions,
    outcomes_from_history,
    stream_inversions,
)
from harness.history import HistoryFormatError, HistoryLog, HistoryRecord, read_history
from harness.pg_faults import (
    PgFaultError,
    connect,
    hold_read_only_transaction,
    hold_xid,
    idle_in_transaction,
    snapshot_xmin,
    terminate_backends,
)
from harness.proxy import FaultProxy
from harness.workers import WorkerProcess, WorkerTimeoutError, run_python
from hypothesis import given
from hypothesis import strategies as st

from cqrs_ddd_core.failpoints import FAILPOINTS_VARIABLE
from cqrs_ddd_testing import PostgresDatabase

LIVENESS_SECONDS = 30.0
"""Generous deadline for anything that must eventually happen."""

QUIET_SECONDS = 0.3
"""How long a test watches for something that must not happen (a blackhole's output)."""


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]], what: str, within: float = LIVENESS_SECONDS
) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        outcome = predicate()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {within:g} s")
        await asyncio.sleep(0.02)


# ================================================================== checker


def test_a_delivery_equal_to_the_commits_is_ok() -> None:
    result = check_delivery(committed=["a", "b", "c"], delivered=["c", "a", "b"])
    assert result.ok, str(result)
    assert (result.committed, result.delivered) == (3, 3)


def test_a_committed_key_never_delivered_is_lost() -> None:
    result = check_delivery(committed=["a", "b", "c"], delivered=["a"])
    assert (result.lost, result.duplicated, result.unexpected) == (2, 0, 0)
    assert result.lost_sample == ("b", "c")
    assert not result.ok


def test_a_key_delivered_twice_is_duplicated() -> None:
    result = check_delivery(committed=[1, 2], delivered=[1, 2, 2, 2])
    assert (result.lost, result.duplicated, result.unexpected) == (0, 2, 0)
    assert result.duplicated_sample == (2,)


def test_a_rolled_back_key_that_is_delivered_is_unexpected() -> None:
    result = check_delivery(committed=["a"], failed=["rolled-back"], delivered=["a", "rolled-back"])
    assert (result.lost, result.duplicated, result.unexpected) == (0, 0, 1)
    assert result.unexpected_failed == 1
    assert result.unexpected_sample == ("rolled-back",)


def test_a_key_never_attempted_that_is_delivered_is_unexpected() -> None:
    result = check_delivery(committed=["a"], delivered=["a", "phantom"])
    assert (result.unexpected, result.unexpected_failed) == (1, 0)


def test_an_indeterminate_key_may_be_delivered_once_and_counts_as_recovered() -> None:
    result = check_delivery(
        committed=["a"], indeterminate=["maybe", "never"], delivered=["a", "maybe"]
    )
    assert result.ok, str(result)
    assert result.recovered == 1


def test_an_indeterminate_key_delivered_twice_is_duplicated() -> None:
    result = check_delivery(committed=[], indeterminate=["maybe"], delivered=["maybe", "maybe"])
    assert (result.duplicated, result.recovered) == (1, 1)


def test_a_retried_key_that_committed_is_expected_exactly_once() -> None:
    result = check_delivery(committed=["a"], indeterminate=["a"], delivered=["a", "a"])
    assert (result.duplicated, result.recovered) == (1, 0)


def test_a_key_committed_twice_must_be_delivered_twice() -> None:
    result = check_delivery(committed=["a", "a"], delivered=["a"])
    assert (result.lost, result.duplicated) == (1, 0)


def test_a_check_result_reads_well_in_an_assertion_message() -> None:
    result = check_delivery(committed=["a", "b"], failed=["x"], delivered=["b", "b", "x"])
    text = str(result)
    assert text.startswith("FAILED: committed 2, delivered 3")
    assert "lost 1 e.g. ['a']" in text
    assert "duplicated 1 e.g. ['b']" in text
    assert "unexpected 1 e.g. ['x'] (1 were failed writes)" in text


def test_samples_are_capped() -> None:
    result = check_delivery(committed=range(100), delivered=[])
    assert result.lost == 100
    assert len(result.lost_sample) == 5


def test_inversions_count_pairs_out_of_the_expected_order() -> None:
    expected = [1, 2, 3, 4]
    assert inversions([1, 2, 3, 4], expected) == 0
    assert inversions([2, 1, 3, 4], expected) == 1
    assert inversions([4, 3, 2, 1], expected) == 6
    assert inversions([1, 3, 2, 4], expected) == 1


def test_inversions_ignore_items_that_were_not_expected() -> None:
    assert inversions([1, "stray", 2, 3], [1, 2, 3]) == 0


def test_a_late_redelivery_counts_against_everything_in_between() -> None:
    assert inversions([1, 2, 3, 1], [1, 2, 3]) == 2


@given(st.permutations(list(range(40))))
def test_inversions_agree_with_counting_every_pair(order: list[int]) -> None:
    brute_force = sum(
        1 for i in range(len(order)) for j in range(i + 1, len(order)) if order[i] > order[j]
    )
    assert inversions(order, sorted(order)) == brute_force


def test_a_check_counts_inversions_against_an_expected_order() -> None:
    result = check_delivery(committed=[1, 2, 3], delivered=[1, 3, 2], expected_order=[1, 2, 3])
    assert result.inversions == 1
    assert not result.ok


def test_stream_inversions_count_version_regressions_per_stream() -> None:
    delivered = [("a", 1), ("b", 1), ("a", 2), ("a", 1), ("b", 2), ("b", 2), ("b", 1), ("c", 1)]
    assert stream_inversions(delivered) == {"a": 1, "b": 1}


def test_in_order_streams_have_no_inversions() -> None:
    assert stream_inversions([("a", 1), ("b", 1), ("a", 2), ("b", 2)]) == {}


def test_canonical_hash_ignores_row_and_key_order() -> None:
    rows = [{"id": 1, "total": 10}, {"id": 2, "total": 20}]
    shuffled = [{"total": 20, "id": 2}, {"total": 10, "id": 1}]
    assert canonical_hash(rows) == canonical_hash(shuffled)


def test_canonical_hash_changes_when_a_value_changes() -> None:
    assert canonical_hash([{"id": 1, "total": 10}]) != canonical_hash([{"id": 1, "total": 11}])


def test_canonical_hash_tells_a_missing_row_from_a_duplicated_one() -> None:
    one, two = {"id": 1}, {"id": 2}
    assert canonical_hash([one, two]) != canonical_hash([one, one])


def test_canonical_hash_encodes_database_values() -> None:
    row = {
        "id": uuid.UUID(int=1),
        "at": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "amount": Decimal("12.50"),
        "blob": b"\x00\xff",
    }
    assert canonical_hash([row]) == canonical_hash([dict(reversed(row.items()))])


def test_canonical_hash_refuses_values_it_cannot_encode_stably() -> None:
    with pytest.raises(TypeError, match="object"):
        canonical_hash([{"thing": object()}])


def history_records(*steps: tuple[str, str | int, str]) -> list[HistoryRecord]:
    return [
        HistoryRecord(proc="w", op=op, key=key, phase=phase, t=float(number))
        for number, (op, key, phase) in enumerate(steps)
    ]


def test_outcomes_from_history_classify_each_key() -> None:
    records = history_records(
        ("append", "ok-key", "invoke"),
        ("append", "ok-key", "ok"),
        ("append", "failed-key", "invoke"),
        ("append", "failed-key", "fail"),
        ("append", "crashed-key", "invoke"),
        ("append", "ambiguous-key", "invoke"),
        ("append", "ambiguous-key", "info"),
        ("append", "retried-key", "invoke"),
        ("append", "retried-key", "fail"),
        ("append", "retried-key", "invoke"),
        ("append", "retried-key", "ok"),
        ("append", "failed-then-crashed", "invoke"),
        ("append", "failed-then-crashed", "fail"),
        ("append", "failed-then-crashed", "invoke"),
        ("deliver", "ok-key", "ok"),
    )
    outcomes = outcomes_from_history(records, op="append")
    assert outcomes.committed == {"ok-key", "retried-key"}
    assert outcomes.failed == {"failed-key"}
    assert outcomes.indeterminate == {"crashed-key", "ambiguous-key", "failed-then-crashed"}


# ================================================================== history log


HISTORY_WRITER = """
import sys
from harness.history import HistoryLog

path, proc, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with HistoryLog(path, proc=proc) as log:
    for number in range(count):
        log.record("append", number, "ok", payload=proc * 300)
"""


async def test_records_appended_by_three_processes_at_once_read_back_intact(
    tmp_path: Path,
) -> None:
    # given
    history = tmp_path / "history.jsonl"
    writers = [
        WorkerProcess.python(HISTORY_WRITER, str(history), proc, "200", log_dir=tmp_path, name=proc)
        for proc in ("w1", "w2", "w3")
    ]
    # when
    for writer in writers:
        writer.start()
    exit_codes = [await writer.wait(LIVENESS_SECONDS) for writer in writers]
    # then
    assert exit_codes == [0, 0, 0], [writer.stderr() for writer in writers]
    records = read_history(history)
    assert len(records) == 600
    for proc in ("w1", "w2", "w3"):
        own = [record for record in records if record.proc == proc]
        assert [record.key for record in own] == list(range(200))
        assert all(record.extra == {"payload": proc * 300} for record in own)


def test_a_torn_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryLog(path, proc="w") as log:
        log.record("append", "a", "invoke")
        log.record("append", "a", "ok")
    with path.open("a") as file:
        file.write('{"proc":"w","op":"append","ke')
    assert [record.phase for record in read_history(path)] == ["invoke", "ok"]


def test_a_corrupt_line_before_the_last_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryLog(path, proc="w") as log:
        log.record("append", "a", "invoke")
    with path.open("a") as file:
        file.write("not json\n")
    with HistoryLog(path, proc="w") as log:
        log.record("append", "a", "ok")
    with pytest.raises(HistoryFormatError, match=r"history.jsonl:2"):
        read_history(path)


def test_a_record_keeps_its_fields_and_extras(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryLog(path, proc="relay-1", clock=lambda: 12.5) as log:
        log.record("publish", 42, "info", error="connection reset", attempt=2)
    assert read_history(path) == [
        HistoryRecord(
            proc="relay-1",
            op="publish",
            key=42,
            phase="info",
            t=12.5,
            extra={"error": "connection reset", "attempt": 2},
        )
    ]
    assert json.loads(path.read_text())["proc"] == "relay-1"


def test_an_extra_field_may_not_shadow_a_record_field(tmp_path: Path) -> None:
    with HistoryLog(tmp_path / "h.jsonl", proc="w") as log, pytest.raises(ValueError, match="key"):
        log.record("append", 1, "ok", key=2)


KILLED_WRITER = """
import sys
from cqrs_ddd_core.failpoints import failpoint
from harness.history import HistoryLog

log = HistoryLog(sys.argv[1], proc="doomed")
for number in range(1000):
    log.record("append", number, "ok")
    failpoint("writer.after_record")
"""


async def test_a_sigkilled_writer_keeps_every_record_it_made(tmp_path: Path) -> None:
    # given
    history = tmp_path / "history.jsonl"
    # when
    result = await run_python(
        KILLED_WRITER,
        str(history),
        env={FAILPOINTS_VARIABLE: "writer.after_record:crash@50"},
        log_dir=tmp_path,
    )
    # then
    assert result.returncode == -9, result.stderr
    assert [record.key for record in read_history(history)] == list(range(50))


# ================================================================== workers


SLEEPER = """
import signal, sys, time
if sys.argv[1] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if sys.argv[1] == "exit-on-term":
    def leave(*_):
        print("bye", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, leave)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
async def sleepers(tmp_path: Path) -> AsyncIterator[Callable[[str], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def make(mode: str) -> WorkerProcess:
        worker = WorkerProcess.python(SLEEPER, mode, log_dir=tmp_path, name=f"sleeper-{mode}")
        started.append(worker)
        return worker

    yield make
    for worker in started:  # a test that failed midway must not leak a process
        if worker.is_running:
            await worker.kill()


async def test_kill_ends_a_worker_with_sigkill(sleepers: Callable[[str], WorkerProcess]) -> None:
    worker = sleepers("plain")
    worker.start()
    await worker.wait_for_output("ready")
    assert await worker.kill() == -9
    assert worker.returncode == -9
    assert not worker.is_running


async def test_stop_lets_a_worker_exit_on_sigterm(sleepers: Callable[[str], WorkerProcess]) -> None:
    worker = sleepers("exit-on-term")
    worker.start()
    await worker.wait_for_output("ready")
    assert await worker.stop(grace=LIVENESS_SECONDS) == 0
    assert "bye" in worker.stdout()


async def test_stop_kills_a_worker_that_ignores_sigterm(
    sleepers: Callable[[str], WorkerProcess],
) -> None:
    worker = sleepers("ignore-term")
    worker.start()
    await worker.wait_for_output("ready")
    assert await worker.stop(grace=0.2) == -9


async def test_wait_gives_up_at_its_deadline_and_leaves_the_worker_running(
    sleepers: Callable[[str], WorkerProcess],
) -> None:
    worker = sleepers("plain")
    worker.start()
    with pytest.raises(WorkerTimeoutError, match=r"did not exit within 0\.1 s"):
        await worker.wait(within=0.1)
    assert worker.is_running
    await worker.kill()


async def test_a_restarted_worker_keeps_the_output_of_its_killed_run(
    sleepers: Callable[[str], WorkerProcess],
) -> None:
    worker = sleepers("plain")
    worker.start()
    await worker.wait_for_output("ready")
    first_stdout = worker.stdout_path
    await worker.kill()
    worker.start()
    await worker.wait_for_output("ready")
    await worker.kill()
    assert worker.starts == 2
    assert worker.stdout_path != first_stdout
    assert first_stdout.read_text() == "ready\n"


async def test_run_python_returns_the_status_and_the_output(tmp_path: Path) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    result = await run_python(code, log_dir=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


async def test_run_python_runs_a_dotted_name_as_a_module(tmp_path: Path) -> None:
    result = await run_python("harness.checker", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr


async def test_a_worker_does_not_inherit_the_parents_failpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAILPOINTS_VARIABLE, "anything:crash")
    code = f"import os; print(os.environ.get({FAILPOINTS_VARIABLE!r}))"
    result = await run_python(code, log_dir=tmp_path)
    assert result.stdout == "None\n"


async def test_run_python_kills_a_process_that_overruns(tmp_path: Path) -> None:
    with pytest.raises(WorkerTimeoutError):
        await run_python("import time; time.sleep(60)", log_dir=tmp_path, within=0.2)


# ================================================================== fault proxy


class EchoServer:
    """Echoes every byte back and remembers what it received."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.get_running_loop().create_task(self._echo(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):  # ends with the connection
                self.received += data
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


class Clients:
    """Opens client connections to the proxy and closes them after the test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._writers: list[asyncio.StreamWriter] = []

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(LIVENESS_SECONDS):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._writers.append(writer)
        return reader, writer

    def close(self) -> None:
        for writer in self._writers:
            writer.close()


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", echo.port) as fault_proxy:
        yield fault_proxy


@pytest.fixture
async def clients(proxy: FaultProxy) -> AsyncIterator[Clients]:
    opened = Clients(proxy.port)
    yield opened
    opened.close()
    await asyncio.sleep(0)  # let the transports finish closing


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    await writer.drain()
    async with asyncio.timeout(LIVENESS_SECONDS):
        return await reader.readexactly(len(data))


async def how_it_ends(reader: asyncio.StreamReader) -> str:
    """Read until the connection ends; say whether by reset or end of file."""
    async with asyncio.timeout(LIVENESS_SECONDS):
        try:
            for _ in range(10_000):  # bounded: the peer sends little before closing
                if not await reader.read(65536):
                    return "eof"
        except ConnectionResetError:
            return "reset"
    return "still open"


async def test_the_proxy_forwards_bytes_both_ways_in_pass_mode(
    clients: Clients, echo: EchoServer
) -> None:
    reader, writer = await clients.connect()
    assert await exchange(reader, writer, b"hello") == b"hello"
    assert await exchange(reader, writer, b"again") == b"again"
    assert echo.received == b"helloagain"


async def test_a_delay_still_forwards_every_byte_in_order(
    proxy: FaultProxy, clients: Clients
) -> None:
    proxy.delay(20)
    reader, writer = await clients.connect()
    for number in range(5):
        message = f"message {number};".encode()
        assert await exchange(reader, writer, message) == message


async def test_a_blackhole_forwards_nothing_from_a_new_connection(
    proxy: FaultProxy, clients: Clients, echo: EchoServer
) -> None:
    # given
    proxy.blackhole()
    reader, writer = await clients.connect()
    # when
    writer.write(b"ping")
    await writer.drain()
    # then
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(100), QUIET_SECONDS)
    assert (echo.connections, bytes(echo.received)) == (0, b"")


async def test_a_blackhole_holds_the_bytes_of_a_live_connection_until_it_heals(
    proxy: FaultProxy, clients: Clients, echo: EchoServer
) -> None:
    # given
    reader, writer = await clients.connect()
    assert await exchange(reader, writer, b"before") == b"before"
    # when
    proxy.blackhole()
    writer.write(b"during")
    await writer.drain()
    # then
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(100), QUIET_SECONDS)
    assert echo.received == b"before"
    # and when healed, the held bytes flow
    proxy.pass_through()
    async with asyncio.timeout(LIVENESS_SECONDS):
        assert await reader.readexactly(6) == b"during"


async def test_reset_now_resets_every_current_connection(
    proxy: FaultProxy, clients: Clients
) -> None:
    first_reader, first_writer = await clients.connect()
    second_reader, second_writer = await clients.connect()
    assert await exchange(first_reader, first_writer, b"one") == b"one"
    assert await exchange(second_reader, second_writer, b"two") == b"two"
    assert proxy.reset_now() == 2
    assert await how_it_ends(first_reader) == "reset"
    assert await how_it_ends(second_reader) == "reset"
    assert proxy.resets == 2


async def test_a_connection_opened_after_reset_now_passes(
    proxy: FaultProxy, clients: Clients
) -> None:
    proxy.reset_now()
    reader, writer = await clients.connect()
    assert await exchange(reader, writer, b"fine") == b"fine"


async def test_reset_after_n_bytes_forwards_exactly_n_bytes_then_resets(
    proxy: FaultProxy, clients: Clients, echo: EchoServer
) -> None:
    # given
    proxy.reset_after(15)
    reader, writer = await clients.connect()
    assert await exchange(reader, writer, b"0123456789") == b"0123456789"
    # when
    writer.write(b"abcdefghij")
    await writer.drain()
    # then
    assert await how_it_ends(reader) == "reset"
    await eventually(lambda: echo.received == b"0123456789abcde", "the server getting 15 bytes")
    assert proxy.resets == 1


async def test_reset_after_match_resets_right_after_forwarding_the_matching_chunk(
    proxy: FaultProxy, clients: Clients, echo: EchoServer
) -> None:
    # given
    proxy.reset_after_match(b"COMMIT", times=1)
    reader, writer = await clients.connect()
    assert await exchange(reader, writer, b"BEGIN;") == b"BEGIN;"
    # when
    writer.write(b"COMMIT;")
    await writer.drain()
    # then: the server got the COMMIT, the client only a reset
    assert await how_it_ends(reader) == "reset"
    await eventually(lambda: echo.received == b"BEGIN;COMMIT;", "the server getting the COMMIT")
    assert proxy.resets == 1


async def test_reset_after_match_passes_again_once_its_matches_are_used(
    proxy: FaultProxy, clients: Clients
) -> None:
    proxy.reset_after_match(b"COMMIT", times=1)
    first_reader, first_writer = await clients.connect()
    first_writer.write(b"COMMIT;")
    assert await how_it_ends(first_reader) == "reset"
    reader, writer = await clients.connect()
    assert await exchange(reader, writer, b"COMMIT;") == b"COMMIT;"
    assert proxy.resets == 1


async def test_a_match_split_across_two_chunks_is_still_spotted(
    proxy: FaultProxy, clients: Clients
) -> None:
    proxy.reset_after_match(b"COMMIT")
    reader, writer = await clients.connect()
    assert await exchange(reader, writer, b"COM") == b"COM"
    writer.write(b"MIT")
    await writer.drain()
    assert await how_it_ends(reader) == "reset"


async def test_a_client_bytes_hook_sees_every_chunk_and_can_ask_for_a_reset(
    proxy: FaultProxy, clients: Clients
) -> None:
    seen: list[bytes] = []

    def hook(chunk: bytes) -> bool:
        seen.append(chunk)
        return chunk == b"bye"

    proxy.on_client_bytes(hook)
    reader, writer = await clients.connect()
    assert await exchange(reader, writer, b"hello") == b"hello"
    writer.write(b"bye")
    await writer.drain()
    assert await how_it_ends(reader) == "reset"
    assert seen == [b"hello", b"bye"]


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_a_client_of_an_unreachable_target_sees_its_connection_end() -> None:
    async with FaultProxy("127.0.0.1", unused_port()) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            assert await how_it_ends(reader) in {"reset", "eof"}
        finally:
            writer.close()


async def test_stopping_the_proxy_ends_its_connections(echo: EchoServer) -> None:
    proxy = FaultProxy("127.0.0.1", echo.port)
    await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        assert await exchange(reader, writer, b"hi") == b"hi"
        await proxy.stop()
        assert await how_it_ends(reader) in {"reset", "eof"}
    finally:
        writer.close()


# ================================================================== PostgreSQL faults


@pytest.fixture
async def observer(postgres_database: PostgresDatabase) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(postgres_database.dsn, application_name="harness_test_observer")
    yield connection
    await connection.close()


async def committed_xid(connection: asyncpg.Connection) -> int:
    """Run and commit one transaction that takes an xid; return that xid."""
    xid: int = await connection.fetchval("SELECT pg_current_xact_id()::text::bigint")
    return xid


async def session_state(connection: asyncpg.Connection, pid: int) -> str | None:
    state: str | None = await connection.fetchval(
        "SELECT state FROM pg_stat_activity WHERE pid = $1", pid
    )
    return state


async def test_a_held_xid_pins_the_snapshot_xmin_until_it_ends(
    postgres_database: PostgresDatabase, observer: asyncpg.Connection
) -> None:
    # given
    async with hold_xid(postgres_database.dsn) as held:
        assert held.xid is not None
        # when other transactions commit after it
        later_xids = [await committed_xid(observer) for _ in range(3)]
        # then xmin cannot pass the held xid (other sessions may hold it lower still)
        assert min(later_xids) > held.xid
        assert await snapshot_xmin(observer) <= held.xid
        assert await session_state(observer, held.pid) == "idle in transaction"
    # and after it ends, xmin moves past it
    xid = held.xid

    async def xmin_passed() -> bool:
        return await snapshot_xmin(observer) > xid

    await eventually(xmin_passed, "xmin passing the released xid")


async def test_a_held_read_only_transaction_does_not_pin_the_snapshot_xmin(
    postgres_database: PostgresDatabase, observer: asyncpg.Connection
) -> None:
    async with hold_read_only_transaction(postgres_database.dsn) as held:
        assert held.xid is None
        assert await session_state(observer, held.pid) == "idle in transaction"
        later = await committed_xid(observer)

        # xmin passes a transaction that began and committed after the read-only one
        # began: it does not count. (Eventually, because another test's session in the
        # cluster may hold an older xid for a moment; a pinning holder never lets go.)
        async def xmin_passed() -> bool:
            return await snapshot_xmin(observer) > later

        await eventually(xmin_passed, "xmin passing a later committed xid")


async def test_idle_in_transaction_holds_a_row_lock_and_an_xid(
    postgres_database: PostgresDatabase, observer: asyncpg.Connection
) -> None:
    lock_row = "SELECT id FROM cqrs_ddd_harness_locks WHERE id = 1 FOR UPDATE NOWAIT"
    async with idle_in_transaction(postgres_database.dsn) as held:
        assert held.xid is not None
        assert await session_state(observer, held.pid) == "idle in transaction"
        assert await snapshot_xmin(observer) <= held.xid
        with pytest.raises(asyncpg.LockNotAvailableError):
            await observer.execute(lock_row)
    async with observer.transaction():
        await observer.execute(lock_row)  # released on exit


async def test_idle_in_transaction_refuses_a_statement_that_locks_nothing(
    postgres_database: PostgresDatabase, observer: asyncpg.Connection
) -> None:
    await observer.execute("CREATE TABLE empty_table (id integer)")
    with pytest.raises(PgFaultError, match="locked nothing"):
        async with idle_in_transaction(
            postgres_database.dsn, lock_sql="SELECT id FROM empty_table FOR UPDATE"
        ):
            pass


async def test_terminate_backends_kills_the_sessions_with_that_application_name(
    postgres_database: PostgresDatabase,
) -> None:
    # given
    dsn = postgres_database.dsn
    victim = await connect(dsn, application_name="harness_test_victim")
    bystander = await connect(dsn, application_name="harness_test_bystander")
    try:
        # when
        terminated = await terminate_backends(dsn, "harness_test_victim")
        # then
        assert terminated == 1
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await victim.fetchval("SELECT 1")
        assert await bystander.fetchval("SELECT 1") == 1
    finally:
        victim.terminate()
        await bystander.close()


async def test_terminate_backends_counts_nothing_when_no_session_has_the_name(
    postgres_database: PostgresDatabase,
) -> None:
    assert await terminate_backends(postgres_database.dsn, "harness_test_nobody") == 0


async def test_a_commit_reset_by_the_proxy_is_applied_yet_the_client_sees_an_error(
    postgres_database: PostgresDatabase, observer: asyncpg.Connection
) -> None:
    # given: a client talking to PostgreSQL through the proxy
    await observer.execute("CREATE TABLE ambiguous (id integer PRIMARY KEY)")
    server = urlsplit(postgres_database.dsn)
    async with FaultProxy(server.hostname or "127.0.0.1", server.port or 5432) as proxy:
        user_info = server.netloc.rpartition("@")[0]
        through_proxy = server._replace(netloc=f"{user_info}@127.0.0.1:{proxy.port}")
        proxied = await connect(urlunsplit(through_proxy), application_name="harness_test_proxied")
        try:
            proxy.reset_after_match(b"COMMIT")
            transaction = proxied.transaction()
            await transaction.start()
            await proxied.execute("INSERT INTO ambiguous (id) VALUES (1)")
            # when
            with pytest.raises((asyncpg.InterfaceError, asyncpg.PostgresError, OSError)):
                await transaction.commit()
        finally:
            proxied.terminate()
    # then: the commit happened all the same
    assert proxy.resets == 1

    async def row_committed() -> bool:
        count: int = await observer.fetchval("SELECT count(*) FROM ambiguous")
        return count == 1

    await eventually(row_committed, "the reset COMMIT being applied")


def test_check_result_is_frozen() -> None:
    result = CheckResult(committed=0, delivered=0)
    with pytest.raises(AttributeError):
        result.lost = 1  # type: ignore[misc]
