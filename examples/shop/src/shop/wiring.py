"""The composition root: every part of the shop is made and wired here, once.

:func:`build_shop` follows the shape of the spec's e-commerce lifespan: (1)
the event-sourced mediator from ``EventSourcedMediatorFactory``, (2) the sagas
from ``bootstrap_sagas``, (3) the ``ProjectionWorker``, (4) the
``CommandSchedulerWorker`` around a ``CommandSchedulerService``; and, when a
broker is configured, (5) the relays publishing the event log (the orders' and
products' events) and the outbox table (the customers' events). :class:`Shop`
starts and stops them all (``shop.api`` does so in the FastAPI lifespan).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.cqrs import RetryBehavior
from cqrs_ddd_advanced_core.domain.conflict_events import ConflictResolved
from cqrs_ddd_advanced_core.event_sourcing import (
    EventSourcedLoader,
    EventSourcedMediatorFactory,
    EventSourcedRepository,
)
from cqrs_ddd_advanced_core.projections import ProjectionWorker, ProjectorRegistry
from cqrs_ddd_advanced_core.sagas import SagaBootstrap, SagaFeed, bootstrap_sagas
from cqrs_ddd_advanced_core.scheduling import CommandSchedulerService, CommandSchedulerWorker
from cqrs_ddd_advanced_core.snapshots import EveryNEventsStrategy, SnapshotStore
from cqrs_ddd_advanced_core.undo import UndoExecutorRegistry, UndoService, executor
from cqrs_ddd_advanced_core.upcasting import EventDecoder, UpcasterRegistry
from cqrs_ddd_core import (
    Command,
    DomainEvent,
    EventDispatcher,
    EventTypeRegistry,
    HandlerRegistry,
    LoggingBehavior,
    Mediator,
    MessageTypeRegistry,
    ValidationBehavior,
)
from cqrs_ddd_infrastructure_messaging import EventLogRelay, OutboxTableRelay, OutboxWorker
from cqrs_ddd_infrastructure_messaging.publishing import BrokerPublisher
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyCommandScheduler,
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStore,
    SQLAlchemyReadModelStore,
    SQLAlchemyRepository,
    SQLAlchemySagaRepository,
    SQLAlchemySnapshotRepository,
    SQLAlchemyUndoLog,
    SQLAlchemyUnitOfWork,
    SQLAlchemyWorkerStorage,
    upgrade_schema,
)
from shop.application import (
    Stores,
    fulfilment_saga,
    register_handlers,
)
from shop.broker import Broker
from shop.commands import (
    VALIDATORS,
    AddItem,
    ChargePayment,
    ConfirmOrder,
    GenerateMonthlyReport,
    RefundPayment,
    ReleaseStock,
    RemoveItem,
    ReserveStock,
)
from shop.domain import (
    Customer,
    DeliveryChanged,
    ItemAdded,
    ItemAddedV1ToV2,
    ItemRemoved,
    Order,
    OrderCancelled,
    OrderCheckedOut,
    OrderConfirmed,
    OrderExpired,
    OrderPlaced,
    OrderShipped,
    OrderStockReserved,
    PaymentCharged,
    PaymentRefunded,
    Product,
    ProductAdded,
    ProductRestocked,
    StockDispatched,
    StockHeld,
    StockReleased,
)
from shop.idempotency import IdempotencyKeys
from shop.projections import (
    OrderProjector,
    ProductProjector,
    create_read_model_tables,
    orders,
    products,
)

logger = logging.getLogger("shop")

ORDER_EVENTS: tuple[type[DomainEvent], ...] = (
    OrderPlaced,
    ItemAdded,
    ItemRemoved,
    DeliveryChanged,
    OrderCheckedOut,
    OrderStockReserved,
    PaymentCharged,
    PaymentRefunded,
    OrderConfirmed,
    OrderCancelled,
    OrderExpired,
    OrderShipped,
    ConflictResolved,
)
PRODUCT_EVENTS: tuple[type[DomainEvent], ...] = (
    ProductAdded,
    ProductRestocked,
    StockHeld,
    StockReleased,
    StockDispatched,
)

MONTHLY_REPORT = "monthly-report"
"""The name of the recurring schedule of the monthly report."""

MONTHLY_REPORT_CRON = "0 6 1 * *"
"""06:00 UTC on the first day of each month."""


@dataclass(frozen=True)
class ShopOptions:
    """How the shop behaves, apart from where its data is."""

    order_ttl: timedelta = timedelta(minutes=30)
    """How long an order may stay unpaid before it expires."""
    payment_timeout: timedelta = timedelta(seconds=30)
    """How long the saga waits for a charge's outcome before it compensates."""
    snapshot_every: int = 50
    """A product is snapshotted every this many events."""
    poll_interval: float = 60.0
    """How often the scheduler worker looks for due commands without being woken."""
    recovery_interval: float = 60.0
    """How often the saga recovery worker resumes sagas a crash left in flight."""
    saga_feed_grace: float = 2.0
    """How old an event is before the saga feed delivers it (the request's dispatch goes first)."""
    broker: Broker | None = None
    """Where the relays publish the events; None publishes nothing."""


