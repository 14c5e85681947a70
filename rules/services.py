"""The rule engine and the rule tables' writes.

`contact_decide` chooses the contact a call or message is logged against: the one the
request names (manual flow), else the CRM's match, else what the rules say for an unknown
number, which may be a placeholder contact created once per number through the registry.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import phonenumbers
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from connector.conf import connector_settings
from connector.crm.base import CrmClient, CrmError, JsonDict, LogContact
from connector.crm.registry import crm_registry
from connector.db import (
    RowUpdate,
    connection_release_while_waiting,
    insert_returning_pk,
    update_where_each,
    with_defaults,
)
from connector.exceptions import InvalidInput, details_text, return_message
from connector.models import CrmUser
from connector.services import contact_create, crm_failure_message, real_contacts
from connector.utils import InvalidPhoneNumber, hash_value, phone_number_normalize
from rules.choices import (
    BlockedNumberKind,
    DecidedBy,
    DecisionOutcome,
    PlaceholderLife,
    PlaceholderRefusal,
    PlaceholderStatus,
    PreviewOutcome,
)
from rules.models import Account, BlockedNumber, PlaceholderContact, PlaceholderNameTemplate, RuleSetting
from rules.parameters import (
    BUILTIN_PLACEHOLDER_NAME,
    PARAMETERS,
    CallResultKind,
    MessageKind,
    MultipleMatchPolicy,
    PlaceholderNameSource,
    UnknownContactAction,
    settings_map_errors,
    template_render,
    template_validate,
)
from rules.selectors import (
    RecordedCall,
    RuleValues,
    account_get_for_user,
    placeholder_template_for,
    placeholders_in_scope,
    rule_values_candidate,
    rule_values_get,
)

# A request waiting for another one's placeholder gives up after this long.
PLACEHOLDER_WAIT_SECONDS = 15.0


def _placeholder_stale_after() -> timedelta:
    """A creation that has shown no progress for this long is taken over (its request
    died): the lease a claimed log has, for the same reason."""
    return timedelta(seconds=connector_settings.LOG_LEASE_SECONDS)


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
    placeholder: PlaceholderContact | None = None
    return_message: dict[str, Any] | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)


# --- Caller ID names -----------------------------------------------------------------------

# Labels carriers put in Caller ID when they have no name: not a person's name.
GENERIC_CALLER_ID_LABELS = frozenset(
    {
        "ANONYMOUS",
        "BLOCKED",
        "CELL PHONE",
        "MOBILE",
        "MOBILE CALLER",
        "NAME NOT FOUND",
        "NO CALLER ID",
        "NOT AVAILABLE",
        "OUT OF AREA",
        "POTENTIAL SPAM",
        "PRIVATE",
        "PRIVATE CALLER",
        "PRIVATE NUMBER",
        "RESTRICTED",
        "SCAM LIKELY",
        "SPAM RISK",
        "TOLL FREE",
        "TOLL FREE CALL",
        "UNAVAILABLE",
        "UNKNOWN",
        "UNKNOWN CALLER",
        "UNKNOWN NAME",
        "WIRELESS CALLER",
    }
)
# US states and Canadian provinces, as carriers append them to city labels ("SAN JOSE CA").
_REGION_CODES = frozenset(
    (
        "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
        "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR "
        "AB BC MB NB NL NS NT NU ON PE QC SK YT"
    ).split()
)
_CITY_LABEL = re.compile(r"^[A-Z][A-Z .'-]*\s([A-Z]{2})$")


def caller_id_name_usable(name: str, *, phone_number: str) -> tuple[bool, str]:
    """Whether a Caller ID name can name a contact, and why not when it cannot."""
    text = " ".join((name or "").split())
    if not text:
        return False, "no Caller ID name"
    if re.fullmatch(r"[\d\s()+.#*-]+", text):
        return False, "the Caller ID name is a number"
    upper = text.upper()
    if upper in GENERIC_CALLER_ID_LABELS:
        return False, f"'{text}' is a carrier label, not a name"
    city = _CITY_LABEL.match(text)
    if city and city.group(1) in _REGION_CODES and text == upper:
        return False, f"'{text}' is a city/state label, not a name"
    return True, ""


# --- which traffic may create a placeholder ------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogTraffic:
    """What the rules know of a call or message besides its number, built by `logs` from
    the request: what decides whether it may create a placeholder and names one."""

    kind: str  # "call" or "message"
    direction: str = ""  # "Inbound" or "Outbound" (RingCentral's words); "" when unknown
    result: str = ""  # a call's RingCentral `result`
    duration_seconds: int | None = None  # a call's duration; None when unknown or "pending"
    message_types: tuple[str, ...] = ()  # each message's RingCentral `type`
    party: dict[str, Any] = field(default_factory=dict)  # the other party as the request gave it
    own_numbers: tuple[str, ...] = ()  # the agent side's numbers, as the request gave them
    day: date | None = None  # the day of the call or conversation, in the user's time zone


# RingCentral's call-log `result` values, read as the kinds `placeholderCallResults` names;
# any other (or none) is "other". Values from RingCentral's call-log record
# (https://ringcentral.github.io/ringcentral-java/javadoc/com/ringcentral/definitions/CallLogRecord.html,
# generated from the platform's API reference, GET /restapi/v1.0/account/~/extension/~/call-log)
# and App Connect's RcCallLogRecord (https://ringcentral.github.io/rc-unified-crm-extension/
# developers/server-api/models/rc-call-log-record/); compared without case.
CALL_RESULT_KINDS: dict[str, str] = {
    **dict.fromkeys(
        ("accepted", "call connected", "call accepted", "answered not accepted", "received", "sent"),
        CallResultKind.ANSWERED,
    ),
    **dict.fromkeys(("missed", "abandoned", "hang up"), CallResultKind.MISSED),
    **dict.fromkeys(("voicemail", "sent to voicemail"), CallResultKind.VOICEMAIL),
    **dict.fromkeys(("rejected", "declined", "blocked", "reply"), CallResultKind.REJECTED),
    "busy": CallResultKind.BUSY,
    "no answer": CallResultKind.NO_ANSWER,
    **dict.fromkeys(
        (
            "call failed",
            "call failure",
            "internal error",
            "wrong number",
            "restricted number",
            "international disabled",
            "international restriction",
            "suspended account",
            "no calling credit",
            "not allowed",
            "carrier is not active",
            "ip phone offline",
            "poor line quality",
            "stopped",
            "send error",
            "receive error",
            "partial receive",
            "partially sent",
        ),
        CallResultKind.FAILED,
    ),
}


def call_result_kind(result: str) -> str:
    """The `CallResultKind` of a RingCentral call result ("Call connected" -> answered)."""
    return CALL_RESULT_KINDS.get(" ".join((result or "").split()).casefold(), CallResultKind.OTHER)


# What RingCentral and carriers put in a number or name field for a caller who withheld
# the number.
WITHHELD_MARKERS = frozenset(
    {"anonymous", "restricted", "private", "unknown", "withheld", "blocked", "unavailable", "no caller id"}
)
MESSAGE_KINDS = {kind.casefold(): kind for kind in MessageKind.values} | {"text": MessageKind.SMS.value}


# A number field with none of these is no number a caller could have: refused as input.
_DIALABLE = re.compile(r"\+?[\d\s().*#-]{1,32}")


def number_without_e164(raw: str) -> bool:
    """Whether `raw`, which is no possible phone number, is still one real traffic carries:
    a withheld caller's marker ("anonymous", "Restricted") or a short dialable string (a
    short code, an emergency number, an extension). Such a call or message is accepted and
    left to `placeholder_refusal`; anything else ("call me") is bad input."""
    text = " ".join((raw or "").split())
    if text.casefold() in WITHHELD_MARKERS:
        return True
    return bool(_DIALABLE.fullmatch(text)) and any(char.isdigit() for char in text)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why no placeholder: the condition, the value that met it, and a sentence."""

    condition: PlaceholderRefusal
    value: Any
    reason: str

    def record(self) -> dict[str, Any]:
        """The keys a decision records (see `contact_decide`)."""
        return {
            "placeholderRefused": self.condition.value,
            "placeholderRefusedValue": self.value,
            "reason": self.reason,
        }


