"""The one place that reads the rule tables: effective settings, merged as App Connect does.

Admin rows change rarely and are read on every automatic decision, so each scope's rows
are cached; every write goes through `rules.services`, which drops the cache. With the
default per-process cache, other processes see a change within `CACHE_SECONDS`; with a
shared cache (`CACHE_URL`), at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, IntegerField, Max, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from connector.crm.registry import crm_registry
from connector.exceptions import ConnectorNotFound
from connector.models import CrmUser
from connector.utils import hash_value
from rules.choices import DecidedBy, PlaceholderLife, PlaceholderStatus
from rules.models import Account, BlockedNumber, PlaceholderContact, PlaceholderNameTemplate, RuleSetting
from rules.parameters import (
    BUILTIN_PLACEHOLDER_NAME,
    PARAMETERS,
    RULE_PARAMETERS,
    SettingKind,
    template_render,
    template_validate,
)

CACHE_SECONDS = 10
_VERSION_KEY = "rules:version"


class _Linked:
    """The default of `rule_values_get`'s `account`: the account the user is linked to."""


LINKED = _Linked()

SettingsMap = dict[str, dict[str, Any]]


def cache_version() -> int:
    version = cache.get(_VERSION_KEY)
    if version is None:
        cache.add(_VERSION_KEY, 1, None)
        version = cache.get(_VERSION_KEY, 1)
    return int(version)


def account_get_for_user(*, user: CrmUser) -> Account | None:
    """The RingCentral account the user is linked to, if any."""
    if not user.rc_account_id:
        return None
    return Account.objects.filter(rc_account_id=user.rc_account_id).first()


def account_get_by_key(*, account_key: str) -> Account | None:
    """The account with this App Connect hashed id, if known."""
    return Account.objects.filter(account_key=account_key).first()


@dataclass(frozen=True, slots=True)
class ScopeRows:
    """The admin rows that apply to one account (or to no account: site-wide only)."""

    settings: SettingsMap  # App Connect's map: site-wide rows, then the account's on top
    placeholder_names: dict[str, tuple[str, str]]  # contact type -> (template, "site"/"account")
    scope_names: dict[str, str]  # key -> "site" or "account": who set it
    blocked: tuple[BlockEntry, ...] = ()  # the block list: the account's entries first


@dataclass(frozen=True, slots=True)
class BlockEntry:
    """One block-list entry as the rules read it."""

    number: str  # E.164, or an E.164 prefix
    kind: str  # rules.choices.BlockedNumberKind
    scope: str  # "site" or "account"


def _entry(row: RuleSetting) -> dict[str, Any]:
    """The App Connect settings entry of an admin row."""
    entry: dict[str, Any] = {**row.extra, "value": row.value, "customizable": row.customizable}
    if row.is_removed:
        entry["isRemoved"] = True
    parameter = PARAMETERS.get(row.key)
    if parameter is not None and parameter.choices and "options" not in entry:
        entry["options"] = list(parameter.choices)
    return entry


def scope_rows_get(*, account: Account | None) -> ScopeRows:
    """Site-wide and (when given) the account's admin rows, cached per scope."""
    account_id = account.pk if account is not None else None
    key = f"rules:{cache_version()}:scope:{account_id or 'site'}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    settings: SettingsMap = {}
    sources: dict[str, str] = {}
    setting_rows = RuleSetting.objects.filter(account__isnull=True)
    name_rows = PlaceholderNameTemplate.objects.filter(account__isnull=True)
    blocked_rows = BlockedNumber.objects.filter(account__isnull=True)
    if account_id:
        setting_rows = setting_rows | RuleSetting.objects.filter(account_id=account_id)
        name_rows = name_rows | PlaceholderNameTemplate.objects.filter(account_id=account_id)
        blocked_rows = blocked_rows | BlockedNumber.objects.filter(account_id=account_id)
    # Site-wide rows first, so the account's rows overwrite them.
    for row in sorted(setting_rows, key=lambda r: r.account_id is not None):
        settings[row.key] = _entry(row)
        sources[row.key] = "account" if row.account_id else "site"
    names: dict[str, tuple[str, str]] = {}
    for name_row in sorted(name_rows, key=lambda r: r.account_id is not None):
        names[name_row.contact_type] = (name_row.template, "account" if name_row.account_id else "site")
    blocked = tuple(
        BlockEntry(number=number, kind=kind, scope="account" if row_account else "site")
        for number, kind, row_account in sorted(
            blocked_rows.values_list("number", "kind", "account_id"), key=lambda r: (r[2] is None, r[0])
        )
    )
    rows = ScopeRows(settings=settings, placeholder_names=names, scope_names=sources, blocked=blocked)
    cache.set(key, rows, CACHE_SECONDS)
    return rows


