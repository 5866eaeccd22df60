"""(l) The example shop under load: over HTTP (uvicorn) and the same commands bare, on PostgreSQL.

``python -m benchmarks.shop [--quick] [--profile]`` (or ``python -m benchmarks
--only shop [--quick]``).

The system under test is the example shop (``examples/shop``), on a fresh
PostgreSQL database per side:

* **HTTP**: ``python -m shop --no-scenario --port P`` runs as a real
  subprocess (uvicorn, the FastAPI app of ``shop.api``; ``DATABASE_URL`` set,
  no broker). The load generator, in this process, seeds one customer per
  client and five products with a billion units each, then runs N clients
  (one ``httpx.AsyncClient`` each, keep-alive, loopback), each looping "place
  an order of 1-3 lines (``POST /orders``), then check it out
  (``POST /orders/{id}/checkout``, ``card-ok``)". The checkout's answer
  should say ``confirmed``: the order-fulfilment saga (reserve the stock,
  charge, confirm) runs inside the request.
* **bare**: the same shop built in this process (``create_engine``,
  ``build_shop(engine, ShopOptions())``, ``shop.start()``), the same clients
  sending the same commands (``PlaceOrder``, ``CheckOut``) straight to
  ``shop.mediator.send``: what the service costs without HTTP.

Each client first runs a few warm-up orders (not counted); then a fixed number
of orders, bounded in wall time too (no new order starts after the cap). Both
sides make the same seeded choices of products and quantities.

Figures per side: requests/s (commands/s for bare) and orders/s (an order is a
place and its checkout); latency p50/p95/p99 of each kind of request; answers
that were not 2xx (bare: commands that raised); checkouts whose answer was not
``confirmed`` (HTTP only: ``CheckOut`` returns nothing); every counted order's
final status, read again after the run (``confirmed``, ``cancelled`` when the
saga compensated, or another), with the saga's reason for each order that did
not end ``confirmed``; the CPU the shop's process, the load
generator and PostgreSQL used during the counted window (Linux ``/proc``); the
database's transactions per order and the connections opened to it
(``pg_stat_database``; the shop's background workers included); on the bare
side, the SQL statements, commits and rollbacks per order by who ran them (the
clients' commands or a background worker, by asyncio task); and what the shop
logged. Nothing is asserted: this is reporting only. ``--profile`` runs only
the bare side, under cProfile, and prints the top costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import os
import pstats
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event

from benchmarks.databases import PostgresTarget, fresh_postgres
from benchmarks.report import load_average

PRODUCTS = (
    ("tea", "Green tea", Decimal("4.50")),
    ("mug", "Mug", Decimal("12.00")),
    ("pot", "Tea pot", Decimal("29.90")),
    ("cup", "Cup", Decimal("6.00")),
    ("tin", "Tea tin", Decimal("8.25")),
)
STOCK = 1_000_000_000
KINDS = ("place", "checkout")
SETTLE = 3.0
"""Seconds between the counted window's end and reading the orders' final statuses.