@dataclass
class Shop:
    """The wired shop: its mediator, its workers, and what they are built from."""

    engine: AsyncEngine
    options: ShopOptions
    mediator: Mediator
    stores: Stores
    event_store: SQLAlchemyEventStore
    sagas: SagaBootstrap
    saga_feed: SagaFeed
    saga_repository: SQLAlchemySagaRepository
    projections: ProjectionWorker
    schedules: CommandSchedulerService
    scheduler_worker: CommandSchedulerWorker
    undo: UndoService
    order_rows: SQLAlchemyReadModelStore
    product_rows: SQLAlchemyReadModelStore
    snapshots: SnapshotStore
    relays: dict[str, OutboxWorker] = field(default_factory=dict)
    """The relays by what they publish (``events``, ``outbox``); none without a broker."""
    publisher: BrokerPublisher | None = None
    started: bool = field(default=False, init=False)

    async def start(self) -> None:
        """Start every worker, and plan the monthly report (idempotent by name)."""
        await self.schedules.schedule_recurring(
            MONTHLY_REPORT, GenerateMonthlyReport(), cron=MONTHLY_REPORT_CRON
        )
        await self.sagas.worker.start()
        await self.saga_feed.start()
        await self.projections.start()
        await self.scheduler_worker.start()
        if self.publisher is not None:
            await self.publisher.start()  # BrokerUnavailableError, naming the URL, if it is down
        for relay in self.relays.values():
            await relay.start()
        self.started = True

    async def stop(self) -> None:
        """Stop every worker, the last started first."""
        for relay in self.relays.values():
            await relay.stop()
        if self.publisher is not None:
            await self.publisher.close()
        await self.scheduler_worker.stop()
        await self.projections.stop()
        await self.saga_feed.stop()
        await self.sagas.worker.stop()
        self.started = False


def undo_executors() -> UndoExecutorRegistry:
    """Say how cart changes are undone: an added item is removed, a removed one added back."""

    def remove_what_was_added(command: AddItem, events: object) -> Command:
        return RemoveItem(order_id=command.order_id, sku=command.sku, quantity=command.quantity)

    def add_back_what_was_removed(command: RemoveItem, events: object) -> Command:
        (removed,) = [event for event in events if isinstance(event, ItemRemoved)]  # type: ignore[attr-defined]
        price = removed.unit_price.amount
        return AddItem(
            order_id=command.order_id, sku=command.sku, quantity=command.quantity, unit_price=price
        )

    def other_cart_changes(command: Command, intervening: object) -> bool:
        cart_events = {"ItemAdded", "ItemRemoved", "DeliveryChanged", "ConflictResolved"}
        return all(event.event_type in cart_events for event in intervening)  # type: ignore[attr-defined]

    executors = UndoExecutorRegistry()
    executors.register(AddItem, executor(remove_what_was_added, commutes=other_cart_changes))
    executors.register(RemoveItem, executor(add_back_what_was_removed, commutes=other_cart_changes))
    return executors


def projections_of(
    event_store: SQLAlchemyEventStore,
    order_rows: SQLAlchemyReadModelStore,
    product_rows: SQLAlchemyReadModelStore,
    upcasters: UpcasterRegistry,
) -> ProjectionWorker:
    """Return the worker of the shop's read models (``shop_orders``, ``shop_products``)."""
    projector_registry = ProjectorRegistry(
        [OrderProjector(order_rows), ProductProjector(product_rows)],
        event_registry=EventTypeRegistry(ORDER_EVENTS + PRODUCT_EVENTS),
    )
    return ProjectionWorker(
        projector_registry=projector_registry,
        event_store=event_store,
        batch_size=100,
        upcaster_registry=upcasters,
    )


def projection_worker(engine: AsyncEngine) -> ProjectionWorker:
    """Return a worker of the shop's projections on ``engine``, for the operator tools.

    ``cqrs-ddd projections rebuild|replay --app shop.wiring:projection_worker``
    builds it to apply the shop's events with the shop's own projectors.
    """
    return projections_of(
        SQLAlchemyEventStore(engine),
        SQLAlchemyReadModelStore(orders, engine),
        SQLAlchemyReadModelStore(products, engine),
        UpcasterRegistry([ItemAddedV1ToV2()]),
    )