def account_settings_map(*, account: Account) -> SettingsMap:
    """The settings an account's admin set (App Connect's `adminConfigs.userSettings`)."""
    return {row.key: _entry(row) for row in RuleSetting.objects.filter(account=account).order_by("key")}


def admin_settings_map(*, account: Account | None) -> SettingsMap:
    """The admin side of the settings merge: the rule settings' code defaults (users may
    change them), overridden by site-wide rows, overridden by the account's rows."""
    merged = _defaults_map()
    merged.update(scope_rows_get(account=account).settings)
    return merged


def _defaults_map() -> SettingsMap:
    """The rule settings' code defaults as settings entries (users may change them)."""
    merged: SettingsMap = {
        p.key: {
            "value": p.default,
            "customizable": True,
            "defaultValue": p.default,
            **({"options": list(p.choices)} if p.choices else {}),
        }
        for p in RULE_PARAMETERS
    }
    for entry in merged.values():  # list defaults are shared: each map gets its own copies
        if isinstance(entry["value"], list):
            entry["value"], entry["defaultValue"] = list(entry["value"]), list(entry["value"])
    return merged


def _config(entry: Any) -> dict[str, Any]:
    value = entry.get("value") if isinstance(entry, dict) else None
    config = value.get("config") if isinstance(value, dict) else None
    return config if isinstance(config, dict) else {}


def _plugin_config_merge(admin_config: dict[str, Any], user_config: dict[str, Any]) -> dict[str, Any]:
    """A plugin's `value.config`, merged field by field (appconnect-api.md §2.16)."""
    if not user_config:
        return dict(admin_config)
    config: dict[str, Any] = {}
    for name in dict.fromkeys([*user_config, *admin_config]):
        mine, theirs = user_config.get(name), admin_config.get(name)
        if not isinstance(theirs, dict):
            config[name] = mine
        elif not isinstance(mine, dict) or theirs.get("customizable") is False:
            config[name] = theirs
        elif mine.get("value") in (None, "", []) and theirs.get("value") not in (None, "", []):
            config[name] = theirs
        else:
            config[name] = {**mine, "customizable": theirs.get("customizable", True)}
    return config


def settings_merge(*, admin: SettingsMap, user: SettingsMap | None) -> SettingsMap:
    """App Connect's merge of admin settings over a user's (appconnect-api.md §2.16).

    A removed key disappears; a key the admin left customizable (or did not set) takes
    the user's value when the user has one; otherwise the admin's entry wins as is.
    Plugin entries (`plugin_*`) merge field by field inside `value.config`.
    """
    if user is None:
        return {}
    merged: SettingsMap = {}
    for key in dict.fromkeys([*admin, *user]):
        admin_entry = admin.get(key)
        user_entry = user.get(key)
        if isinstance(admin_entry, dict) and admin_entry.get("isRemoved"):
            continue
        user_may = admin_entry is None or bool(admin_entry.get("customizable"))
        if user_may and isinstance(user_entry, dict):
            entry = {"customizable": True, "value": user_entry.get("value")}
            for extra in ("defaultValue", "options"):
                if user_entry.get(extra) is not None:
                    entry[extra] = user_entry[extra]
            merged[key] = entry
        elif admin_entry is not None:
            merged[key] = admin_entry
        elif user_entry is not None:
            merged[key] = user_entry
        if key.startswith("plugin_") and key in merged and isinstance(user_entry, dict):
            config = _plugin_config_merge(_config(admin_entry), _config(user_entry))
            if not config:
                del merged[key]
                continue
            entry = merged[key]
            raw = entry.get("value")
            value = raw if isinstance(raw, dict) else {}
            merged[key] = {**entry, "value": {**value, "config": config}}
    return merged


