from __future__ import annotations

import pytest
from core_test_model import (
    AddItem,
    AddItemHandler,
    GetOrder,
    Order,
    PlaceOrder,
    PlaceOrderHandler,
    RecordingDispatcher,
)

from cqrs_ddd_core import HandlerRegistry, InMemoryRepository, InMemoryUnitOfWork, Mediator


@pytest.fixture
def orders() -> InMemoryRepository[Order]:
    return InMemoryRepository(Order)


@pytest.fixture
def registry(orders: InMemoryRepository[Order]) -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.register_command_handler(PlaceOrder, PlaceOrderHandler(orders))
    registry.register_command_handler(AddItem, AddItemHandler(orders))

    @registry.query_handler(GetOrder)
    async def get_order(query: GetOrder) -> Order | None:
        return await orders.find(query.order_id)

    return registry


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def mediator(registry: HandlerRegistry, dispatcher: RecordingDispatcher) -> Mediator:
    return Mediator(registry=registry, uow_factory=InMemoryUnitOfWork, event_dispatcher=dispatcher)
