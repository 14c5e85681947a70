"""factory_boy factories of the log history (call and message logs, events) and placeholders."""

from __future__ import annotations

import factory

from connector.utils import hash_value
from logs.choices import DecidedBy, Direction, EventKind, LogStatus
from logs.models import CallLog, LogEvent, MessageLog
from rules.choices import PlaceholderStatus
from rules.models import Account, PlaceholderContact
from tests.factories import CrmUserFactory


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    rc_account_id = factory.Sequence(lambda n: f"{37000000 + n}")
    # always the hash of the id, as `rules.services` keeps it (the registry's scope key)
    account_key = factory.LazyAttribute(lambda o: hash_value(o.rc_account_id))
    name = factory.Sequence(lambda n: f"Account {n}")


class PlaceholderContactFactory(factory.django.DjangoModelFactory):
    """A placeholder contact created (ready) by a rule; pass decided_by=DecidedBy.USER for by hand."""

    class Meta:
        model = PlaceholderContact

    created_by = factory.SubFactory(CrmUserFactory)
    scope_key = factory.LazyAttribute(lambda o: f"user:{o.created_by.pk}")
    platform = "builtin"
    phone_number = factory.Sequence(lambda n: f"+1415555{n % 10000:04d}")
    decided_by = DecidedBy.RULE
    rule_snapshot = factory.LazyFunction(lambda: {"unknownContactAction": "createPlaceholder"})
    contact_id = factory.Sequence(lambda n: f"{50000 + n}")
    contact_name = factory.Sequence(lambda n: f"Caller {n}")
    contact_type = "Contact"
    status = PlaceholderStatus.READY
    attempts = 1


class _LogFactory(factory.django.DjangoModelFactory):
    user = factory.SubFactory(CrmUserFactory)
    platform = "builtin"
    phone_number = factory.Sequence(lambda n: f"+1650555{n % 10000:04d}")
    contact_id = factory.Sequence(lambda n: f"{70000 + n}")
    contact_name = factory.Sequence(lambda n: f"Contact {n}")
    contact_type = "Contact"
    decided_by = DecidedBy.RULE
    decision = factory.LazyFunction(lambda: {"outcome": "matched", "matches": 1})
    payload = factory.LazyFunction(lambda: {"note": "stored request"})
    crm_log_id = factory.Sequence(lambda n: f"{90000 + n}")
    status = LogStatus.LOGGED
    attempts = 1
    direction = Direction.INBOUND


class CallLogFactory(_LogFactory):
    """A logged call; override `status`, `last_error`, `placeholder`, ... as needed."""

    class Meta:
        model = CallLog

    session_id = factory.Sequence(lambda n: f"session-{n}")
    record_id = factory.LazyAttribute(lambda o: f"t-{o.session_id}")
    identity_key = "e:101"
    extension_number = "101"
    duration_seconds = 65
    result = "Accepted"


class MessageLogFactory(_LogFactory):
    class Meta:
        model = MessageLog

    message_id = factory.Sequence(lambda n: f"msg-{n}")
    conversation_id = factory.Sequence(lambda n: f"conv-{n}")
    conversation_log_id = factory.LazyAttribute(lambda o: f"{o.conversation_id}-2026-11-26")
    message_type = "SMS"


class LogEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LogEvent

    call_log = factory.SubFactory(CallLogFactory)
    message_log = None
    kind = EventKind.REQUESTED
    decided_by = ""
    detail = factory.LazyFunction(lambda: {"attempt": 1})