def user_settings_effective(*, user: CrmUser, account: Account | None) -> SettingsMap:
    """The user's settings with the account's (and the site's) admin settings applied
    (GET /user/settings).

    `defaultPlaceholderName` reports the name template the user's next placeholder gets
    (`placeholder_name_in_force`): a default name per contact type counts, so the API
    says what the server does."""
    merged = settings_merge(admin=admin_settings_map(account=account), user=user.user_settings or {})
    entry = merged.get("defaultPlaceholderName")
    if isinstance(entry, dict):
        rules = rule_values_get(user=user, account=account)
        try:
            types = crm_registry.get(user.platform).contact_type_values()
        except ConnectorNotFound:
            return merged
        template, _, _ = placeholder_name_in_force(rules=rules, contact_types=types)
        merged["defaultPlaceholderName"] = {**entry, "value": template}
    return merged


@dataclass(frozen=True, slots=True)
class RuleValues:
    """The effective auto-logging rule values for one user, and who set each one."""

    unknown_contact_action: str
    placeholder_name_source: str
    default_placeholder_name: str
    placeholder_contact_type: str
    multiple_match_policy: str
    placeholder_directions: tuple[str, ...]
    placeholder_call_results: tuple[str, ...]
    placeholder_min_duration_seconds: int
    placeholder_message_types: tuple[str, ...]
    sources: dict[str, str]  # key -> "default", "site", "account" or "user"
    placeholder_names: dict[str, tuple[str, str]]  # contact type -> (template, scope)
    user_placeholder_name: bool  # the default name is the user's own
    blocked: tuple[BlockEntry, ...] = ()  # the block list (not in the snapshot: only a match is)

    def snapshot(self) -> dict[str, Any]:
        """The values as recorded in the log history."""
        return {
            "unknownContactAction": self.unknown_contact_action,
            "placeholderNameSource": self.placeholder_name_source,
            "defaultPlaceholderName": self.default_placeholder_name,
            "placeholderContactType": self.placeholder_contact_type,
            "multipleMatchPolicy": self.multiple_match_policy,
            "placeholderDirections": list(self.placeholder_directions),
            "placeholderCallResults": list(self.placeholder_call_results),
            "placeholderMinDurationSeconds": self.placeholder_min_duration_seconds,
            "placeholderMessageTypes": list(self.placeholder_message_types),
            "sources": self.sources,
        }


def rule_values_get(*, user: CrmUser, account: Account | _Linked | None = LINKED) -> RuleValues:
    """The auto-logging rule values that apply to `user`: code defaults, then site-wide
    rows, then the account's rows, then the user's own values where customizable.

    `account` is the user's linked account unless given (the API may name another one
    with `rcAccountId`)."""
    if isinstance(account, _Linked):
        account = account_get_for_user(user=user)
    rows = scope_rows_get(account=account)
    return _rule_values(
        admin=admin_settings_map(account=account),
        scope_names=rows.scope_names,
        user_settings=user.user_settings or {},
        rows=rows,
    )


def rule_values_for_scope(*, account: Account | None) -> RuleValues:
    """The rule values in force at a scope (site-wide, or one account) for a user who set
    none of their own: what the admin's rules page shows as "in force"."""
    rows = scope_rows_get(account=account)
    return _rule_values(
        admin=admin_settings_map(account=account), scope_names=rows.scope_names, user_settings={}, rows=rows
    )


def rule_values_candidate(
    *,
    user_settings: SettingsMap,
    call_account: Account | None,
    page_account: Account | None,
    entries: dict[str, dict[str, Any] | None],
) -> RuleValues:
    """The rule values a user of `call_account` would get if the rules page of
    `page_account` (None: site-wide) were saved with `entries` (key -> {"value",
    "customizable"}, or None to inherit). Rows of other scopes are read as stored; writes
    nothing."""
    site = dict(scope_rows_get(account=None).settings)
    own = account_settings_map(account=call_account) if call_account is not None else {}
    edited = site if page_account is None else own if call_account == page_account else None
    if edited is not None:
        for key, entry in entries.items():
            if entry is None:
                edited.pop(key, None)
            else:
                edited[key] = entry
    admin = _defaults_map()
    admin.update(site)
    admin.update(own)
    scope_names = {key: "site" for key in site} | {key: "account" for key in own}
    return _rule_values(
        admin=admin,
        scope_names=scope_names,
        user_settings=user_settings,
        rows=scope_rows_get(account=call_account),
    )