More than the saga feed's grace (2 s): a saga the feed finishes counts.
"""
OUTCOMES = 30
"""At most this many orders that did not end ``confirmed`` are described."""


@dataclass(frozen=True)
class Load:
    """How much work each side does."""

    clients: int
    iterations: int
    """Orders (place + checkout) per client, counted."""
    warm_up: int
    """Orders per client before the counted ones."""
    cap: float
    """Seconds after which no client starts another counted order."""


FULL = Load(clients=8, iterations=75, warm_up=3, cap=60.0)
QUICK = Load(clients=4, iterations=25, warm_up=1, cap=20.0)


def order_lines(chooser: random.Random) -> list[tuple[str, int]]:
    """Return 1-3 lines of distinct SKUs, 1-3 units each."""
    skus = chooser.sample([sku for sku, _, _ in PRODUCTS], chooser.randint(1, 3))
    return [(sku, chooser.randint(1, 3)) for sku in skus]


# ----------------------------------------------------------------- accounting


@dataclass
class Tally:
    """What one side's clients saw during the counted window."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    requests: int = 0
    orders: int = 0
    failures: int = 0
    """Answers that were not 2xx, transport errors, or commands that raised."""
    not_confirmed: int = 0
    """HTTP: checkouts whose answer was not ``confirmed`` (bare: the command answers nothing)."""
    still_unconfirmed: int = 0
    """Orders checked out but not confirmed when looked at again after the run."""
    final: Counter[str] = field(default_factory=Counter)
    """The counted orders by their status when looked at again after the run."""
    outcomes: list[str] = field(default_factory=list)
    """Each order that did not end ``confirmed`` (or did not answer it), with its saga."""
    examples: list[str] = field(default_factory=list)
    capped: bool = False
    counting: bool = False
    """False during the warm-up, whose failures are kept apart."""
    warm_up_failures: int = 0

    def settled(self, status: str, description: str | None) -> None:
        """Count a counted order's final ``status``; keep ``description`` if there is one."""
        self.final[status] += 1
        if status != "confirmed":
            self.still_unconfirmed += 1
        if description is not None and len(self.outcomes) < OUTCOMES:
            self.outcomes.append(description)

    def failed(self, description: str) -> None:
        if self.counting:
            self.failures += 1
        else:
            self.warm_up_failures += 1
        if len(self.examples) < 5:
            self.examples.append(("" if self.counting else "(warm-up) ") + description)


@dataclass(frozen=True)
class Usage:
    """CPU seconds used during the window, per party, and the database's transactions."""

    shop: float
    generator: float | None
    postgres: float
    machine: float
    commits: int
    rollbacks: int
    sessions: int
    """Connections opened to the database (each a new PostgreSQL backend)."""


@dataclass
class Side:
    """One side's figures."""

    name: str
    load: Load
    tally: Tally
    seconds: float
    usage: Usage
    log: list[str] = field(default_factory=list)
    """What the shop logged (warnings and worse), warm-up included: HTTP, its stderr."""
    parties: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def requests_per_second(self) -> float:
        return self.tally.requests / self.seconds

    @property
    def orders_per_second(self) -> float:
        return self.tally.orders / self.seconds


def percentile(values: Sequence[float], share: float) -> float:
    """Return the nearest-rank percentile ``share`` (0-1) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


_TICK = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float:
    """Return the user + system CPU seconds of process ``pid`` (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _postgres_cpu() -> dict[int, float]:
    """Return the CPU seconds of every ``postgres`` process, by pid.

    The postmaster's figure includes the CPU of the backends it has reaped
    (``cutime`` + ``cstime``): a connection closed during the window counts.
    """
    stats = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        if text.partition("(")[2].rpartition(")")[0] == "postgres":
            stats[int(entry.name)] = [int(value) for value in text.rpartition(")")[2].split()[1:15]]
    seen = {}
    for pid, fields in stats.items():  # fields[0] is the parent's pid; then utime, stime ...
        ticks = fields[10] + fields[11]
        if fields[0] not in stats:  # the postmaster: the backends it reaped count too
            ticks += fields[12] + fields[13]
        seen[pid] = ticks / _TICK
    return seen


def _machine_busy() -> float:
    """Return the CPU seconds the whole machine has worked (the hypervisor's steal left out)."""
    user, nice, system, _, _, irq, softirq = (
        int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:8]
    )
    return (user + nice + system + irq + softirq) / _TICK  # idle, I/O wait and steal left out


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _transactions(target: PostgresTarget) -> tuple[int, int, int]:
    """Return the database's committed and rolled back transactions and its sessions so far."""
    await asyncio.sleep(1.0)  # backends report their counters at most once a second
    connection = await asyncpg.connect(target.dsn)
    try:
        row = await connection.fetchrow(
            "SELECT xact_commit, xact_rollback, sessions FROM pg_stat_database WHERE datname = $1",
            target.database,
        )
    finally:
        await connection.close()
    if row is None:
        raise RuntimeError(f"pg_stat_database has no row for {target.database}")
    return int(row["xact_commit"]), int(row["xact_rollback"]), int(row["sessions"])


