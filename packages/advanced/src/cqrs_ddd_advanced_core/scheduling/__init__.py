"""Command scheduling: run commands later, once, across any number of worker processes.

:class:`CommandSchedulerService` stores commands to run at a given time (or on
a recurring schedule), cancels them and says where each one is;
:class:`CommandSchedulerWorker` runs the due ones in the background through the
mediator. Where they are kept is a :class:`CommandScheduler`:
``InMemoryCommandScheduler`` (``cqrs_ddd_advanced_core.adapters.memory``) or
``SQLAlchemyCommandScheduler`` (``cqrs_ddd_persistence_sqlalchemy``). See the
README beside this module for the guarantees.
"""

from __future__ import annotations

from cqrs_ddd_advanced_core.domain.exceptions import (
    NaiveDatetimeError,
    ScheduleConfigurationError,
    ScheduledCommandFailedError,
    ScheduleLeaseLostError,
    ScheduleNotCancellableError,
    ScheduleNotFoundError,
    ScheduleNotRetryableError,
    ScheduleNotRunnableError,
    SchedulingError,
)
from cqrs_ddd_advanced_core.scheduling.ports import (
    ClaimedSchedule,
    CommandScheduler,
    Firing,
    FiringPlan,
    MissedRunPolicy,
    NewSchedule,
    RecurringSchedule,
    ScheduleState,
    ScheduleStatus,
)
from cqrs_ddd_advanced_core.scheduling.recurring import occurrence_id, plan_firing
from cqrs_ddd_advanced_core.scheduling.service import CommandSchedulerService, SendFunction
from cqrs_ddd_advanced_core.scheduling.worker import CommandSchedulerWorker

__all__ = [
    "ClaimedSchedule",
    "CommandScheduler",
    "CommandSchedulerService",
    "CommandSchedulerWorker",
    "Firing",
    "FiringPlan",
    "MissedRunPolicy",
    "NaiveDatetimeError",
    "NewSchedule",
    "RecurringSchedule",
    "ScheduleConfigurationError",
    "ScheduleLeaseLostError",
    "ScheduleNotCancellableError",
    "ScheduleNotFoundError",
    "ScheduleNotRetryableError",
    "ScheduleNotRunnableError",
    "ScheduleState",
    "ScheduleStatus",
    "ScheduledCommandFailedError",
    "SchedulingError",
    "SendFunction",
    "occurrence_id",
    "plan_firing",
]