def _parsed(phone_number: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(phone_number, None) if phone_number else None
    except phonenumbers.NumberParseException:
        return None


def _parsed_in(raw: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None


def _normalized(raw: str) -> str:
    try:
        return phone_number_normalize(raw)
    except InvalidPhoneNumber:
        return ""


def _number_refusal(
    *, phone_number: str, raw_number: str, caller_id_name: str, traffic: LogTraffic
) -> Refusal | None:
    """The exclusion a number meets (withheld, emergency, extension, short code, own
    number), if any; `phone_number` is the E.164 one ("" when the request had none)."""
    raw = (raw_number or "").strip()
    digits = re.sub(r"\D", "", raw)
    parsed = _parsed(phone_number)
    valid = parsed is not None and phonenumbers.is_valid_number(parsed)
    party = traffic.party
    name = " ".join((caller_id_name or "").split()).casefold()
    if not raw:
        if party.get("extensionNumber") or party.get("extensionId"):
            return Refusal(
                PlaceholderRefusal.EXTENSION, str(party.get("extensionNumber") or ""), "an internal extension"
            )
        return Refusal(PlaceholderRefusal.WITHHELD, "", "the caller withheld the number (none given)")
    if (
        raw.casefold() in WITHHELD_MARKERS
        or set(digits) <= {"0"}
        or (parsed is not None and not parsed.national_number)
    ):
        return Refusal(PlaceholderRefusal.WITHHELD, raw, f"the caller withheld the number ('{raw}')")
    if name in WITHHELD_MARKERS and not valid:
        return Refusal(
            PlaceholderRefusal.WITHHELD,
            caller_id_name,
            f"the caller withheld the number ('{caller_id_name}')",
        )
    # A bare number of a few digits ("911", "24273", "101") is read in the default region.
    bare = not raw.startswith("+") and digits == raw and len(raw) <= 6
    region = connector_settings.DEFAULT_PHONE_REGION
    if parsed is None and bare:
        parsed = _parsed_in(raw, region)
    elif parsed is not None:
        region = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    national = str(parsed.national_number) if parsed is not None else ""
    if national and phonenumbers.shortnumberinfo.is_emergency_number(national, region):
        return Refusal(PlaceholderRefusal.EMERGENCY, raw, f"{raw} is an emergency number")
    if party.get("extensionNumber") or party.get("extensionId"):
        return Refusal(PlaceholderRefusal.EXTENSION, raw, f"{raw} is an internal extension")
    if parsed is not None and not valid:
        # A bare number phonenumbers knows only as a carrier's own ("4321") is more likely
        # one of our extensions; either way it gets no placeholder.
        short_code = phonenumbers.shortnumberinfo.is_valid_short_number(parsed) and not (
            bare and phonenumbers.shortnumberinfo.is_carrier_specific(parsed)
        )
        if short_code or (not bare and len(national) <= 6):
            return Refusal(PlaceholderRefusal.SHORT_CODE, raw, f"{raw} is a short code")
    if bare and len(raw) >= 3:
        return Refusal(PlaceholderRefusal.EXTENSION, raw, f"{raw} is an internal extension")
    if phone_number and any(_normalized(own) == phone_number for own in traffic.own_numbers if own):
        return Refusal(
            PlaceholderRefusal.OWN_NUMBER, phone_number, f"{phone_number} is the agent's own number"
        )
    return None


def _blocked_refusal(*, rules: RuleValues, phone_number: str) -> Refusal | None:
    for entry in rules.blocked:
        if phone_number == entry.number or (
            entry.kind == BlockedNumberKind.PREFIX and phone_number.startswith(entry.number)
        ):
            what = "prefix " if entry.kind == BlockedNumberKind.PREFIX else ""
            scope = "the account's" if entry.scope == "account" else "the site-wide"
            return Refusal(
                PlaceholderRefusal.BLOCK_LIST, entry.number, f"{what}{entry.number} is on {scope} block list"
            )
    return None


def _scope_refusal(*, rules: RuleValues, traffic: LogTraffic) -> Refusal | None:
    """The call-kind condition (message type, direction, result, duration) that leaves
    this call or message out, if any."""
    if traffic.kind == "message":
        for message_type in traffic.message_types or ("SMS",):
            kind = MESSAGE_KINDS.get((message_type or "SMS").casefold(), message_type)
            if kind not in rules.placeholder_message_types:
                return Refusal(
                    PlaceholderRefusal.MESSAGE_TYPE,
                    message_type,
                    f"{message_type} messages create no placeholder",
                )
    direction = (traffic.direction or "").casefold()
    if direction not in rules.placeholder_directions and set(rules.placeholder_directions) != {
        "inbound",
        "outbound",
    }:
        shown = traffic.direction or "unknown"
        return Refusal(
            PlaceholderRefusal.DIRECTION, traffic.direction, f"{shown} {traffic.kind}s create no placeholder"
        )
    if traffic.kind != "call":
        return None
    kind = call_result_kind(traffic.result)
    if kind not in rules.placeholder_call_results:
        return Refusal(
            PlaceholderRefusal.CALL_RESULT,
            traffic.result,
            f"calls with result '{traffic.result}' ({kind}) create no placeholder",
        )
    minimum = rules.placeholder_min_duration_seconds
    if minimum and (traffic.duration_seconds is None or traffic.duration_seconds < minimum):
        if traffic.duration_seconds is None:
            reason = f"the call's duration is not known and the minimum is {minimum}s"
        else:
            reason = f"the call lasted {traffic.duration_seconds}s, under the minimum of {minimum}s"
        return Refusal(PlaceholderRefusal.MIN_DURATION, traffic.duration_seconds, reason)
    return None


def placeholder_refusal(
    *, rules: RuleValues, phone_number: str, raw_number: str, caller_id_name: str, traffic: LogTraffic
) -> Refusal | None:
    """Why the rules may not create a placeholder for this call or message, or None when
    they may. The first condition of `PlaceholderRefusal`'s order that applies wins: the
    number's exclusions, the block list, then the call-kind settings. Reads nothing but
    `rules` (the block list comes with it, cached)."""
    return (
        _number_refusal(
            phone_number=phone_number, raw_number=raw_number, caller_id_name=caller_id_name, traffic=traffic
        )
        or (_blocked_refusal(rules=rules, phone_number=phone_number) if phone_number else None)
        or _scope_refusal(rules=rules, traffic=traffic)
    )


# --- the decision ----------------------------------------------------------------------------


def _log_contact(contact: JsonDict, raw_number: str) -> LogContact:
    return LogContact(
        id=str(contact.get("id")),
        phone_number=raw_number,
        type=str(contact.get("type") or ""),
        name=str(contact.get("name") or ""),
    )


def _policy_choose(contacts: list[JsonDict], policy: str) -> tuple[JsonDict | None, str]:
    """The contact a multiple-match policy picks, or None and why it cannot decide."""
    if policy == MultipleMatchPolicy.PROMPT:
        return None, "the policy leaves it to the user"
    if policy == MultipleMatchPolicy.ALPHABETICAL:
        keyed = sorted(contacts, key=lambda c: str(c.get("name") or "").casefold())
        first, second = (str(keyed[i].get("name") or "").casefold() for i in (0, 1))
        return (keyed[0], "") if first != second else (None, "two contacts share the first name")
    field_name = "mostRecentActivityDate" if policy == MultipleMatchPolicy.LAST_UPDATED else "createdDate"
    if any(not c.get(field_name) for c in contacts):
        return None, f"not every matching contact has a {field_name}"
    reverse = policy == MultipleMatchPolicy.LAST_UPDATED
    keyed = sorted(contacts, key=lambda c: str(c[field_name]), reverse=reverse)
    if keyed[0][field_name] == keyed[1][field_name]:
        return None, f"two contacts share the same {field_name}"
    return keyed[0], ""


def contact_decide(
    *,
    user: CrmUser,
    client: CrmClient,
    phone_number: str,
    raw_number: str,
    given_contact: LogContact | None,
    caller_id_name: str = "",
    traffic: LogTraffic | None = None,
) -> ContactDecision:
    """Decide the contact for a log of a call or message with `phone_number` (E.164).

    A contact named in the request wins (the manual flow). Otherwise the number is looked
    up (never creating anything), whatever the contact type; one match is used; several
    go to the multiple-match policy; none goes to the unknown-contact rule, which leaves
    it to the user (`prompt`, the default) or creates (or reuses) one placeholder contact
    for the number, unless `placeholder_refusal` says this traffic may not have one: then
    it is left to the user, and the decision records `placeholderRefused` (the condition,
    `rules.choices.PlaceholderRefusal`), `placeholderRefusedValue` and `reason`.
    May call the CRM (lookup, contact creation) and write the placeholder registry.
    """
    traffic = traffic or LogTraffic(kind="call")
    if given_contact is not None:
        found = placeholders_in_scope(user=user, contact_id=given_contact.id) if given_contact.id else []
        placeholder = found[0] if found else None
        return ContactDecision(
            outcome=DecisionOutcome.GIVEN,
            decided_by=DecidedBy.USER,
            contact=given_contact,
            is_placeholder=placeholder is not None,
            placeholder=placeholder,
        )
    rules = rule_values_get(user=user)
    snapshot: dict[str, Any] = {"phoneNumber": phone_number, "rules": rules.snapshot()}
    not_found = return_message(f"Contact not found for number {raw_number}")
    creates = rules.unknown_contact_action == UnknownContactAction.CREATE_PLACEHOLDER
    if not phone_number:
        snapshot["reason"] = "no phone number to look up"
        refusal = (
            _number_refusal(
                phone_number="", raw_number=raw_number, caller_id_name=caller_id_name, traffic=traffic
            )
            if creates
            else None
        )
        if refusal is not None:
            snapshot.update(refusal.record())
        return ContactDecision(
            outcome=DecisionOutcome.PROMPTED,
            decided_by=DecidedBy.RULE,
            return_message=not_found,
            snapshot=snapshot,
        )
    try:
        lookup = client.find_contact(
            user=user, phone_number=phone_number, overriding_format="", is_extension=False
        )
    except CrmError as exc:
        snapshot["error"] = str(exc)
        return ContactDecision(
            outcome=DecisionOutcome.FAILED,
            decided_by=DecidedBy.RULE,
            return_message=crm_failure_message(operation="findContact", error=exc, platform=user.platform),
            snapshot=snapshot,
        )
    matches = real_contacts(lookup.contacts)
    snapshot["matches"] = len(matches)
    ours = _placeholders_of_number(user=user, phone_number=phone_number) if matches else {}
    others = [m for m in matches if str(m.get("id")) not in ours]
    if ours and not others:
        return _placeholder_matched(
            ours=ours,
            matches=matches,
            raw_number=raw_number,
            snapshot=snapshot,
            policy=rules.multiple_match_policy,
        )
    if ours:
        # A real contact for the number: new logs go to it, never to our placeholder.
        snapshot["placeholderMatches"] = len(matches) - len(others)
        matches = others
    if len(matches) == 1:
        _placeholders_supersede(ours=ours, by=matches[0], returned=lookup.contacts or [], snapshot=snapshot)
        return ContactDecision(
            outcome=DecisionOutcome.MATCHED,
            decided_by=DecidedBy.RULE,
            contact=_log_contact(matches[0], raw_number),
            snapshot=snapshot,
        )
    if len(matches) > 1:
        chosen, why = _policy_choose(matches, rules.multiple_match_policy)
        if chosen is not None:
            snapshot["policy"] = rules.multiple_match_policy
            _placeholders_supersede(ours=ours, by=chosen, returned=lookup.contacts or [], snapshot=snapshot)
            return ContactDecision(
                outcome=DecisionOutcome.MULTIPLE_RESOLVED,
                decided_by=DecidedBy.RULE,
                contact=_log_contact(chosen, raw_number),
                snapshot=snapshot,
            )
        snapshot["reason"] = why
        return ContactDecision(
            outcome=DecisionOutcome.PROMPTED,
            decided_by=DecidedBy.RULE,
            return_message=return_message(
                f"Multiple contacts found for number {raw_number}",
                details=details_text(f"Please choose the contact to log against: {why}."),
            ),
            snapshot=snapshot,
        )
    if not creates:
        snapshot["reason"] = "the unknown-contact rule leaves it to the user"
        return ContactDecision(
            outcome=DecisionOutcome.PROMPTED,
            decided_by=DecidedBy.RULE,
            return_message=not_found,
            snapshot=snapshot,
        )
    refusal = placeholder_refusal(
        rules=rules,
        phone_number=phone_number,
        raw_number=raw_number,
        caller_id_name=caller_id_name,
        traffic=traffic,
    )
    if refusal is not None:
        snapshot.update(refusal.record())
        return ContactDecision(
            outcome=DecisionOutcome.PROMPTED,
            decided_by=DecidedBy.RULE,
            return_message=not_found,
            snapshot=snapshot,
        )
    return placeholder_obtain(
        user=user,
        client=client,
        rules=rules,
        phone_number=phone_number,
        raw_number=raw_number,
        caller_id_name=caller_id_name,
        snapshot=snapshot,
        traffic=traffic,
    )


# --- the placeholder's life ---------------------------------------------------------------------
#
# event                                              -> life        recorded
# created by a rule                                  -> open
# "Create new contact..." for its number (any user)  -> named       named_as, named_at
# a lookup returns it under another name             -> named       named_as, named_at
# a lookup finds another contact the rules choose    -> superseded  superseded_by, superseded_at
#   (whether or not the placeholder is still returned: the CRM may have merged it away)
# a lookup finds nothing                             -> unchanged   (the CRM's search may lag)
# a lookup finds nothing, and the number's           -> a new placeholder (open) takes over,
#   placeholder is superseded                           `replaces` linking it to the old one
# A superseded row stays as history: the contact that superseded it was found by a lookup,
# so one that no longer finds it means it is gone (deleted, or merged away), and the number
# is unknown again; the old placeholder, not found either, is no contact to log against.
# One live (not superseded) rule-made row per number holds under concurrency (the
# registry's constraint). Logs already written stay where they are; an admin may move
# them to the real contact where the connector can (`placeholder_logs_relink`).


def _placeholders_of_number(*, user: CrmUser, phone_number: str) -> dict[str, PlaceholderContact]:
    """The rule-made placeholders of `phone_number` in the user's scope, ready, by CRM
    contact id (superseded ones too: the CRM may still return them, and they must not
    count as real contacts)."""
    rows = placeholders_in_scope(user=user, phone_number=phone_number, by_rule_only=True)
    return {row.contact_id: row for row in rows}


def _placeholder_matched(
    *,
    ours: dict[str, PlaceholderContact],
    matches: list[JsonDict],
    raw_number: str,
    snapshot: dict[str, Any],
    policy: str,
) -> ContactDecision:
    """The lookup found only our placeholder: log against it, and record a name the CRM
    now shows for it (`named`)."""
    unsuperseded = [m for m in matches if ours[str(m.get("id"))].life != PlaceholderLife.SUPERSEDED]
    matches = unsuperseded or matches  # the placeholder that took over from a superseded one
    match = matches[0]
    if len(matches) > 1:  # our placeholders of two scopes: the policy's, else the oldest
        match = _policy_choose(matches, policy)[0] or min(matches, key=lambda c: ours[str(c.get("id"))].pk)
    row = ours[str(match.get("id"))]
    shown = " ".join(str(match.get("name") or "").split())[:255]
    live = row.life != PlaceholderLife.SUPERSEDED
    if live and shown and shown != (row.named_as or row.contact_name):
        now = timezone.now()
        reason = f"the CRM shows it as '{shown}'"
        PlaceholderContact.objects.filter(pk=row.pk).exclude(life=PlaceholderLife.SUPERSEDED).update(
            life=PlaceholderLife.NAMED, named_as=shown, named_at=now, life_reason=reason
        )
        snapshot["placeholderNamed"] = shown
    snapshot["placeholderId"] = row.pk
    return ContactDecision(
        outcome=DecisionOutcome.MATCHED,
        decided_by=DecidedBy.RULE,
        contact=_log_contact(match, raw_number),
        is_placeholder=True,
        placeholder=row,
        snapshot=snapshot,
    )


def _placeholders_supersede(
    *, ours: dict[str, PlaceholderContact], by: JsonDict, returned: list[JsonDict], snapshot: dict[str, Any]
) -> None:
    """Record that the real contact `by` took the place of our placeholders of the number
    (`superseded`), and say so in the decision. Each row changes once, whoever gets there
    first."""
    rows = [row for row in ours.values() if row.life != PlaceholderLife.SUPERSEDED]
    if not rows:
        return
    now = timezone.now()
    contact_id = str(by.get("id"))[:255]
    returned_ids = {str(c.get("id")) for c in returned}
    for row in rows:
        if row.contact_id in returned_ids:
            reason = f"a real contact for the number was found: {contact_id}"
        else:
            reason = f"the CRM no longer returns it; contact {contact_id} has the number"
        PlaceholderContact.objects.filter(pk=row.pk).exclude(life=PlaceholderLife.SUPERSEDED).update(
            life=PlaceholderLife.SUPERSEDED,
            superseded_by=contact_id,
            superseded_at=now,
            life_reason=reason[:255],
        )
    snapshot["placeholderSuperseded"] = {
        "placeholderIds": [row.pk for row in rows],
        "by": contact_id,
    }


def _named_by_user(*, row: PlaceholderContact, name: str) -> RowUpdate:
    """A user created a contact named `name` for the number of the registry row `row`
    ("Create new contact..."): the rule's open placeholder of that number, if any, is
    `named` (a later lookup that finds the user's contact supersedes it). Recorded with
    `row`'s own outcome (`update_where_each`), never on `row` itself: a user decided it.

    Hand-written (connector.db) like that outcome: it runs on every "Create new
    contact...", and building the same UPDATE through the ORM was a third of that route's
    CPU (bench/profile.py)."""
    return RowUpdate(
        values={
            "life": PlaceholderLife.NAMED,
            "named_as": name[:255],
            "named_at": timezone.now(),
            "life_reason": f"a user created the contact '{name}' for its number"[:255],
        },
        where={
            "scope_key": row.scope_key,
            "platform": row.platform,
            "phone_number": row.phone_number,
            "decided_by": DecidedBy.RULE,
            "life": PlaceholderLife.OPEN,
        },
    )


# --- the placeholder registry -----------------------------------------------------------------


def _scope_key(user: CrmUser, account: Account | None) -> str:
    return f"acct:{account.account_key}" if account is not None else f"user:{user.pk}"


def _placeholder_name_and_type(
    *, client: CrmClient, rules: RuleValues, phone_number: str, caller_id_name: str, traffic: LogTraffic
) -> tuple[str, str, dict[str, Any]]:
    types = client.contact_type_values()
    contact_type = rules.placeholder_contact_type
    why: dict[str, Any] = {}
    if contact_type not in types:
        if contact_type:
            why["contactTypeFallback"] = f"{contact_type!r} is not a contact type of {client.platform}"
        contact_type = types[0] if types else ""
    name = ""
    usable, reason = caller_id_name_usable(caller_id_name, phone_number=phone_number)
    caller_id = " ".join(caller_id_name.split())[:255] if usable else ""
    if rules.placeholder_name_source == PlaceholderNameSource.CALLER_ID_THEN_DEFAULT:
        if usable:
            name, why["nameSource"] = caller_id, "caller ID"
        else:
            why["callerIdRejected"] = reason
    if not name:
        template, source = placeholder_template_for(rules=rules, contact_type=contact_type)
        name = (
            template_render(
                template,
                phone_number=phone_number,
                caller_id=caller_id,
                direction=traffic.direction,
                day=traffic.day or timezone.now().date(),
            )[:255]
            or BUILTIN_PLACEHOLDER_NAME
        )
        why["nameSource"] = f"default name ({source})"
        why["template"] = template
    return name, contact_type, why


def _placeholder_claim(
    *,
    user: CrmUser,
    account: Account | None,
    phone_number: str,
    snapshot: dict[str, Any],
    replaces: PlaceholderContact | None,
) -> tuple[PlaceholderContact | None, bool]:
    """Insert the number's live registry row as creating (True), else read the one another
    request inserted (False); None when that one was superseded meanwhile (claim again)."""
    key = {
        "scope_key": _scope_key(user, account),
        "platform": user.platform,
        "phone_number": phone_number,
        "decided_by": DecidedBy.RULE,
    }
    took_over = {}
    if replaces is not None:
        took_over = {
            "replaces": replaces,
            "life_reason": (
                f"took over from placeholder #{replaces.pk}: contact {replaces.superseded_by}, which "
                "superseded it, is no longer found for the number"
            )[:255],
        }
    try:
        with transaction.atomic():
            return (
                PlaceholderContact.objects.create(
                    **key,
                    **took_over,
                    account=account,
                    created_by=user,
                    rule_snapshot=snapshot,
                    status=PlaceholderStatus.CREATING,
                ),
                True,
            )
    except IntegrityError:
        live = PlaceholderContact.objects.exclude(life=PlaceholderLife.SUPERSEDED)
        return live.filter(**key).first(), False


def _placeholder_take_over(row: PlaceholderContact, *, from_status: str, stale: bool = False) -> bool:
    """Claim a failed (or stale) creation for this request; False if another got it."""
    queryset = PlaceholderContact.objects.filter(pk=row.pk, status=from_status)
    if stale:
        queryset = queryset.filter(updated_at__lt=timezone.now() - _placeholder_stale_after())
    return bool(queryset.update(status=PlaceholderStatus.CREATING, updated_at=timezone.now()))


def _reused(row: PlaceholderContact, raw_number: str, snapshot: dict[str, Any]) -> ContactDecision:
    snapshot["placeholderId"] = row.pk
    return ContactDecision(
        outcome=DecisionOutcome.PLACEHOLDER_REUSED,
        decided_by=DecidedBy.RULE,
        contact=LogContact(
            id=row.contact_id, phone_number=raw_number, type=row.contact_type, name=row.contact_name
        ),
        is_placeholder=True,
        placeholder=row,
        snapshot=snapshot,
    )


def placeholder_obtain(
    *,
    user: CrmUser,
    client: CrmClient,
    rules: RuleValues,
    phone_number: str,
    raw_number: str,
    caller_id_name: str,
    snapshot: dict[str, Any],
    traffic: LogTraffic | None = None,
) -> ContactDecision:
    """The placeholder contact for an unknown number: reused when one exists, else created
    by exactly one request while concurrent ones wait for it and reuse it.

    A superseded placeholder is never reused, nor the contact that superseded it (the
    lookup no longer finds it): the new placeholder takes over from the newest superseded
    one of the scope (`replaces`), and the decision records `replacesPlaceholder`.
    Writes the registry row (creating -> ready or failed) and calls the CRM's
    `create_contact` at most once per number at a time.
    """
    account = account_get_for_user(user=user)
    scope_key = _scope_key(user, account)
    rows = placeholders_in_scope(user=user, phone_number=phone_number)
    # A superseded placeholder is history, and so is the contact that superseded it: the
    # lookup that found that contact no longer does (deleted, or merged away in the CRM).
    gone = {row.superseded_by for row in rows if row.life == PlaceholderLife.SUPERSEDED}
    live = [row for row in rows if row.life != PlaceholderLife.SUPERSEDED and row.contact_id not in gone]
    if live:
        # a contact a user made for the number before a rule's placeholder: it is the
        # one a lookup would let supersede the placeholder
        earlier = min(live, key=lambda row: (row.decided_by == DecidedBy.RULE, row.pk))
        return _reused(earlier, raw_number, snapshot)
    replaces = max(
        (
            row
            for row in rows
            if row.life == PlaceholderLife.SUPERSEDED
            and row.decided_by == DecidedBy.RULE
            and row.scope_key == scope_key
        ),
        key=lambda row: row.pk,
        default=None,
    )
    if replaces is not None:
        snapshot["replacesPlaceholder"] = {
            "placeholderId": replaces.pk,
            "supersededBy": replaces.superseded_by,
        }
    deadline = time.monotonic() + PLACEHOLDER_WAIT_SECONDS
    pause = 0.02
    while True:
        row, claimed = _placeholder_claim(
            user=user, account=account, phone_number=phone_number, snapshot=snapshot, replaces=replaces
        )
        if row is None:
            continue
        if not claimed:
            if row.status == PlaceholderStatus.READY:
                return _reused(row, raw_number, snapshot)
            claimed = (
                row.status == PlaceholderStatus.FAILED
                and _placeholder_take_over(row, from_status=PlaceholderStatus.FAILED)
            ) or _placeholder_take_over(row, from_status=PlaceholderStatus.CREATING, stale=True)
        if claimed:
            return _placeholder_create(
                row=row,
                user=user,
                client=client,
                rules=rules,
                phone_number=phone_number,
                raw_number=raw_number,
                caller_id_name=caller_id_name,
                snapshot=snapshot,
                traffic=traffic or LogTraffic(kind="call"),
            )
        if time.monotonic() >= deadline:
            snapshot["reason"] = "another request is still creating the placeholder"
            return ContactDecision(
                outcome=DecisionOutcome.FAILED,
                decided_by=DecidedBy.RULE,
                return_message=return_message(
                    "A contact for this number is still being created. Please try again."
                ),
                snapshot=snapshot,
            )
        connection_release_while_waiting()
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def _placeholder_create(
    *,
    row: PlaceholderContact,
    user: CrmUser,
    client: CrmClient,
    rules: RuleValues,
    phone_number: str,
    raw_number: str,
    caller_id_name: str,
    snapshot: dict[str, Any],
    traffic: LogTraffic,
) -> ContactDecision:
    name, contact_type, why = _placeholder_name_and_type(
        client=client, rules=rules, phone_number=phone_number, caller_id_name=caller_id_name, traffic=traffic
    )
    snapshot.update(why)
    snapshot["placeholderId"] = row.pk
    result = contact_create(
        user=user,
        client=client,
        phone_number=phone_number,
        name=name,
        contact_type=contact_type,
        additional_submission={},
    )
    now = timezone.now()
    attempts = row.attempts + 1
    if result.contact is None or not result.contact.get("id"):
        error = str((result.return_message or {}).get("message") or "The CRM created no contact.")
        PlaceholderContact.objects.filter(pk=row.pk).update(
            status=PlaceholderStatus.FAILED,
            last_error=error,
            attempts=attempts,
            updated_at=now,
            rule_snapshot=snapshot,
        )
        snapshot["error"] = error
        return ContactDecision(
            outcome=DecisionOutcome.FAILED,
            decided_by=DecidedBy.RULE,
            return_message=result.return_message or return_message(error),
            snapshot=snapshot,
        )
    contact = result.contact
    values = {
        "contact_id": str(contact["id"])[:255],
        "contact_name": str(contact.get("name") or name)[:255],
        "contact_type": str(contact.get("type") or contact_type)[:64],
    }
    PlaceholderContact.objects.filter(pk=row.pk).update(
        status=PlaceholderStatus.READY,
        last_error="",
        attempts=attempts,
        updated_at=now,
        rule_snapshot=snapshot,
        **values,
    )
    for attribute, value in values.items():
        setattr(row, attribute, value)
    row.status = PlaceholderStatus.READY
    return ContactDecision(
        outcome=DecisionOutcome.PLACEHOLDER_CREATED,
        decided_by=DecidedBy.RULE,
        contact=LogContact(
            id=values["contact_id"],
            phone_number=raw_number,
            type=values["contact_type"],
            name=values["contact_name"],
        ),
        is_placeholder=True,
        placeholder=row,
        snapshot=snapshot,
    )


# A repeated "Create new contact..." (same user, number, name and type) within this window
# gets the contact the first one created, whether that request answered or died: a client
# retries a request whose answer it lost, and a second identical contact is never meant.
MANUAL_REPLAY_WINDOW = timedelta(minutes=10)


def placeholder_contact_create_manual(
    *,
    user: CrmUser,
    client: CrmClient,
    phone_number: str,
    name: str,
    contact_type: str,
    additional_submission: JsonDict,
) -> tuple[JsonDict | None, JsonDict | None]:
    """POST /contact: the user's "Create new contact...". Creates the contact in the CRM,
    recorded in the placeholder registry (decided by the user).

    The registry row is claimed before the CRM is asked, so the request is safe to repeat
    (see MANUAL_REPLAY_WINDOW): a repeat gets the contact already made; one that finds the
    first request dead (its row stale) or failed looks the number up in the CRM before
    creating, and takes the contact that request left there. A repeat while the first is
    still at work waits for it. Returns the CRM's contact (None on failure) and its
    `returnMessage`.
    """
    account = account_get_for_user(user=user)
    key = {
        "scope_key": _scope_key(user, account),
        "platform": user.platform,
        "phone_number": phone_number,
        "created_by": user,
        "decided_by": DecidedBy.USER,
        "contact_name": name[:255],
        "contact_type": contact_type[:64],
    }
    since = timezone.now() - MANUAL_REPLAY_WINDOW
    deadline = time.monotonic() + min(PLACEHOLDER_WAIT_SECONDS, connector_settings.LOG_LEASE_SECONDS)
    pause = 0.02
    while True:
        pk = _manual_claim(key=key, account=account, since=since)
        if pk is not None:
            row = PlaceholderContact(pk=pk, **key, account=account, status=PlaceholderStatus.CREATING)
            return _manual_create(row, user=user, client=client, additional_submission=additional_submission)
        earlier = PlaceholderContact.objects.filter(**key, created_at__gte=since).order_by("-id").first()
        if earlier is None:  # deleted meanwhile: claim again
            continue
        if earlier.status == PlaceholderStatus.READY:
            contact = {"id": earlier.contact_id, "name": earlier.contact_name, "type": earlier.contact_type}
            return contact, return_message("Contact created.", message_type="success", ttl=2000)
        if _placeholder_take_over(earlier, from_status=PlaceholderStatus.FAILED) or _placeholder_take_over(
            earlier, from_status=PlaceholderStatus.CREATING, stale=True
        ):
            found = _manual_found_in_crm(earlier, user=user, client=client)
            if found is not None:
                return found, return_message("Contact created.", message_type="success", ttl=2000)
            return _manual_create(
                earlier, user=user, client=client, additional_submission=additional_submission
            )
        if time.monotonic() >= deadline:
            return None, return_message("A contact for this number is still being created. Please try again.")
        connection_release_while_waiting()
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def _manual_claim(*, key: dict[str, Any], account: Account | None, since: datetime) -> int | None:
    """Insert the registry row of a "Create new contact..." as creating, unless the same
    one was asked for since `since`: one statement, the usual case of POST /contact (the
    ORM's lookup and insert were half of the route's CPU, bench/profile.py). Returns the
    new row's id, or None when an earlier one exists."""
    table = connection.ops.quote_name(PlaceholderContact._meta.db_table)
    created_at = PlaceholderContact._meta.get_field("created_at").get_db_prep_value(since, connection)
    same = (
        f"SELECT 1 FROM {table} WHERE scope_key = %s AND platform = %s AND phone_number = %s"  # noqa: S608
        " AND created_by_id = %s AND decided_by = %s AND contact_name = %s AND contact_type = %s"
        " AND created_at >= %s"
    )
    params = [
        key["scope_key"],
        key["platform"],
        key["phone_number"],
        key["created_by"].pk,
        key["decided_by"],
        key["contact_name"],
        key["contact_type"],
        created_at,
    ]
    row = with_defaults(
        PlaceholderContact,
        {
            **key,
            "created_by": key["created_by"].pk,
            "account": account.pk if account else None,
            "status": PlaceholderStatus.CREATING,
            # a contact a user named is named from the start
            "life": PlaceholderLife.NAMED,
            "named_as": key["contact_name"],
        },
    )
    return insert_returning_pk(
        PlaceholderContact, row, condition=f"NOT EXISTS ({same})", condition_params=params
    )


def _manual_create(
    row: PlaceholderContact, *, user: CrmUser, client: CrmClient, additional_submission: JsonDict
) -> tuple[JsonDict | None, JsonDict | None]:
    """Create the claimed row's contact in the CRM and record the outcome on the row."""
    result = contact_create(
        user=user,
        client=client,
        phone_number=row.phone_number,
        name=row.contact_name,
        contact_type=row.contact_type,
        additional_submission=additional_submission,
    )
    contact = result.contact
    if contact is not None and contact.get("id"):
        outcome: dict[str, Any] = {
            "status": PlaceholderStatus.READY,
            "last_error": "",
            "contact_id": str(contact["id"])[:255],
        }
    else:
        contact = None
        error = str((result.return_message or {}).get("message") or "The CRM created no contact.")
        outcome = {"status": PlaceholderStatus.FAILED, "last_error": error}
    # Hand-written for the same reason as `_manual_claim`; with the rule's placeholder of
    # the number named in the same statement on PostgreSQL (one round trip, one commit).
    outcome["updated_at"] = timezone.now()
    updates = [RowUpdate(outcome, where={"id": row.pk}, increment="attempts")]
    if contact is not None:
        updates.append(_named_by_user(row=row, name=row.contact_name))
    update_where_each(PlaceholderContact, updates)
    return contact, result.return_message


def _manual_found_in_crm(row: PlaceholderContact, *, user: CrmUser, client: CrmClient) -> JsonDict | None:
    """The contact an interrupted "Create new contact..." left in the CRM (the newest with
    the row's number and name), recorded on the row; None when there is none."""
    try:
        lookup = client.find_contact(
            user=user, phone_number=row.phone_number, overriding_format="", is_extension=False
        )
    except CrmError:
        return None
    named = [c for c in real_contacts(lookup.contacts) if str(c.get("name") or "") == row.contact_name]
    if not named:
        return None
    contact = max(named, key=lambda c: (str(c.get("createdDate") or ""), str(c.get("id"))))
    outcome = {
        "status": PlaceholderStatus.READY,
        "contact_id": str(contact["id"])[:255],
        "last_error": "",
        "updated_at": timezone.now(),
    }
    update_where_each(
        PlaceholderContact,
        [RowUpdate(outcome, where={"id": row.pk}), _named_by_user(row=row, name=row.contact_name)],
    )
    return {
        "id": str(contact["id"]),
        "name": row.contact_name,
        "type": str(contact.get("type") or row.contact_type),
    }


# --- moving a superseded placeholder's logs ----------------------------------------------------

# One admin action moves at most this many CRM activities (each is a CRM call, made while
# the admin waits); the rest stay for the next run, which picks up where this one stopped.
RELINK_BATCH_LIMIT = 200


@dataclass(slots=True)
class RelinkSummary:
    """What `placeholder_logs_relink` did, in logs (a conversation's messages share one
    activity, and count each)."""

    moved: int = 0
    failed: int = 0
    left: int = 0  # not tried: over RELINK_BATCH_LIMIT
    unavailable: dict[str, int] = field(default_factory=dict)  # why not -> placeholders
    errors: dict[str, int] = field(default_factory=dict)  # CRM error -> logs


def placeholder_logs_relink(*, placeholder_ids: list[int], admin: str) -> RelinkSummary:
    """Move the logged calls and messages still hanging on these superseded placeholders
    to the real contact that superseded each (`superseded_by`), in the CRM and here.

    An admin's action: for each CRM activity, the connector's `relink_activity` (outside
    any transaction), then the log rows that share it get the new contact (no longer a
    placeholder contact; the link to the registry row stays, as history) and a `relinked`
    event naming `admin`, in one transaction, only if no one moved them meanwhile. A CRM
    failure leaves the rows as they were, with a `crm_failed` event. Placeholders that are
    not superseded, or whose connector cannot move activities, are left alone. Deletes
    nothing, in the CRM or here: the placeholder contact stays in the CRM for the admin.
    """
    from logs.choices import EventKind, LogStatus
    from logs.models import CallLog, LogEvent, MessageLog
    from rules.selectors import placeholder_relink_plans

    summary = RelinkSummary()
    budget = RELINK_BATCH_LIMIT
    for plan in placeholder_relink_plans(placeholder_ids=placeholder_ids):
        if plan.unavailable:
            summary.unavailable[plan.unavailable] = summary.unavailable.get(plan.unavailable, 0) + 1
            continue
        placeholder = plan.placeholder
        client = crm_registry.get(placeholder.platform)
        for kind, model in (("call", CallLog), ("message", MessageLog)):
            rows = list(
                model.objects.filter(
                    placeholder_id=placeholder.pk, status=LogStatus.LOGGED, contact_id=placeholder.contact_id
                )
                .exclude(crm_log_id="")
                .select_related("user")
                .order_by("id")
            )
            activities: dict[str, list[Any]] = {}
            for row in rows:
                activities.setdefault(row.crm_log_id, []).append(row)
            for crm_log_id, shared in activities.items():
                if budget <= 0:
                    summary.left += len(shared)
                    continue
                budget -= 1
                detail: dict[str, Any] = {
                    "by": "admin",
                    "admin": admin,
                    "placeholderId": placeholder.pk,
                    "fromContactId": placeholder.contact_id,
                    "fromContactName": placeholder.contact_name,
                    "toContactId": plan.to_contact_id,
                    "crmLogId": crm_log_id,
                }
                target = LogContact(
                    id=plan.to_contact_id,
                    phone_number=shared[0].phone_number,
                    type=plan.to_contact_type,
                    name=plan.to_contact_name,
                )
                try:
                    result = client.relink_activity(
                        user=shared[0].user, crm_log_id=crm_log_id, kind=kind, contact=target
                    )
                except CrmError as exc:
                    error = str(exc)
                    summary.failed += len(shared)
                    summary.errors[error] = summary.errors.get(error, 0) + len(shared)
                    failure = {**detail, "relink": True, "error": error, "status": exc.status_code}
                    LogEvent.objects.bulk_create(_relink_events(shared, EventKind.CRM_FAILED, failure))
                    continue
                name = result.contact_name or plan.to_contact_name
                detail.update(toContactId=result.contact_id, toContactName=name)
                with transaction.atomic():
                    still = list(
                        model.objects.select_for_update()
                        .filter(pk__in=[row.pk for row in shared], contact_id=placeholder.contact_id)
                        .values_list("pk", flat=True)
                    )
                    model.objects.filter(pk__in=still).update(
                        contact_id=result.contact_id[:255],
                        contact_name=name[:255],
                        contact_type=plan.to_contact_type[:64],
                        contact_is_placeholder=False,
                        updated_at=timezone.now(),
                    )
                    moved = [row for row in shared if row.pk in still]
                    LogEvent.objects.bulk_create(_relink_events(moved, EventKind.RELINKED, detail))
                summary.moved += len(moved)
    return summary


def _relink_events(rows: list[Any], kind: str, detail: dict[str, Any]) -> list[Any]:
    from logs.models import CallLog, LogEvent

    return [
        LogEvent(
            call_log_id=row.pk if isinstance(row, CallLog) else None,
            message_log_id=None if isinstance(row, CallLog) else row.pk,
            kind=kind,
            detail=detail,
        )
        for row in rows
    ]


# --- accounts and admin settings -------------------------------------------------------------


def rules_cache_clear() -> None:
    """Make every process read the rule tables again (see rules.selectors)."""
    try:
        cache.incr("rules:version")
    except ValueError:
        cache.set("rules:version", 2, None)


def _rules_changed() -> None:
    # Now, for this process, and again after commit, so no process caches what the
    # transaction replaced in between.
    rules_cache_clear()
    transaction.on_commit(rules_cache_clear)


def account_ensure(*, rc_account_id: str, name: str = "") -> Account:
    """The account with this raw RingCentral account id, created on first sight."""
    account, _ = Account.objects.get_or_create(
        rc_account_id=rc_account_id,
        defaults={"account_key": hash_value(rc_account_id), "name": name[:255]},
    )
    return account


def account_save(*, account: Account) -> Account:
    """Save an account edited in the admin; its hashed id always follows its raw id."""
    account.account_key = hash_value(account.rc_account_id)
    account.save()
    _rules_changed()
    return account


def contact_types_all() -> frozenset[str]:
    """Every contact type a connected CRM offers: the configured connectors' and the
    proxy connectors'."""
    from connector.selectors import proxy_connector_names

    return frozenset(
        value
        for platform in [*crm_registry.platforms(), *proxy_connector_names()]
        for value in crm_registry.get(platform).contact_type_values()
    )


def admin_settings_validate(settings: Any) -> dict[str, JsonDict]:
    """Check an admin's settings map; raise `InvalidInput` naming every bad key."""
    if not isinstance(settings, dict):
        raise InvalidInput({"adminSettings.userSettings": ["must be an object of settings"]})
    errors = settings_map_errors(settings, allow_unknown_keys=False, contact_types=contact_types_all())
    if errors:
        raise InvalidInput({f"adminSettings.userSettings.{k}".rstrip("."): v for k, v in errors.items()})
    return settings


# Entry keys stored in their own columns; the others go to RuleSetting.extra.
_ENTRY_COLUMNS = frozenset({"value", "customizable", "isRemoved", "isCustomizable"})


@transaction.atomic
def admin_settings_apply(*, rc_account_id: str, settings: dict[str, JsonDict]) -> Account:
    """POST /admin/settings: check the map, then create the account on first sight and
    replace its settings. Nothing is written unless all of it is valid."""
    admin_settings_validate(settings)
    account = account_ensure(rc_account_id=rc_account_id)
    account_settings_replace(account=account, settings=settings)
    return account


@transaction.atomic
def account_settings_replace(*, account: Account, settings: dict[str, JsonDict]) -> Account:
    """Replace the whole settings map of an account (App Connect replaces it as a whole).

    Validates everything first; writes nothing unless all of it is valid. Each row's
    change is kept in its history.
    """
    admin_settings_validate(settings)
    kept = set(settings)
    for row in RuleSetting.objects.filter(account=account).exclude(key__in=kept):
        row.delete()
    for key, entry in settings.items():
        RuleSetting.objects.update_or_create(
            account=account,
            key=key,
            defaults={
                "value": entry.get("value"),
                # An entry without `customizable` mandates its value, as in App Connect.
                "customizable": bool(entry.get("customizable", False)),
                "is_removed": bool(entry.get("isRemoved", False)),
                "extra": {k: v for k, v in entry.items() if k not in _ENTRY_COLUMNS},
            },
        )
    _rules_changed()
    return account


def rule_setting_clean(*, key: str, value: Any) -> Any:
    """Check one admin row's value for its key; raise `ValueError` saying why not."""
    parameter = PARAMETERS.get(key)
    if parameter is None:
        if key.startswith("plugin_"):
            return value
        raise ValueError("unknown setting")
    errors = settings_map_errors(
        {key: {"value": value}}, allow_unknown_keys=False, contact_types=contact_types_all()
    )
    if errors:
        raise ValueError(" ".join(message for messages in errors.values() for message in messages))
    return value


@transaction.atomic
def rule_setting_save(*, setting: RuleSetting) -> RuleSetting:
    """Save an admin's rule setting row (from the Django admin) after checking its value."""
    rule_setting_clean(key=setting.key, value=setting.value)
    setting.save()
    _rules_changed()
    return setting


def placeholder_name_errors(*, contact_type: str, template: str) -> dict[str, str]:
    """Problems of a default placeholder name, by field ("template", "contact_type")."""
    errors = {}
    try:
        template_validate(template)
    except ValueError as exc:
        errors["template"] = str(exc)
    types = contact_types_all()
    if contact_type not in types:
        errors["contact_type"] = f"must be one of the CRM's contact types: {', '.join(sorted(types))}"
    return errors


@transaction.atomic
def placeholder_name_save(*, name: PlaceholderNameTemplate) -> PlaceholderNameTemplate:
    """Save a per-contact-type default placeholder name after checking it renders."""
    errors = placeholder_name_errors(contact_type=name.contact_type, template=name.template)
    if errors:
        raise ValueError("; ".join(f"{field}: {message}" for field, message in errors.items()))
    name.save()
    _rules_changed()
    return name


_PREFIX_TEXT = re.compile(r"\+\d{1,14}")


def blocked_number_clean(*, kind: str, number: str) -> str:
    """A block-list entry's number as stored: a number (any format, read in the default
    region) in E.164, or a prefix as `+` and its digits, starting with a country code.
    Raises `ValueError` saying why not."""
    text = re.sub(r"[\s().-]", "", number or "")
    if kind == BlockedNumberKind.PREFIX:
        if not _PREFIX_TEXT.fullmatch(text):
            raise ValueError("a prefix is + and 1 to 14 digits, e.g. +1900")
        digits = text[1:]
        sizes = range(1, min(3, len(digits)) + 1)
        if not any(int(digits[:size]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE for size in sizes):
            raise ValueError(f"{text} starts with no country code")
        return text
    if kind != BlockedNumberKind.NUMBER:
        raise ValueError(f"must be one of: {', '.join(BlockedNumberKind.values)}")
    try:
        return phone_number_normalize(number)
    except InvalidPhoneNumber as exc:
        raise ValueError(str(exc)) from exc


@transaction.atomic
def blocked_number_save(*, entry: BlockedNumber) -> BlockedNumber:
    """Save a block-list entry (from the Django admin) with its number checked and stored
    in E.164; drops the rules cache. Raises `ValueError` when the number is not valid."""
    entry.number = blocked_number_clean(kind=entry.kind, number=entry.number)
    entry.save()
    _rules_changed()
    return entry


@transaction.atomic
def rule_row_delete(*, row: RuleSetting | PlaceholderNameTemplate | BlockedNumber) -> None:
    """Delete an admin row (its history is kept) and drop the cache."""
    row.delete()
    _rules_changed()


def placeholder_name_for(
    *, user: CrmUser, client: CrmClient, phone_number: str, caller_id_name: str, direction: str
) -> tuple[str, str]:
    """The name and contact type the user's rules give a placeholder for this number: what
    an admin creating one by hand for a call left to a person gets (`sscl`)."""
    name, contact_type, _ = _placeholder_name_and_type(
        client=client,
        rules=rule_values_get(user=user),
        phone_number=phone_number,
        caller_id_name=caller_id_name,
        traffic=LogTraffic(kind="call", direction=direction),
    )
    return name, contact_type


# --- the rules page: a scope's rules saved at once, and a preview over recorded calls ------


def contact_type_choices() -> list[tuple[str, str]]:
    """Every contact type of the connected CRMs' manifests, as (value, label naming the
    CRMs that offer it), sorted: what the admin offers wherever a contact type is chosen."""
    from connector.selectors import proxy_connector_names

    offered: dict[str, list[str]] = {}
    for platform in [*crm_registry.platforms(), *proxy_connector_names()]:
        for value in crm_registry.get(platform).contact_type_values():
            offered.setdefault(value, []).append(platform)
    return [(value, f"{value} ({', '.join(platforms)})") for value, platforms in sorted(offered.items())]


@transaction.atomic
def rule_settings_scope_save(*, account: Account | None, entries: dict[str, JsonDict | None]) -> list[str]:
    """Save the rules page of one scope (site-wide when `account` is None): each key of
    `entries` set to {"value", "customizable"}, or, with None, inheriting (its row, if
    any, deleted). Rows left as they were are not written, so history records only
    changes. Every write goes through `rule_setting_save`/`rule_row_delete` (values
    checked, cache dropped); raises `ValueError` naming the key when a value does not
    fit, and then writes nothing. Returns the keys changed."""
    rows = RuleSetting.objects.filter(key__in=list(entries))
    rows = rows.filter(account=account) if account is not None else rows.filter(account__isnull=True)
    existing = {row.key: row for row in rows}
    changed: list[str] = []
    for key, entry in entries.items():
        row = existing.get(key)
        if entry is None:
            if row is not None:
                rule_row_delete(row=row)
                changed.append(key)
            continue
        value, customizable = entry["value"], bool(entry.get("customizable", False))
        if row is not None and row.value == value and row.customizable == customizable:
            continue
        row = row or RuleSetting(account=account, key=key)
        row.value, row.customizable = value, customizable
        try:
            rule_setting_save(setting=row)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from exc
        changed.append(key)
    return changed


@transaction.atomic
def placeholder_names_scope_save(*, account: Account | None, names: dict[str, str]) -> list[str]:
    """Save a scope's default placeholder names: contact type -> template, "" to inherit
    (its row deleted). Through `placeholder_name_save`/`rule_row_delete`; unchanged rows are
    not written. Raises `ValueError` when a name does not render or a type is unknown,
    and then writes nothing. Returns the contact types changed."""
    rows = PlaceholderNameTemplate.objects.filter(contact_type__in=list(names))
    rows = rows.filter(account=account) if account is not None else rows.filter(account__isnull=True)
    existing = {row.contact_type: row for row in rows}
    changed: list[str] = []
    for contact_type, template in names.items():
        row = existing.get(contact_type)
        if not template:
            if row is not None:
                rule_row_delete(row=row)
                changed.append(contact_type)
            continue
        if row is not None and row.template == template:
            continue
        row = row or PlaceholderNameTemplate(account=account, contact_type=contact_type)
        row.template = template
        placeholder_name_save(name=row)
        changed.append(contact_type)
    return changed


@dataclass(frozen=True, slots=True)
class PreviewLine:
    """What one recorded call would have come to under the candidate rules."""

    call: RecordedCall
    recorded: str  # the outcome recorded (rules.choices.DecisionOutcome), "" when none
    outcome: PreviewOutcome
    condition: str  # what decided: a PlaceholderRefusal, or a rule key, or "oneMatch"
    reason: str  # a sentence for the admin


@dataclass(frozen=True, slots=True)
class RulesPreview:
    """A rule preview: each call's line, newest first, and the totals."""

    lines: list[PreviewLine]
    counts: dict[str, int]  # PreviewOutcome value -> calls
    conditions: dict[str, int]  # condition -> calls, most frequent first


def _real_matches(decision: JsonDict) -> int:
    """The contacts the recorded lookup found other than our own placeholders: those
    exist only because earlier rules made them, so the preview counts them as none."""
    matches = int(decision.get("matches") or 0)
    if "placeholderMatches" in decision:
        return matches - int(decision["placeholderMatches"])
    if decision.get("outcome") == DecisionOutcome.MATCHED and "placeholderId" in decision:
        return 0  # the lookup found only our placeholder
    return matches


# How many contacts the lookup found, as an outcome implies it (for rows without "matches").
_MATCHES_OF_OUTCOME = {
    DecisionOutcome.PLACEHOLDER_CREATED.value: 0,
    DecisionOutcome.PLACEHOLDER_REUSED.value: 0,
    DecisionOutcome.MATCHED.value: 1,
    DecisionOutcome.MULTIPLE_RESOLVED.value: 2,
}


def call_replay(*, rules: RuleValues, call: RecordedCall) -> PreviewLine:
    """What `contact_decide` would have done with a recorded call under `rules`, from the
    decision it recorded (how many contacts matched), never asking the CRM. The pure
    parts are the live ones: `placeholder_refusal` and the policies. A multiple match
    under a choosing policy is counted as found, as recorded when the policy was the
    same (the contacts' dates were not recorded)."""
    decision = call.decision
    recorded = str(decision.get("outcome") or "")

    def line(outcome: PreviewOutcome, condition: str, reason: str) -> PreviewLine:
        return PreviewLine(call=call, recorded=recorded, outcome=outcome, condition=condition, reason=reason)

    if call.decided_by == DecidedBy.USER:
        return line(PreviewOutcome.GIVEN, "contactGiven", "the user chose the contact; no rule decides")
    creates = rules.unknown_contact_action == UnknownContactAction.CREATE_PLACEHOLDER
    traffic = LogTraffic(
        kind="call",
        direction=call.direction,
        result=call.result,
        duration_seconds=call.duration_seconds,
        party=call.party,
        own_numbers=(call.own_number,),
    )
    if call.phone_number and "matches" not in decision:
        # Rows recorded before the lookup count was: read it from the outcome.
        implied = _MATCHES_OF_OUTCOME.get(recorded)
        if implied is not None:
            decision = {**decision, "matches": implied}
    if not call.phone_number or "matches" not in decision:
        if call.phone_number:
            return line(
                PreviewOutcome.UNKNOWN,
                "lookupFailed",
                "no lookup was recorded (the CRM failed, or the log is pending)",
            )
        refusal = (
            _number_refusal(
                phone_number="",
                raw_number=call.raw_number,
                caller_id_name=call.caller_id_name,
                traffic=traffic,
            )
            if creates
            else None
        )
        if refusal is not None:
            return line(PreviewOutcome.SKIP, refusal.condition.value, refusal.reason)
        return line(PreviewOutcome.PROMPT, "unknownContactAction", "no phone number to look up")
    matches = _real_matches(decision)
    if matches == 1:
        return line(PreviewOutcome.MATCH, "oneMatch", "one contact has the number")
    if matches > 1:
        policy = rules.multiple_match_policy
        condition = "multipleMatchPolicy"
        if policy == MultipleMatchPolicy.PROMPT:
            return line(PreviewOutcome.PROMPT, condition, f"{matches} contacts match; the policy prompts")
        if decision.get("policy") == policy:
            return line(PreviewOutcome.MATCH, condition, f"{matches} contacts match; {policy} chose one")
        if recorded == DecisionOutcome.PROMPTED and decision.get("rules", {}).get(condition) == policy:
            why = str(decision.get("reason") or "the policy could not decide")
            return line(PreviewOutcome.PROMPT, condition, f"{matches} contacts match; {why}")
        return line(
            PreviewOutcome.MATCH,
            condition,
            f"{matches} contacts match; {policy} chooses one when their dates differ (not recorded)",
        )
    if not creates:
        return line(
            PreviewOutcome.PROMPT, "unknownContactAction", "no contact; the rule leaves it to the user"
        )
    refusal = placeholder_refusal(
        rules=rules,
        phone_number=call.phone_number,
        raw_number=call.raw_number,
        caller_id_name=call.caller_id_name,
        traffic=traffic,
    )
    if refusal is not None:
        return line(PreviewOutcome.SKIP, refusal.condition.value, refusal.reason)
    return line(PreviewOutcome.PLACEHOLDER, "unknownContactAction", "no contact; a placeholder is made")


def rules_preview(
    *, page_account: Account | None, entries: dict[str, JsonDict | None], calls: list[RecordedCall]
) -> RulesPreview:
    """What the rules page of `page_account` (None: site-wide), saved with `entries`
    (see `rule_settings_scope_save`), would have done with `calls`: each call replayed
    with the rules its user would then get (site, account and the user's own values
    merged as live). Reads the rule tables (cached); writes nothing, calls no CRM."""
    rules_of: dict[tuple[int | None, str], RuleValues] = {}
    lines: list[PreviewLine] = []
    for call in calls:
        key = (call.account.pk if call.account else None, json.dumps(call.user_settings, sort_keys=True))
        if key not in rules_of:
            rules_of[key] = rule_values_candidate(
                user_settings=call.user_settings,
                call_account=call.account,
                page_account=page_account,
                entries=entries,
            )
        lines.append(call_replay(rules=rules_of[key], call=call))
    counts = {outcome.value: 0 for outcome in PreviewOutcome}
    conditions: dict[str, int] = {}
    for preview_line in lines:
        counts[preview_line.outcome.value] += 1
        conditions[preview_line.condition] = conditions.get(preview_line.condition, 0) + 1
    ordered = dict(sorted(conditions.items(), key=lambda item: (-item[1], item[0])))
    return RulesPreview(lines=lines, counts=counts, conditions=ordered)