class Meter:
    """Reads the counters before and after the counted window."""

    def __init__(self, target: PostgresTarget, server_pid: int | None) -> None:
        self.target = target
        self.server_pid = server_pid
        self.start: dict[str, Any] = {}

    def _read(self) -> dict[str, Any]:
        return {
            "own": _own_cpu(),
            "server": _process_cpu(self.server_pid) if self.server_pid else 0.0,
            "postgres": _postgres_cpu(),
            "machine": _machine_busy(),
        }

    async def begin(self) -> None:
        self.transactions = await _transactions(self.target)
        self.start = self._read()

    def end_cpu(self) -> None:
        self.stop = self._read()

    async def usage(self) -> Usage:
        commits, rollbacks, sessions = await _transactions(self.target)
        start, stop = self.start, self.stop
        postgres = sum(
            seconds - start["postgres"].get(pid, 0.0) for pid, seconds in stop["postgres"].items()
        )
        own = stop["own"] - start["own"]
        http = self.server_pid is not None
        return Usage(
            shop=stop["server"] - start["server"] if http else own,
            generator=own if http else None,
            postgres=postgres,
            machine=stop["machine"] - start["machine"],
            commits=commits - self.transactions[0],
            rollbacks=rollbacks - self.transactions[1],
            sessions=sessions - self.transactions[2],
        )


class Parties:
    """Counts the SQL statements, commits and rollbacks of the bare side, by who ran them.

    Who: the asyncio task that was running (``asyncio.current_task``): the
    clients (their commands, and the saga the checkout runs within them), or
    one of the shop's background workers, by task name. Only while
    ``tally.counting`` (the counted window).
    """

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.counts: dict[str, Counter[str]] = {}

    def attach(self, engine: Any) -> None:
        for kind, name in (
            ("statements", "before_cursor_execute"),
            ("commits", "commit"),
            ("rollbacks", "rollback"),
        ):
            event.listen(engine.sync_engine, name, partial(self._count, kind))

    def _count(self, kind: str, *_: Any) -> None:
        if not self.tally.counting:
            return
        task = asyncio.current_task()
        coroutine = getattr(task.get_coro(), "__qualname__", "") if task else ""
        if "client" in coroutine:
            who = "the clients: commands, the in-request saga"
        elif coroutine == "AsyncConnection.close":
            who = "connections given back to the pool (reset)"
        elif task is None:
            who = "no task"
        else:
            name = re.sub(r"\d+", "N", task.get_name())
            who = coroutine if name.startswith("Task-") else name.partition(":")[0]
        self.counts.setdefault(who, Counter())[kind] += 1


# ------------------------------------------------------------------- clients

Place = Callable[[int, list[tuple[str, int]]], Awaitable[str | None]]
"""Place an order for client ``n``; return its id, or None when it failed."""
CheckOut = Callable[[int, str], Awaitable[bool | None]]
"""Check out client ``n``'s order; True when confirmed, False if not, None when it failed."""