def _rule_values(
    *, admin: SettingsMap, scope_names: dict[str, str], user_settings: SettingsMap, rows: ScopeRows
) -> RuleValues:
    merged = settings_merge(admin=admin, user=user_settings)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for parameter in RULE_PARAMETERS:
        entry = merged.get(parameter.key) or {}
        value = entry.get("value", parameter.default)
        try:
            if parameter.kind != SettingKind.CONTACT_TYPE or value:
                parameter.validate(value)
        except ValueError:
            value = parameter.default
        values[parameter.key] = value
        user_entry = user_settings.get(parameter.key)
        if entry.get("customizable") and isinstance(user_entry, dict) and "value" in user_entry:
            sources[parameter.key] = "user"
        else:
            sources[parameter.key] = scope_names.get(parameter.key, "default")
    return RuleValues(
        unknown_contact_action=values["unknownContactAction"],
        placeholder_name_source=values["placeholderNameSource"],
        default_placeholder_name=values["defaultPlaceholderName"] or BUILTIN_PLACEHOLDER_NAME,
        placeholder_contact_type=values["placeholderContactType"] or "",
        multiple_match_policy=values["multipleMatchPolicy"],
        placeholder_directions=tuple(values["placeholderDirections"]),
        placeholder_call_results=tuple(values["placeholderCallResults"]),
        placeholder_min_duration_seconds=values["placeholderMinDurationSeconds"],
        placeholder_message_types=tuple(values["placeholderMessageTypes"]),
        sources=sources,
        placeholder_names=rows.placeholder_names,
        user_placeholder_name=sources["defaultPlaceholderName"] == "user",
        blocked=rows.blocked,
    )


def placeholder_template_for(*, rules: RuleValues, contact_type: str) -> tuple[str, str]:
    """The name template for a placeholder of `contact_type`, and where it came from.

    The most specific scope wins: the user's own default name (where allowed), then the
    account's name for that contact type, then the account's default name, then the same
    two site-wide, then the built-in name.
    """
    if rules.user_placeholder_name:
        return rules.default_placeholder_name, "user"
    generic_scope = rules.sources.get("defaultPlaceholderName", "default")
    per_type, per_type_scope = rules.placeholder_names.get(contact_type, ("", ""))
    candidates = [
        (per_type if per_type_scope == "account" else "", "account, contact type"),
        (rules.default_placeholder_name if generic_scope == "account" else "", "account"),
        (per_type if per_type_scope == "site" else "", "site, contact type"),
        (rules.default_placeholder_name if generic_scope == "site" else "", "site"),
    ]
    for template, source in candidates:
        if template:
            try:
                return template_validate(template), source
            except ValueError:
                continue
    return BUILTIN_PLACEHOLDER_NAME, "built-in"


def placeholder_contact_type_for(*, rules: RuleValues, contact_types: Sequence[str]) -> str:
    """The contact type a new placeholder gets from a CRM offering `contact_types`: the
    rule's when the CRM has it, else the CRM's first."""
    if rules.placeholder_contact_type in contact_types:
        return rules.placeholder_contact_type
    return contact_types[0] if contact_types else ""


def placeholder_name_in_force(*, rules: RuleValues, contact_types: Sequence[str]) -> tuple[str, str, str]:
    """The name template a new placeholder gets when the Caller ID gives no name, where it
    comes from, and its contact type: the one value the API reports, the admin's rules
    page shows and the automatic flow applies."""
    contact_type = placeholder_contact_type_for(rules=rules, contact_types=contact_types)
    template, source = placeholder_template_for(rules=rules, contact_type=contact_type)
    return template, source, contact_type


# The call a placeholder-name preview renders a template for.
PREVIEW_NUMBER = "+14155550199"
PREVIEW_CALLER_ID = "Jane Doe"
PREVIEW_DIRECTION = "Inbound"
PREVIEW_DAY = date(2026, 1, 31)


