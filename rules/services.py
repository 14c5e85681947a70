"""The rule engine: which contact a call or message is logged against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.crm.base import CrmClient, LogContact
from connector.exceptions import return_message
from connector.models import CrmUser
from rules.choices import DecidedBy, DecisionOutcome


@dataclass(slots=True)
class ContactDecision:
    """The contact a log hangs on, or why there is none, and what decided it.

    `snapshot` is written to the log row as is: the values that decided, so a later rule
    change never rewrites history.
    """

    outcome: DecisionOutcome
    decided_by: DecidedBy
    contact: LogContact | None = None
    is_placeholder: bool = False
    return_message: dict[str, Any] | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)


def contact_decide(
    *,
    user: CrmUser,
    client: CrmClient,
    phone_number: str,
    raw_number: str,
    given_contact: LogContact | None,
    caller_id_name: str = "",
) -> ContactDecision:
    """Decide the contact for a log of a call or message with `phone_number` (E.164).

    A contact named in the request wins (the manual flow). Otherwise the unknown-contact
    rule applies; its default, `prompt`, logs nothing and leaves the choice to the user.
    """
    if given_contact is not None:
        return ContactDecision(
            outcome=DecisionOutcome.GIVEN, decided_by=DecidedBy.USER, contact=given_contact
        )
    return ContactDecision(
        outcome=DecisionOutcome.PROMPTED,
        decided_by=DecidedBy.RULE,
        return_message=return_message(f"Contact not found for number {raw_number}"),
        snapshot={"unknownContactAction": "prompt", "phoneNumber": phone_number},
    )