async def drive(
    load: Load,
    place: Place,
    check_out: CheckOut,
    tally: Tally,
    meter: Meter,
    *,
    profiler: cProfile.Profile | None = None,
) -> float:
    """Run the clients: warm-up, then the counted iterations; return the counted seconds.

    ``profiler``, if given, runs during the counted iterations only.
    """

    async def client(number: int, iterations: int, counted: bool, deadline: float) -> None:
        chooser = random.Random(f"{number}-{counted}")
        for _ in range(iterations):
            if counted and time.perf_counter() >= deadline:
                tally.capped = True
                return
            started = time.perf_counter()
            order_id = await place(number, order_lines(chooser))
            placed = time.perf_counter()
            if counted:
                tally.requests += 1
                tally.latencies["place"].append(placed - started)
            if order_id is None:
                continue
            confirmed = await check_out(number, order_id)
            if counted:
                tally.requests += 1
                tally.latencies["checkout"].append(time.perf_counter() - placed)
                if confirmed is not None:
                    tally.orders += 1
                    tally.not_confirmed += not confirmed

    await asyncio.gather(*(client(n, load.warm_up, False, 0.0) for n in range(load.clients)))
    tally.counting = True
    await meter.begin()
    started = time.perf_counter()
    deadline = started + load.cap
    if profiler is not None:
        profiler.enable()
    await asyncio.gather(*(client(n, load.iterations, True, deadline) for n in range(load.clients)))
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
    meter.end_cpu()
    return seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def shop_process(target: PostgresTarget, port: int, folder: Path) -> Any:
    """Run ``python -m shop --no-scenario`` until it serves; SIGINT it (then kill) at the end."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"RABBITMQ_URL", "NATS_URL", "REDIS_URL"}
    }
    environment["DATABASE_URL"] = target.sqlalchemy_url
    out, err = folder / "stdout.txt", folder / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter running the shop
            [sys.executable, "-m", "shop", "--no-scenario", "--port", str(port)],
            cwd=folder,
            env=environment,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "until Ctrl-C" not in out.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the shop did not start (status {process.poll()}):\n"
                    f"{out.read_text()}{err.read_text()}"
                )
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class HttpShop:
    """The load generator's side of the HTTP run: one ``httpx.AsyncClient`` per client."""

    def __init__(self, base: str, clients: int, tally: Tally) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.clients = [
            httpx.AsyncClient(base_url=base, timeout=60.0, limits=limits) for _ in range(clients)
        ]
        self.tally = tally
        self.answered: dict[str, str] = {}
        """The counted orders whose checkout answered 2xx, with the status it answered."""

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def seed(self) -> None:
        """Add the products and register one customer per client."""
        seeder = self.clients[0]
        for sku, name, price in PRODUCTS:
            body = {"sku": sku, "name": name, "price": str(price), "stock": STOCK}
            (await seeder.post("/products", json=body)).raise_for_status()
        for number in range(len(self.clients)):
            body = {"customer_id": f"client-{number}", "name": f"Client {number}"}
            (await seeder.post("/customers", json=body)).raise_for_status()

    async def _post(self, number: int, path: str, body: dict[str, Any]) -> Any:
        """POST as client ``number``; the answer's JSON, or None (counted) when it failed."""
        try:
            response = await self.clients[number].post(path, json=body)
        except httpx.HTTPError as error:
            self.tally.failed(f"POST {path}: {type(error).__name__}: {error}")
            return None
        if not response.is_success:
            body_text = " ".join(response.text.split())[:300]
            self.tally.failed(f"POST {path} -> {response.status_code} {body_text}")
            return None
        return response.json()

    async def place(self, number: int, lines: list[tuple[str, int]]) -> str | None:
        body = {
            "customer_id": f"client-{number}",
            "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
        }
        answer = await self._post(number, "/orders", body)
        return None if answer is None else str(answer["order_id"])

    async def check_out(self, number: int, order_id: str) -> bool | None:
        path = f"/orders/{order_id}/checkout"
        answer = await self._post(number, path, {"payment_method": "card-ok"})
        if answer is None:
            return None
        if self.tally.counting:
            self.answered[order_id] = answer["status"]
        return answer["status"] == "confirmed"

    async def follow_up(self) -> None:
        """Read every counted order again; describe those not confirmed, then or now.

        ``GET /orders/{id}`` (its events) and, for an order that did not end
        or answer ``confirmed``, ``GET /orders/{id}/fulfilment`` (its saga).
        """
        client = self.clients[0]
        described = []
        for order_id, status in self.answered.items():
            order = (await client.get(f"/orders/{order_id}")).json()
            now = order["status"]
            description = None
            if now != "confirmed" or status != "confirmed":
                found = await client.get(f"/orders/{order_id}/fulfilment")
                saga = found.json() if found.is_success else {}
                description = (
                    f"POST /orders/{order_id}/checkout answered 202 with status {status!r};"
                    f" after the run the order is {now!r}"
                    + (f" (reason {order['reason']!r})" if order["reason"] else "")
                    + f", its saga {saga.get('status')!r}, reason {saga.get('reason')!r}"
                    f" ({', '.join(saga.get('history', []))})"
                )
                described.append((now == "confirmed", description))
            self.tally.settled(now, None)
        for _, text in sorted(described, key=lambda item: item[0]):  # not confirmed first
            if len(self.tally.outcomes) < OUTCOMES:
                self.tally.outcomes.append(text)