def placeholder_name_preview(
    *,
    template: str,
    phone_number: str = PREVIEW_NUMBER,
    caller_id: str = PREVIEW_CALLER_ID,
    direction: str = PREVIEW_DIRECTION,
    day: date | None = PREVIEW_DAY,
) -> str:
    """The name `template` gives a placeholder for a sample call (by default an inbound
    call from +14155550199, Caller ID "Jane Doe", on 2026-01-31). Raises `ValueError`
    saying why when the template is not valid."""
    template_validate(template)
    return template_render(
        template, phone_number=phone_number, caller_id=caller_id, direction=direction, day=day
    )


# --- the placeholder registry, as the logging flow reads it ---------------------------------


def placeholder_scope_keys(*, user: CrmUser) -> list[str]:
    """The registry scopes a user's placeholders live in: the user alone, and the user's
    RingCentral account when linked to one (its key is the hash of its id, so no account
    is read). The registry is unique per scope, platform and number."""
    scopes = [f"user:{user.pk}"]
    if user.rc_account_id:
        scopes.append(f"acct:{hash_value(user.rc_account_id)}")
    return scopes


_REGISTRY_COLUMNS = (
    "id",
    "scope_key",
    "phone_number",
    "contact_id",
    "contact_name",
    "contact_type",
    "decided_by",
    "life",
    "named_as",
    "superseded_by",
)


def placeholders_in_scope(
    *, user: CrmUser, phone_number: str = "", contact_id: str = "", by_rule_only: bool = False
) -> list[PlaceholderContact]:
    """The ready registry rows of the user's scopes and platform (`placeholder_scope_keys`)
    for one number (`phone_number`, E.164) or one CRM contact (`contact_id`), oldest first,
    superseded ones included; only the rules' when `by_rule_only`.

    The one read of the registry by the logging flow: the rules ask it by number (is a
    contact the lookup found our placeholder?), the log history by contact (is the
    contact a log hangs on a placeholder, whoever made it?). It runs for nearly every
    call, so it is one hand-written statement on an index (bench/profile.py: the ORM's
    query building cost more than the query); the rows carry only `_REGISTRY_COLUMNS`.
    """
    if bool(phone_number) == bool(contact_id):
        raise ValueError("give a phone number or a contact id")
    scopes = placeholder_scope_keys(user=user)
    table = connection.ops.quote_name(PlaceholderContact._meta.db_table)
    column, value = ("phone_number", phone_number) if phone_number else ("contact_id", contact_id)
    sql = (
        f"SELECT {', '.join(_REGISTRY_COLUMNS)} FROM {table}"  # noqa: S608
        f" WHERE {column} = %s AND platform = %s AND status = %s"
        f" AND scope_key IN ({', '.join(['%s'] * len(scopes))})"
    )
    params: list[Any] = [value, user.platform, PlaceholderStatus.READY.value, *scopes]
    if by_rule_only:
        sql += " AND decided_by = %s"
        params.append(DecidedBy.RULE.value)
    with connection.cursor() as cursor:
        cursor.execute(sql + " ORDER BY id", params)
        rows = cursor.fetchall()
    return [
        PlaceholderContact(
            **dict(zip(_REGISTRY_COLUMNS, row, strict=True)),
            platform=user.platform,
            status=PlaceholderStatus.READY,
        )
        for row in rows
    ]


# --- moving a superseded placeholder's logs -----------------------------------------------


@dataclass(frozen=True, slots=True)
class RelinkPlan:
    """What moving one placeholder's old logs to the contact that superseded it would do."""

    placeholder: PlaceholderContact
    to_contact_id: str  # the real contact (superseded_by); "" when not superseded
    to_contact_name: str  # as the newest log against it recorded it; "" when none did
    to_contact_type: str
    calls: int  # logged calls still against the placeholder
    messages: int  # logged messages still against it (a conversation's share one activity)
    activities: int  # CRM activities to move
    unavailable: str  # why none can move ("" when they can)

    @property
    def logs(self) -> int:
        return self.calls + self.messages