async def build_shop(engine: AsyncEngine, options: ShopOptions | None = None) -> Shop:
    """Build the shop on ``engine``, bringing its schema up to date first.

    Nothing runs yet: :meth:`Shop.start` starts the workers.
    """
    options = options or ShopOptions()
    await upgrade_schema(engine)
    await create_read_model_tables(engine)
    requests = IdempotencyKeys(engine)
    await requests.create_table()

    event_store = SQLAlchemyEventStore(engine)
    upcasters = UpcasterRegistry([ItemAddedV1ToV2()])
    snapshots = SnapshotStore(
        strategy=EveryNEventsStrategy(frequency=options.snapshot_every),
        repository=SQLAlchemySnapshotRepository(engine),
    )
    order_rows = SQLAlchemyReadModelStore(orders, engine)
    product_rows = SQLAlchemyReadModelStore(products, engine)
    stores = Stores(
        orders=EventSourcedRepository(
            EventSourcedLoader(
                Order, event_store, EventTypeRegistry(ORDER_EVENTS), upcaster_registry=upcasters
            )
        ),
        products=EventSourcedRepository(
            EventSourcedLoader(
                Product, event_store, EventTypeRegistry(PRODUCT_EVENTS), snapshot_store=snapshots
            )
        ),
        customers=SQLAlchemyRepository(Customer, engine),
        order_rows=order_rows,
        requests=requests,
        order_ttl=options.order_ttl,
    )
    handler_registry = HandlerRegistry()
    register_handlers(handler_registry, stores)
    event_dispatcher = EventDispatcher()

    # 1. Event sourcing: one mediator, appending each command's events in its transaction
    factory = EventSourcedMediatorFactory(
        event_store=event_store,
        uow_factory=lambda: SQLAlchemyUnitOfWork(engine),
        handler_registry=handler_registry,
        event_dispatcher=event_dispatcher,
        behaviors=[
            LoggingBehavior(),
            ValidationBehavior(VALIDATORS),
            RetryBehavior(max_retries=10, retry_delay=0.005),  # a lost race runs again, fresh
        ],
    )
    factory.register_event_sourced_type("Order")
    factory.register_event_sourced_type("Product")
    factory.register_non_event_sourced_type("Customer")
    mediator = factory.create()

    # 2. Sagas: the order-fulfilment saga, its timeouts kept by the command scheduler
    saga_repository = SQLAlchemySagaRepository(engine)
    scheduler = SQLAlchemyCommandScheduler(engine)
    saga_commands = [ReserveStock, ReleaseStock, ChargePayment, RefundPayment, ConfirmOrder]
    saga_result = bootstrap_sagas(
        sagas=[fulfilment_saga(options.payment_timeout)],
        repository=saga_repository,
        command_bus=mediator,
        message_registry=MessageTypeRegistry(saga_commands),
        event_dispatcher=event_dispatcher,
        recovery_interval=options.recovery_interval,
        scheduler=scheduler,
    )
    owner = f"shop-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    saga_feed = SagaFeed(  # the sagas also read the event log: a lost dispatch is made up
        saga_result.manager,
        event_store,
        SQLAlchemyWorkerStorage(engine),
        owner=owner,
        name="shop.sagas",
        decoder=EventDecoder(EventTypeRegistry(ORDER_EVENTS), upcasters),
        grace=options.saga_feed_grace,
    )

    # 3. Projections: the read models, kept from the event log by a background worker
    projection_worker = projections_of(event_store, order_rows, product_rows, upcasters)

    # 4. Scheduling: order expiries, saga timeouts and the monthly report
    schedules = CommandSchedulerService(scheduler=scheduler, mediator_send_fn=mediator.send)
    scheduler_worker = CommandSchedulerWorker(
        service=schedules, poll_interval=options.poll_interval
    )
    stores.schedules = schedules

    # 5. The relays: the event log and the outbox table to the broker, when one is configured
    relays: dict[str, OutboxWorker] = {}
    publisher = None
    if options.broker is not None:
        publisher = options.broker.publisher()
        storage = SQLAlchemyWorkerStorage(engine)
        relays["events"] = OutboxWorker(
            EventLogRelay(
                name="shop.events",
                event_store=event_store,
                storage=storage,
                publisher=publisher,
                topic=options.broker.topic,
            ),
            owner=owner,
        )
        relays["outbox"] = OutboxWorker(
            OutboxTableRelay(
                name="shop.outbox",
                outbox=SQLAlchemyOutboxStore(engine),
                storage=storage,
                publisher=publisher,
                topic=options.broker.topic,
            ),
            owner=owner,
        )

    undo = UndoService(
        mediator, undo_executors(), SQLAlchemyUndoLog(engine), event_store=event_store
    )
    return Shop(
        engine=engine,
        options=options,
        mediator=mediator,
        stores=stores,
        event_store=event_store,
        sagas=saga_result,
        saga_feed=saga_feed,
        saga_repository=saga_repository,
        projections=projection_worker,
        schedules=schedules,
        scheduler_worker=scheduler_worker,
        undo=undo,
        order_rows=order_rows,
        product_rows=product_rows,
        snapshots=snapshots,
        relays=relays,
        publisher=publisher,
    )
