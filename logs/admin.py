"""Admin of the log history: call logs, message logs, their event trail, and a dashboard.

History is never edited here, by anyone (corrections are new events): no add, change or
delete. Auditors (view permissions, the `Auditors` group) browse, filter, search, open a
log's timeline and export CSV. Admins (change permission) may also retry failed logs, and
pending ones whose request died, through the same pipeline as the API, and send again an
unconfirmed log once they checked that the CRM does not hold it. The stored
request (`payload`) and CRM users' credentials are never loaded into a page or an export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV

from config.logging import redact
from connector.admin import PlatformListFilter, ReadOnlyAdmin
from logs.choices import DecidedBy, LogStatus
from logs.models import CallLog, LogEvent, MessageLog
from logs.resources import CallLogResource, LogEventResource, MessageLogResource
from logs.selectors import (
    DayActivity,
    account_choices,
    crm_user_choices,
    event_actor,
    event_sentence,
    log_activity_per_day,
    log_history_queryset,
    phone_search_number,
)
from logs.services import RETRY_BATCH_LIMIT, RetrySummary, call_logs_retry, message_logs_retry

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldOpts, _FieldsetSpec

# --- list filters --------------------------------------------------------------------------


class UserListFilter(admin.SimpleListFilter):
    title = "user"
    parameter_name = "user"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return crm_user_choices()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(user_id=self.value()) if self.value() else queryset


class AccountListFilter(admin.SimpleListFilter):
    """The user's RingCentral account (users link to accounts by `rc_account_id`)."""

    title = "RingCentral account"
    parameter_name = "account"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return account_choices()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(user__rc_account_id=self.value()) if self.value() else queryset


class PlaceholderListFilter(admin.SimpleListFilter):
    """Whether the log hangs on a placeholder contact, and who created that contact."""

    title = "placeholder contact"
    parameter_name = "placeholder"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("yes", "Any placeholder"),
            (DecidedBy.RULE.value, "Placeholder created by a rule"),
            (DecidedBy.USER.value, "Placeholder created by a user"),
            ("no", "Not a placeholder"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "yes":
            return queryset.filter(contact_is_placeholder=True)
        if value == "no":
            return queryset.filter(contact_is_placeholder=False)
        if value in DecidedBy.values:
            return queryset.filter(contact_is_placeholder=True, placeholder__decided_by=value)
        return queryset


class LogTypeListFilter(admin.SimpleListFilter):
    title = "log"
    parameter_name = "log"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("call", "Call logs"), ("message", "Message logs")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "call":
            return queryset.filter(call_log__isnull=False)
        if self.value() == "message":
            return queryset.filter(message_log__isnull=False)
        return queryset


# --- shared pieces -------------------------------------------------------------------------


def _pretty_json(value: Any) -> SafeString:
    return format_html('<pre class="log-json">{}</pre>', redact(json.dumps(value, indent=2, sort_keys=True)))


def _event_time(event: LogEvent) -> str:
    """An event's time to the second, in the site's time zone: steps are often a second apart."""
    return dateformat.format(timezone.localtime(event.created_at), "Y-m-d H:i:s")


def _event_what(event: LogEvent) -> SafeString:
    """The event as a sentence, its raw detail one click away."""
    sentence = redact(event_sentence(kind=event.kind, detail=event.detail))
    if not event.detail:
        return format_html('<span class="event-sentence">{}</span>', sentence)
    return format_html(
        '<span class="event-sentence">{}</span>'
        '<details class="event-detail"><summary>detail</summary>{}</details>',
        sentence,
        _pretty_json(event.detail),
    )


# The parts of a log's detail page that calls and messages share.
CONTACT_FIELDSET: tuple[str, _FieldOpts] = (
    "Contact",
    {
        "fields": (
            "contact_id",
            "contact_name",
            "contact_type",
            "contact_is_placeholder",
            "placeholder",
            "decided_by",
            "decision_json",
        )
    },
)
OUTCOME_FIELDSET: tuple[str, _FieldOpts] = (
    "Outcome",
    {
        "fields": (
            "status",
            "attempts",
            "last_error_text",
            "crm_log_id",
            # when a write began whose outcome is not known (an unconfirmed log's clue for
            # the admin who looks in the CRM), and until when a request holds the log
            "crm_write_started_at",
            "lease_until",
            "created_at",
            "updated_at",
        )
    },
)


# The columns an auditor scans first, so a list fits a 1280 px screen; the session or
# message id, user, account, attempts and CRM log id are on the detail page, and a failed
# log's error shows on its status.
LIST_COLUMNS = ("created_at", "direction", "phone_number", "contact", "status_text", "decided_by")


class HistoryAdmin(ReadOnlyAdmin):
    """Viewing only: history is never added, changed or deleted through the admin."""


class TimelineInline(admin.TabularInline):
    """A log's event trail, oldest first, read-only."""

    model = LogEvent
    template = "admin/logs/timeline.html"
    verbose_name = "event"
    verbose_name_plural = "timeline"
    fields = ("time", "kind", "actor", "what")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="time")
    def time(self, event: LogEvent) -> str:
        return _event_time(event)

    @admin.display(description="by")
    def actor(self, event: LogEvent) -> str:
        return event_actor(kind=event.kind, decided_by=event.decided_by, detail=event.detail) or "-"

    @admin.display(description="what happened")
    def what(self, event: LogEvent) -> SafeString:
        return _event_what(event)