def relink_unavailable_reason(*, placeholder: PlaceholderContact) -> str:
    """Why the logs of `placeholder` cannot be moved to another contact, or "" when they can:
    it must be superseded, and its connector must move activities."""
    from connector.crm.registry import crm_registry
    from connector.exceptions import ConnectorNotFound

    if placeholder.life != PlaceholderLife.SUPERSEDED or not placeholder.superseded_by:
        return "not superseded: its number has no other contact yet"
    try:
        client = crm_registry.get(placeholder.platform)
    except ConnectorNotFound:
        return f"no connector {placeholder.platform} is configured"
    if not client.can_relink_activities():
        return f"the {placeholder.platform} connector cannot move activities"
    return ""


def placeholder_relink_plans(*, placeholder_ids: list[int]) -> list[RelinkPlan]:
    """For each of these placeholders (oldest first), how many logged calls and messages
    still hang on it, how many CRM activities that is, the contact they would move to, and
    why they cannot move when they cannot. A few queries, whatever the number of logs."""
    from logs.choices import LogStatus
    from logs.models import CallLog, MessageLog

    placeholders = list(
        PlaceholderContact.objects.filter(pk__in=placeholder_ids).order_by("created_at", "id")
    )
    counts: dict[tuple[str, int], tuple[int, int]] = {}
    for kind, model in (("call", CallLog), ("message", MessageLog)):
        rows = (
            model.objects.filter(placeholder_id__in=[p.pk for p in placeholders], status=LogStatus.LOGGED)
            .exclude(crm_log_id="")
            .order_by()
            .values_list("placeholder_id", "contact_id", "crm_log_id")
        )
        on_placeholder: dict[int, list[str]] = {}
        contact_of = {p.pk: p.contact_id for p in placeholders}
        for placeholder_id, contact_id, crm_log_id in rows:
            if contact_id == contact_of[placeholder_id]:  # not moved yet
                on_placeholder.setdefault(placeholder_id, []).append(crm_log_id)
        for placeholder_id, crm_log_ids in on_placeholder.items():
            counts[(kind, placeholder_id)] = (len(crm_log_ids), len(set(crm_log_ids)))
    targets = _relink_targets(placeholders)
    plans = []
    for placeholder in placeholders:
        calls, call_activities = counts.get(("call", placeholder.pk), (0, 0))
        messages, message_activities = counts.get(("message", placeholder.pk), (0, 0))
        name, contact_type = targets.get((placeholder.platform, placeholder.superseded_by), ("", ""))
        plans.append(
            RelinkPlan(
                placeholder=placeholder,
                to_contact_id=placeholder.superseded_by,
                to_contact_name=name,
                to_contact_type=contact_type,
                calls=calls,
                messages=messages,
                activities=call_activities + message_activities,
                unavailable=relink_unavailable_reason(placeholder=placeholder),
            )
        )
    return plans


def _relink_targets(placeholders: list[PlaceholderContact]) -> dict[tuple[str, str], tuple[str, str]]:
    """(platform, contact id) -> (name, type) of each superseding contact, as the newest
    call log against it recorded them (the registry keeps only its id)."""
    from logs.models import CallLog

    targets: dict[tuple[str, str], tuple[str, str]] = {}
    for placeholder in placeholders:
        key = (placeholder.platform, placeholder.superseded_by)
        if not placeholder.superseded_by or key in targets:
            continue
        newest = (
            CallLog.objects.filter(platform=key[0], contact_id=key[1])
            .exclude(contact_name="")
            .order_by("-created_at", "-id")
            .values_list("contact_name", "contact_type")
            .first()
        )
        targets[key] = newest or ("", "")
    return targets


# --- the open-placeholder report ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenPlaceholderRow:
    """One line of the open-placeholder report."""

    placeholder: PlaceholderContact  # with its account
    age_days: int
    calls: int  # calls logged against it
    last_call_at: datetime | None


