"""stack.yaml's escalation (notification hours, contacts, the escalation path) as the Stack's
fields: the notification routing in engines/ops/notify.py decides from them."""

from __future__ import annotations

from datetime import time
from typing import Any

from drkit.config.models import StackModel, parse_days
from drkit.domain.stack import BusinessHours, Contact


def escalation(model: StackModel) -> dict[str, Any]:
    n = model.notifications
    hours = BusinessHours(
        parse_days(n.business_hours.days), _clock(n.business_hours.start), _clock(n.business_hours.end)
    )
    return {
        "notify_time_zone": n.time_zone,
        "business_hours": hours,
        "contacts": tuple(Contact(**c.model_dump()) for c in model.contacts),
        "escalation": tuple(model.escalation),
    }


def _clock(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute))