async def bench_http(load: Load, progress: Callable[[str], None]) -> Side:
    """The HTTP side: the shop as a uvicorn subprocess, N httpx clients on loopback."""
    folder = Path(tempfile.mkdtemp(prefix="cqrs_ddd_bench_shop_"))
    try:
        async with fresh_postgres() as target:
            port = free_port()
            progress(f"(l) HTTP: starting python -m shop on port {port}")
            tally = Tally()
            with shop_process(target, port, folder) as process:
                http = HttpShop(f"http://127.0.0.1:{port}", load.clients, tally)
                try:
                    await http.seed()
                    meter = Meter(target, process.pid)
                    progress(
                        f"(l) HTTP: {load.clients} clients x {load.iterations} orders "
                        f"(cap {load.cap:.0f} s)"
                    )
                    seconds = await drive(load, http.place, http.check_out, tally, meter)
                    usage = await meter.usage()
                    await asyncio.sleep(SETTLE)
                    progress(f"(l) HTTP: reading the {len(http.answered):,} orders again")
                    await http.follow_up()
                finally:
                    await http.close()
            errors = (folder / "stderr.txt").read_text().splitlines()
        log = [line for line in errors if line.strip()]
        return Side("HTTP (uvicorn)", load, tally, seconds, usage, log)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def bench_bare(
    load: Load, progress: Callable[[str], None], profiler: cProfile.Profile | None = None
) -> Side:
    """The bare side: the same shop in this process, commands sent to its mediator."""
    log = Captured()
    logging.getLogger().addHandler(log)
    try:
        return await _bare(load, progress, log, profiler)
    finally:
        logging.getLogger().removeHandler(log)


def saga_text(saga: Any) -> str:
    """Describe a saga's state in one line: status, reason, history."""
    if saga is None:
        return "None"
    history = ", ".join(entry.what for entry in saga.history)
    return f"{saga.status!r}, reason {saga.reason!r} ({history})"


class Captured(logging.Handler):
    """Keeps the warnings and worse logged in this process (the bare side's log)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def _bare(
    load: Load,
    progress: Callable[[str], None],
    log: Captured,
    profiler: cProfile.Profile | None,
) -> Side:
    from cqrs_ddd_persistence_sqlalchemy import create_engine  # noqa: PLC0415 - heavy
    from shop.commands import (  # noqa: PLC0415
        AddProduct,
        CheckOut,
        Line,
        PlaceOrder,
        RegisterCustomer,
    )
    from shop.wiring import ShopOptions, build_shop  # noqa: PLC0415

    async with fresh_postgres() as target:
        progress("(l) bare: building the shop in this process")
        engine = create_engine(target.sqlalchemy_url)
        try:
            shop = await build_shop(engine, ShopOptions())
            await shop.start()
            tally = Tally()
            parties = Parties(tally)
            parties.attach(engine)
            try:
                for sku, name, price in PRODUCTS:
                    await shop.mediator.send(
                        AddProduct(sku=sku, name=name, price=price, stock=STOCK)
                    )
                for number in range(load.clients):
                    await shop.mediator.send(
                        RegisterCustomer(customer_id=f"client-{number}", name=f"Client {number}")
                    )
                placed: list[str] = []

                async def place(number: int, lines: list[tuple[str, int]]) -> str | None:
                    command = PlaceOrder(
                        customer_id=f"client-{number}",
                        lines=[Line(sku=sku, quantity=quantity) for sku, quantity in lines],
                    )
                    try:
                        return str((await shop.mediator.send(command)).result)
                    except Exception as error:  # noqa: BLE001 - counted and reported
                        tally.failed(f"PlaceOrder: {type(error).__name__}: {error}")
                        return None

                async def check_out(number: int, order_id: str) -> bool | None:
                    try:
                        await shop.mediator.send(
                            CheckOut(order_id=order_id, payment_method="card-ok")
                        )
                    except Exception as error:  # noqa: BLE001 - counted and reported
                        tally.failed(f"CheckOut {order_id}: {type(error).__name__}: {error}")
                        return None
                    if tally.counting:
                        placed.append(order_id)
                    return True  # checked after the window, without timing it

                meter = Meter(target, None)
                progress(
                    f"(l) bare: {load.clients} clients x {load.iterations} orders "
                    f"(cap {load.cap:.0f} s)"
                )
                seconds = await drive(load, place, check_out, tally, meter, profiler=profiler)
                tally.counting = False
                usage = await meter.usage()
                await asyncio.sleep(SETTLE)
                progress(f"(l) bare: reading the {len(placed):,} orders again")
                for order_id in placed:
                    order = await shop.stores.orders.find(order_id)
                    status = "missing" if order is None else order.status
                    description = None
                    if status != "confirmed":
                        reason = "" if order is None or not order.reason else order.reason
                        saga = await shop.saga_repository.find("OrderFulfilment", order_id)
                        description = (
                            f"CheckOut({order_id}) returned; after the run the order is"
                            f" {status!r}"
                            + (f" (reason {reason!r})" if reason else "")
                            + f", its saga {saga_text(saga)}"
                        )
                    tally.settled(status, description)
            finally:
                await shop.stop()
        finally:
            await engine.dispose()
    return Side("bare (mediator.send)", load, tally, seconds, usage, log.lines, parties.counts)


# ---------------------------------------------------------------------- report


def _ms(values: Sequence[float]) -> str:
    return " / ".join(f"{percentile(values, share) * 1000:.1f}" for share in (0.5, 0.95, 0.99))


def _problems(side: Side) -> list[str]:
    """Return the lines on one side's failures and orders that did not end confirmed."""
    lines = []
    if side.tally.warm_up_failures:
        lines += ["", f"{side.name}: {side.tally.warm_up_failures} failures in the warm-up"]
    if side.tally.examples:
        lines += ["", f"{side.name}: first problems seen:"]
        lines += [f"  {example}" for example in side.tally.examples]
    if side.tally.outcomes:
        lines += [
            "",
            f"{side.name}: orders that did not end confirmed, or did not answer it"
            f" (at most {OUTCOMES}):",
        ]
        lines += [f"  {outcome}" for outcome in side.tally.outcomes]
    return lines