def placeholders_open_report(*, now: datetime | None = None) -> list[OpenPlaceholderRow]:
    """Rule-made placeholder contacts still open (neither named nor superseded), oldest
    first, each with its age in days and the calls logged against it. One statement."""
    from logs.choices import LogStatus
    from logs.models import CallLog

    logged = CallLog.objects.filter(placeholder_id=OuterRef("pk"), status=LogStatus.LOGGED).order_by()
    count = logged.values("placeholder_id").annotate(n=Count("id")).values("n")
    last = logged.values("placeholder_id").annotate(at=Max("created_at")).values("at")
    rows = (
        PlaceholderContact.objects.filter(
            decided_by=DecidedBy.RULE, status=PlaceholderStatus.READY, life=PlaceholderLife.OPEN
        )
        .select_related("account")
        .annotate(
            calls=Coalesce(Subquery(count, output_field=IntegerField()), 0),
            last_call_at=Subquery(last),
        )
        .order_by("created_at", "id")
    )
    now = now or timezone.now()
    return [
        OpenPlaceholderRow(
            placeholder=row,
            age_days=(now - row.created_at).days,
            calls=row.calls,
            last_call_at=row.last_call_at,
        )
        for row in rows
    ]


# --- the rules page's preview: recorded calls ----------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """A call as the log history recorded it: what a rule preview replays, CRM unasked."""

    log_id: int
    created_at: datetime
    phone_number: str  # E.164, "" when the request had none
    raw_number: str  # as the request gave it
    caller_id_name: str
    direction: str  # "Inbound" or "Outbound"
    result: str  # RingCentral's call result
    duration_seconds: int | None
    party: dict[str, Any]  # the other party as the request gave it
    own_number: str  # the agent side's number
    decided_by: str  # rules.choices.DecidedBy
    decision: dict[str, Any]  # the decision snapshot (outcome, matches, policy, ...)
    user_settings: SettingsMap  # the user's own settings, as they stand now
    account: Account | None  # the user's RingCentral account


def recorded_calls_get(*, account: Account | None, limit: int) -> list[RecordedCall]:
    """The `limit` latest call logs, newest first: every user's for the site-wide scope,
    else those of the account's users. At most two statements (calls with their users,
    their accounts);
    users' credentials are never loaded."""
    from logs.models import CallLog

    rows = (
        CallLog.objects.select_related("user")
        .only(
            "id",
            "created_at",
            "phone_number",
            "direction",
            "result",
            "duration_seconds",
            "decided_by",
            "decision",
            "payload",
            "user__id",
            "user__rc_account_id",
            "user__user_settings",
        )
        .order_by("-created_at", "-id")
    )
    if account is not None:
        rows = rows.filter(user__rc_account_id=account.rc_account_id)
    calls = list(rows[:limit])
    ids = {row.user.rc_account_id for row in calls if row.user.rc_account_id}
    accounts = {a.rc_account_id: a for a in Account.objects.filter(rc_account_id__in=ids)}
    return [_recorded_call(row, accounts.get(row.user.rc_account_id or "")) for row in calls]


def _recorded_call(row: Any, account: Account | None) -> RecordedCall:
    # The other party and the agent's side, read from the stored request as
    # logs.services reads them for the live decision.
    payload: dict[str, Any] = row.payload if isinstance(row.payload, dict) else {}
    raw_info = payload.get("logInfo")
    log_info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    inbound = (log_info.get("direction") or row.direction) == "Inbound"
    party = (log_info.get("from") if inbound else log_info.get("to")) or {}
    agent = (log_info.get("to") if inbound else log_info.get("from")) or {}
    decision = row.decision if isinstance(row.decision, dict) else {}
    return RecordedCall(
        log_id=row.pk,
        created_at=row.created_at,
        # The number the decision looked up (E.164, "" when none could be read), else the row's.
        phone_number=str(decision.get("phoneNumber", row.phone_number) or ""),
        raw_number=str(payload.get("rawNumber") or row.phone_number),
        caller_id_name=str(party.get("name") or "") if isinstance(party, dict) else "",
        direction=str(log_info.get("direction") or row.direction or ""),
        result=str(log_info.get("result") or row.result or ""),
        duration_seconds=row.duration_seconds,
        party=party if isinstance(party, dict) else {},
        own_number=str(agent.get("phoneNumber") or "") if isinstance(agent, dict) else "",
        decided_by=row.decided_by,
        decision=decision,
        user_settings=row.user.user_settings or {},
        account=account,
    )