class CallTimelineInline(TimelineInline):
    fk_name = "call_log"


class MessageTimelineInline(TimelineInline):
    fk_name = "message_log"


class LogHistoryAdmin(ExportMixin, HistoryAdmin):
    """What call and message logs share: columns, filters, search, export and retry."""

    export_formats = [CSV]
    skip_export_form = True  # one click exports the filtered list, with the resource's columns
    import_export_change_list_template = "admin/logs/change_list.html"
    date_hierarchy = "created_at"
    list_select_related = ("user", "placeholder")
    list_per_page = 100
    show_full_result_count = False  # one COUNT per page, not two
    actions = ("retry_selected", "resend_unconfirmed")
    list_filter = (
        ("created_at", admin.DateFieldListFilter),
        "status",
        "direction",
        PlatformListFilter,
        UserListFilter,
        AccountListFilter,
        PlaceholderListFilter,
        "decided_by",
    )
    exclude = ("payload",)

    def retry_logs(self, *, log_ids: list[int], resend: bool) -> RetrySummary:
        """Retry these logs through the service of their kind."""
        raise NotImplementedError

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return log_history_queryset(queryset=super().get_queryset(request))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """The admin's search, plus the term read as a phone number in any format."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        number = phone_search_number(term=search_term.strip())
        if number:
            results = results | queryset.filter(phone_number=number)
        return results, may_have_duplicates

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """Retrying needs the change permission, which auditors do not have."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")

    @admin.action(
        description="Retry selected %(verbose_name_plural)s (failed, or abandoned by their request)",
        permissions=["retry"],
    )
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._retry(request, queryset, resend=False)

    @admin.action(
        description="Send again selected unconfirmed %(verbose_name_plural)s (checked: not in the CRM)",
        permissions=["retry"],
    )
    def resend_unconfirmed(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """An unconfirmed log may be in the CRM already, which could not be asked: the admin
        looked in the CRM, did not find it, and has it sent again."""
        self._retry(request, queryset, resend=True)

    def _retry(self, request: HttpRequest, queryset: QuerySet[Any], *, resend: bool) -> None:
        log_ids = list(queryset.values_list("pk", flat=True)[: RETRY_BATCH_LIMIT + 1])
        if len(log_ids) > RETRY_BATCH_LIMIT:
            message = f"Select at most {RETRY_BATCH_LIMIT} logs to retry at once (filter on status first)."
            self.message_user(request, message, messages.ERROR)
            return
        summary = self.retry_logs(log_ids=log_ids, resend=resend)
        parts = [f"{summary.logged} logged"]
        if summary.not_logged:
            reasons = ", ".join(f"{reason} ({count})" for reason, count in sorted(summary.errors.items()))
            parts.append(f"{summary.not_logged} not logged: {reasons}")
        if summary.left_alone:
            parts.append(
                f"{summary.left_alone} left alone (already logged, skipped, unconfirmed or still in progress)"
            )
        level = messages.WARNING if summary.not_logged else messages.SUCCESS
        self.message_user(request, "Retry: " + "; ".join(parts) + ".", level)

    @admin.display(description="account", ordering="account_name")
    def account(self, log: Any) -> str:
        rc_account_id = log.user.rc_account_id
        if not rc_account_id:
            return "-"
        return log.account_name or f"Account {rc_account_id}"

    @admin.display(description="contact", ordering="contact_name")
    def contact(self, log: Any) -> str:
        name = log.contact_name or log.contact_id or "-"
        if not log.contact_is_placeholder:
            return name
        by = log.placeholder.decided_by if log.placeholder_id else ""
        return f"{name} (placeholder, created by {'a rule' if by == DecidedBy.RULE else 'a user'})"

    @admin.display(description="status", ordering="status")
    def status_text(self, log: Any) -> SafeString | str:
        """The status; a failed log's error is its tooltip, and shown below it in short."""
        if not log.last_error or log.status == LogStatus.LOGGED:
            return str(log.get_status_display())
        error = redact(log.last_error)
        return format_html(
            '{}<br><span class="log-error" title="{}">{}</span>',
            log.get_status_display(),
            error,
            Truncator(error).words(8),
        )

    @admin.display(description="last error")
    def last_error_text(self, log: Any) -> SafeString | str:
        return (
            format_html('<pre class="log-json">{}</pre>', redact(log.last_error)) if log.last_error else "-"
        )

    @admin.display(description="decision (what decided, as it was then)")
    def decision_json(self, log: Any) -> SafeString | str:
        return _pretty_json(log.decision) if log.decision else "-"


# --- call logs -----------------------------------------------------------------------------


@admin.register(CallLog)
class CallLogAdmin(LogHistoryAdmin):
    resource_classes = [CallLogResource]
    inlines = (CallTimelineInline,)
    list_display = LIST_COLUMNS
    list_display_links = ("created_at",)
    search_fields = (
        "phone_number",
        "=session_id",
        "=record_id",
        "=crm_log_id",
        "=contact_id",
        "contact_name",
    )
    search_help_text = (
        "Phone number (any format), session id, telephony session id, CRM log id, CRM contact id "
        "or contact name."
    )
    fieldsets: ClassVar[_FieldsetSpec] = (
        (
            "Call",
            {
                "fields": (
                    "session_id",
                    "record_id",
                    "direction",
                    "phone_number",
                    "started_at",
                    "duration_seconds",
                    "result",
                )
            },
        ),
        ("Who", {"fields": ("user", "platform", "account", "extension_number", "hashed_extension_id")}),
        CONTACT_FIELDSET,
        OUTCOME_FIELDSET,
    )
    readonly_fields = (
        "account",
        "decision_json",
        "last_error_text",
        "session_id",
        "record_id",
        "direction",
        "phone_number",
        "started_at",
        "duration_seconds",
        "result",
        "user",
        "platform",
        "extension_number",
        "hashed_extension_id",
        "contact_id",
        "contact_name",
        "contact_type",
        "contact_is_placeholder",
        "placeholder",
        "decided_by",
        "status",
        "attempts",
        "crm_log_id",
        "crm_write_started_at",
        "lease_until",
        "created_at",
        "updated_at",
    )

    def retry_logs(self, *, log_ids: list[int], resend: bool) -> RetrySummary:
        return call_logs_retry(log_ids=log_ids, resend=resend)

    def get_urls(self) -> list[URLPattern]:
        dashboard = path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="logs_dashboard")
        return [dashboard, *super().get_urls()]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """Per day: calls and messages logged, placeholders created, failures (see the selector)."""
        if not (request.user.has_perm("logs.view_calllog") or request.user.has_perm("logs.view_messagelog")):
            raise PermissionDenied
        days = request.GET.get("days", "")
        span = int(days) if days in {"7", "30", "90"} else 30
        activity = log_activity_per_day(days=span)
        context = {
            **self.admin_site.each_context(request),
            "title": "Log history dashboard",
            "opts": self.opts,
            "span": span,
            "spans": (7, 30, 90),
            "panels": [panel.render(activity) for panel in DASHBOARD_PANELS],
            # days with activity only, newest first
            "table": [day for day in reversed(activity) if _active(day)],
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/logs/dashboard.html", context)


# --- message logs --------------------------------------------------------------------------


@admin.register(MessageLog)
class MessageLogAdmin(LogHistoryAdmin):
    resource_classes = [MessageLogResource]
    inlines = (MessageTimelineInline,)
    list_display = LIST_COLUMNS
    list_display_links = ("created_at",)
    search_fields = (
        "phone_number",
        "=message_id",
        "=conversation_id",
        "=conversation_log_id",
        "=crm_log_id",
        "=contact_id",
        "contact_name",
    )
    search_help_text = (
        "Phone number (any format), message id, conversation id, CRM log id, CRM contact id or contact name."
    )
    fieldsets: ClassVar[_FieldsetSpec] = (
        (
            "Message",
            {
                "fields": (
                    "message_id",
                    "message_type",
                    "direction",
                    "phone_number",
                    "conversation_id",
                    "conversation_log_id",
                )
            },
        ),
        ("Who", {"fields": ("user", "platform", "account")}),
        CONTACT_FIELDSET,
        OUTCOME_FIELDSET,
    )
    readonly_fields = (
        "account",
        "decision_json",
        "last_error_text",
        "message_id",
        "message_type",
        "direction",
        "phone_number",
        "conversation_id",
        "conversation_log_id",
        "user",
        "platform",
        "contact_id",
        "contact_name",
        "contact_type",
        "contact_is_placeholder",
        "placeholder",
        "decided_by",
        "status",
        "attempts",
        "crm_log_id",
        "crm_write_started_at",
        "lease_until",
        "created_at",
        "updated_at",
    )

    def retry_logs(self, *, log_ids: list[int], resend: bool) -> RetrySummary:
        return message_logs_retry(log_ids=log_ids, resend=resend)


# --- the event trail -----------------------------------------------------------------------


@admin.register(LogEvent)
class LogEventAdmin(ExportMixin, HistoryAdmin):
    """Every entry of every log's trail, newest first (ids grow with time)."""

    resource_classes = [LogEventResource]
    export_formats = [CSV]
    skip_export_form = True
    ordering = ("-id",)
    date_hierarchy = "created_at"
    list_per_page = 100
    list_display = ("id", "time", "kind", "actor", "log", "what")
    list_display_links = ("id", "time")
    list_filter = ("kind", "decided_by", LogTypeListFilter, ("created_at", admin.DateFieldListFilter))
    search_fields = (
        "=call_log__session_id",
        "=message_log__message_id",
        "=call_log__crm_log_id",
        "=message_log__crm_log_id",
        "call_log__phone_number",
        "message_log__phone_number",
    )
    search_help_text = "Phone number (any format), session id, message id or CRM log id of the log."
    fields = ("time", "kind", "actor", "what", "log", "detail_json")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[LogEvent]:
        # The log's id only (no join loading a log's stored request).
        return (
            super()
            .get_queryset(request)
            .annotate(session_id=F("call_log__session_id"), message_id=F("message_log__message_id"))
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[LogEvent], search_term: str
    ) -> tuple[QuerySet[LogEvent], bool]:
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        number = phone_search_number(term=search_term.strip())
        if number:
            results = (
                results
                | queryset.filter(call_log__phone_number=number)
                | queryset.filter(message_log__phone_number=number)
            )
        return results, may_have_duplicates

    @admin.display(description="log")
    def log(self, event: Any) -> SafeString | str:
        if event.call_log_id:
            url = reverse("admin:logs_calllog_change", args=[event.call_log_id])
            return format_html('<a href="{}">Call {}</a>', url, event.session_id)
        if event.message_log_id:
            url = reverse("admin:logs_messagelog_change", args=[event.message_log_id])
            return format_html('<a href="{}">Message {}</a>', url, event.message_id)
        return "-"

    @admin.display(description="time", ordering="created_at")
    def time(self, event: LogEvent) -> str:
        return _event_time(event)

    @admin.display(description="by")
    def actor(self, event: LogEvent) -> str:
        return event_actor(kind=event.kind, decided_by=event.decided_by, detail=event.detail) or "-"

    @admin.display(description="what happened")
    def what(self, event: LogEvent) -> str:
        return redact(event_sentence(kind=event.kind, detail=event.detail))

    @admin.display(description="detail")
    def detail_json(self, event: LogEvent) -> SafeString:
        return _pretty_json(event.detail)


# --- the dashboard chart -------------------------------------------------------------------


def _active(day: DayActivity) -> bool:
    """Whether anything was recorded that day (the day table lists only those)."""
    return bool(day.calls_logged or day.messages_logged or day.placeholders or day.failures)


@dataclass(frozen=True, slots=True)
class _Series:
    attribute: str  # a DayActivity field
    label: str
    css_class: str


@dataclass(frozen=True, slots=True)
class DashboardPanel:
    """One small chart of the dashboard: a bar per day, series stacked, drawn as inline SVG."""

    title: str
    series: tuple[_Series, ...]
    empty_text: str = "Nothing yet"
    unit_width: int = 10  # SVG user units per day; the SVG scales to the page width
    height: int = 100

    def render(self, activity: list[DayActivity]) -> dict[str, Any]:
        totals = [sum(getattr(day, s.attribute) for s in self.series) for day in activity]
        peak = max([*totals, 1])
        bars = []
        for index, day in enumerate(activity):
            base = float(self.height)
            segments = []
            for series in self.series:
                value = getattr(day, series.attribute)
                if not value:
                    continue
                size = value / peak * (self.height - 4)
                base -= size
                segments.append(
                    {"y": round(base, 2), "height": round(size, 2), "css_class": series.css_class}
                )
            label = ", ".join(f"{getattr(day, s.attribute)} {s.label}" for s in self.series)
            bars.append(
                {
                    "x": index * self.unit_width + 1,
                    "width": self.unit_width - 2,
                    "segments": segments,
                    "title": f"{day.day.isoformat()}: {label}",
                }
            )
        return {
            "title": self.title,
            "empty_text": self.empty_text,
            "x_ticks": _day_ticks(activity),
            "y_ticks": _count_ticks(peak),
            "series": self.series,
            "total": sum(totals),
            "series_totals": [(s, sum(getattr(day, s.attribute) for day in activity)) for s in self.series],
            "peak": peak,
            "width": len(activity) * self.unit_width,
            "height": self.height,
            "bars": bars,
            "first_day": activity[0].day if activity else None,
            "last_day": activity[-1].day if activity else None,
        }


def _count_ticks(peak: int) -> list[dict[str, Any]]:
    """Y-axis ticks: 0, the peak, and a round value between when the peak leaves room;
    `bottom` in percent of the chart's height (bars reach height - 4 at the peak)."""
    scale = 96.0 / peak
    values = [0, peak]
    if peak >= 4:
        step = 10 ** (len(str(peak // 2)) - 1)
        middle = max(step, round(peak / 2 / step) * step)
        if 0 < middle < peak and peak - middle >= peak / 4:
            values.insert(1, middle)
    return [{"label": value, "bottom": round(value * scale, 2)} for value in values]


def _day_ticks(activity: list[DayActivity]) -> list[dict[str, Any]]:
    """X-axis ticks under their bars: every day over a week, else every Monday (plus the
    first and last day when no Monday is near); `left` in percent of the chart's width."""
    count = len(activity)
    if not count:
        return []
    chosen = [
        index
        for index, day in enumerate(activity)
        if count <= 7 or (day.day.weekday() == 0 and (count <= 31 or day.day.day <= 7))
    ]
    if count > 7:
        if not chosen or chosen[0] > 2:
            chosen.insert(0, 0)
        if chosen[-1] < count - 3:
            chosen.append(count - 1)
    label = "D j" if count <= 7 else "M j"
    return [
        {"label": dateformat.format(activity[i].day, label), "left": round((i + 0.5) / count * 100, 2)}
        for i in chosen
    ]


DASHBOARD_PANELS = (
    DashboardPanel("Calls logged", (_Series("calls_logged", "calls logged", "bar-calls"),), "No calls yet"),
    DashboardPanel(
        "Messages logged", (_Series("messages_logged", "messages logged", "bar-messages"),), "No messages yet"
    ),
    DashboardPanel(
        "Placeholder contacts created",
        (
            _Series("placeholders_by_rule", "by a rule", "bar-rule"),
            _Series("placeholders_by_hand", "by hand", "bar-hand"),
        ),
        "No placeholder contacts yet",
    ),
    DashboardPanel(
        "Failures (logs still failed)",
        (
            _Series("calls_failed", "calls", "bar-fail-calls"),
            _Series("messages_failed", "messages", "bar-fail-messages"),
        ),
        "No failures",
    ),
)