def summary_text(http: Side, bare: Side) -> str:
    """Return the tables of (l)."""
    load = http.load
    lines = [
        f"(l) the shop under load on PostgreSQL: {load.clients} clients x {load.iterations} orders"
        f" (place + checkout), capped at {load.cap:.0f} s, after {load.warm_up} warm-up orders"
        " per client",
        "",
        "| path | orders | seconds | requests/s | orders/s | failed (not 2xx) | "
        "answered not confirmed | not confirmed after the run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for side in (http, bare):
        tally = side.tally
        answered = str(tally.not_confirmed) if side is http else "-"
        lines.append(
            f"| {side.name} | {tally.orders:,}{' (capped)' if tally.capped else ''} | "
            f"{side.seconds:.1f} | {side.requests_per_second:,.1f} | "
            f"{side.orders_per_second:,.1f} | {tally.failures} | {answered} | "
            f"{tally.still_unconfirmed} |"
        )
    lines += [
        "",
        f"The counted orders by their final status, read {SETTLE:.0f} s after the window:",
        "",
        "| path | orders | confirmed | cancelled | other |",
        "|---|---|---|---|---|",
    ]
    for side in (http, bare):
        final = side.tally.final
        other = ", ".join(
            f"{status} {count}"
            for status, count in sorted(final.items())
            if status not in {"confirmed", "cancelled"}
        )
        lines.append(
            f"| {side.name} | {sum(final.values()):,} | {final['confirmed']:,} | "
            f"{final['cancelled']:,} | {other or 0} |"
        )
    lines += [
        "",
        f"HTTP ÷ bare, orders/s: {http.orders_per_second / bare.orders_per_second:.2f}",
        "",
        "| path | place p50 / p95 / p99 ms | checkout p50 / p95 / p99 ms |",
        "|---|---|---|",
    ]
    for side in (http, bare):
        lines.append(
            f"| {side.name} | {_ms(side.tally.latencies['place'])} | "
            f"{_ms(side.tally.latencies['checkout'])} |"
        )
    lines += [
        "",
        "CPU during the counted window, in cores (CPU seconds / wall seconds; 2 cores in all),"
        " and the database's transactions per order (committed, reads included; the shop's"
        " background workers included):",
        "",
        "| path | shop process | load generator | PostgreSQL | anything else | whole machine | "
        "transactions / order | rolled back | connections opened |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for side in (http, bare):
        usage, seconds = side.usage, side.seconds
        generator = (
            "in the shop's process"
            if usage.generator is None
            else (f"{usage.generator / seconds:.2f}")
        )
        per_order = usage.commits / side.tally.orders if side.tally.orders else float("nan")
        other = usage.machine - usage.shop - (usage.generator or 0.0) - usage.postgres
        lines.append(
            f"| {side.name} | {usage.shop / seconds:.2f} | {generator} | "
            f"{usage.postgres / seconds:.2f} | {other / seconds:.2f} | "
            f"{usage.machine / seconds:.2f} | "
            f"{per_order:.1f} | {usage.rollbacks:,} | {usage.sessions:,} |"
        )
    if bare.parties and bare.tally.orders:
        lines += [
            "",
            "bare: who ran the SQL, per order (SQLAlchemy's statements, commits and rollbacks,"
            " by asyncio task):",
            "",
            "| who | statements / order | commits / order | rollbacks / order |",
            "|---|---|---|---|",
        ]
        ranked = sorted(bare.parties.items(), key=lambda item: -item[1]["statements"])
        for who, counts in ranked:
            per = {kind: counts[kind] / bare.tally.orders for kind in counts}
            lines.append(
                f"| {who} | {per.get('statements', 0):.1f} | {per.get('commits', 0):.1f} | "
                f"{per.get('rollbacks', 0):.1f} |"
            )
    for side in (http, bare):
        lines += _problems(side)
    lines += [
        "",
        "What the shop logged (warnings and worse, warm-up included):",
        "",
        "| path | lines | retries after a version conflict | commands failed "
        "(after their retries) | other lines |",
        "|---|---|---|---|---|",
    ]
    for side in (http, bare):
        retries = [line for line in side.log if "retrying " in line and "ConcurrencyError" in line]
        failed = [line for line in side.log if " failed after " in line]
        other = [line for line in side.log if line not in retries and line not in failed]
        lines.append(
            f"| {side.name} | {len(side.log)} | {len(retries)} | {len(failed)} | {len(other)} |"
        )
    for side in (http, bare):
        notable = [line for line in side.log if "retrying " not in line]
        if notable:
            lines += ["", f"{side.name}: what was logged besides the retries (the first 10):"]
            lines += [f"  {' '.join(line.split())[:400]}" for line in notable[:10]]
    return "\n".join(lines)


def code_state() -> str:
    """Say which code ran: the commit, and whether the shop or the packages had local changes."""
    import shop  # noqa: PLC0415 - where the shop was imported from

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--short", "--", "examples/shop", "packages"],  # noqa: S607
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "code: not a git checkout"
    state = (
        f"{len(changed)} uncommitted changes in examples/shop and packages"
        if changed
        else ("no uncommitted changes in examples/shop or packages")
    )
    return f"code: commit {commit}, {state}; the shop imported from {Path(shop.__file__).parent}"


def main(argv: Sequence[str] | None = None) -> None:
    """Run (l) and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="4 clients x 25 orders instead of 8 x 75"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only the bare side, under cProfile (the event loop's thread): print the top costs",
    )
    args = parser.parse_args(argv)
    load = QUICK if args.quick else FULL

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.profile:
        profiler = cProfile.Profile()
        bare = asyncio.run(bench_bare(load, progress, profiler))
        print(f"(l) bare, profiled: {bare.tally.orders:,} orders in {bare.seconds:.1f} s\n")
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(30)
        return

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    at_start = load_average()
    http = asyncio.run(bench_http(load, progress))
    bare = asyncio.run(bench_bare(load, progress))
    print(summary_text(http, bare))
    print(f"\nstarted {started}; load average at the start {at_start}, at the end {load_average()}")
    print(code_state())


if __name__ == "__main__":
    main()
