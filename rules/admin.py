"""Admin for the rules: accounts, rule settings, default placeholder names, the block list and
the placeholder registry.

Edits go through `rules.services` (which check values and drop the rules cache); each
change is kept in the row's history (django-simple-history).
"""

from __future__ import annotations

import csv
import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html
from django.utils.safestring import SafeString
from import_export import fields as export_fields
from import_export import resources as export_resources
from import_export import widgets as export_widgets
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV
from simple_history.admin import SimpleHistoryAdmin

from config.logging import redact
from connector.admin import PlatformListFilter, ReadOnlyAdmin
from connector.models import CrmUser
from connector.utils import InvalidPhoneNumber, phone_number_normalize
from rules.models import Account, BlockedNumber, PlaceholderContact, PlaceholderNameTemplate, RuleSetting
from rules.parameters import PARAMETERS, PLACEHOLDER_NAME_FIELDS, RULE_KEYS
from rules.selectors import (
    PREVIEW_CALLER_ID,
    PREVIEW_NUMBER,
    OpenPlaceholderRow,
    placeholder_name_preview,
    placeholder_relink_plans,
    placeholders_open_report,
    relink_unavailable_reason,
)
from rules.services import (
    RELINK_BATCH_LIMIT,
    RelinkSummary,
    account_save,
    blocked_number_clean,
    blocked_number_save,
    placeholder_logs_relink,
    placeholder_name_errors,
    placeholder_name_save,
    rule_row_delete,
    rule_setting_clean,
    rule_setting_save,
)


class GuardedHistoryAdmin(SimpleHistoryAdmin):
    """SimpleHistoryAdmin whose "revert to this version" form needs the change permission.

    django-simple-history checks only the view permission before saving a POST to a
    version's form, so a view-only auditor could revert a rule.
    """

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> Any:
        if request.method == "POST" and not self.has_change_permission(request):
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)


def _template_help(template: Any) -> SafeString:
    """A template field's help: its fields, and the name `template` gives a sample call."""
    fields = ", ".join(f"{{{name}}}" for name in PLACEHOLDER_NAME_FIELDS)
    help_text = format_html("May use {}.", fields)
    if isinstance(template, str) and template:
        try:
            preview = placeholder_name_preview(template=template)
        except ValueError:
            return help_text
        sample = f"an inbound call from {PREVIEW_NUMBER} ({PREVIEW_CALLER_ID})"
        return format_html("{} Preview for {}: <strong>{}</strong>", help_text, sample, preview)
    return help_text


def _setting_choices() -> list[tuple[str, Any]]:
    rules = [(key, f"{PARAMETERS[key].label} ({key})") for key in RULE_KEYS]
    others = sorted(
        ((key, f"{p.label} ({key})") for key, p in PARAMETERS.items() if not p.is_rule), key=lambda c: c[1]
    )
    return [("Auto-logging rules", rules), ("App Connect settings", others)]


class RuleSettingForm(forms.ModelForm):
    key = forms.ChoiceField(label="Setting", choices=_setting_choices)

    class Meta:
        model = RuleSetting
        fields = ("account", "key", "value", "customizable", "is_removed")
        help_texts = {
            "value": 'JSON: a rule\'s value in quotes, e.g. "createPlaceholder" or "Unknown caller {last4}"; '
            "true/false for switches.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "value" in self.fields and self.initial.get("key") == "defaultPlaceholderName":
            self.fields["value"].help_text = _template_help(self.initial.get("value"))

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        key, value = data.get("key"), data.get("value")
        if key and "value" in data:
            try:
                rule_setting_clean(key=key, value=value)
            except ValueError as exc:
                self.add_error("value", f"{key}: {exc}")
        return data


@admin.register(RuleSetting)
class RuleSettingAdmin(GuardedHistoryAdmin):
    form = RuleSettingForm
    list_display = ("key", "scope", "value_display", "customizable", "is_removed", "updated_at")
    list_filter = ("customizable", "is_removed", ("account", admin.EmptyFieldListFilter))
    list_select_related = ("account",)
    search_fields = ("key", "account__rc_account_id", "account__name")
    autocomplete_fields = ("account",)

    @admin.display(description="applies to", ordering="account")
    def scope(self, obj: RuleSetting) -> str:
        return str(obj.account) if obj.account_id else "Site-wide default"

    @admin.display(description="value")
    def value_display(self, obj: RuleSetting) -> str:
        return json.dumps(obj.value)

    def save_model(self, request: HttpRequest, obj: RuleSetting, form: Any, change: bool) -> None:
        rule_setting_save(setting=obj)

    def delete_model(self, request: HttpRequest, obj: RuleSetting) -> None:
        rule_row_delete(row=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for row in queryset:
            rule_row_delete(row=row)


class PlaceholderNameForm(forms.ModelForm):
    class Meta:
        model = PlaceholderNameTemplate
        fields = ("account", "contact_type", "template")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "template" in self.fields:  # absent from a view-only form
            self.fields["template"].help_text = _template_help(self.initial.get("template"))

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        errors = placeholder_name_errors(
            contact_type=data.get("contact_type") or "", template=data.get("template") or ""
        )
        for field_name, message in errors.items():
            self.add_error(field_name, message)
        return data


@admin.register(PlaceholderNameTemplate)
class PlaceholderNameTemplateAdmin(GuardedHistoryAdmin):
    form = PlaceholderNameForm
    list_display = ("contact_type", "template", "scope", "updated_at")
    list_select_related = ("account",)
    search_fields = ("template", "contact_type", "account__rc_account_id")
    autocomplete_fields = ("account",)

    @admin.display(description="applies to", ordering="account")
    def scope(self, obj: PlaceholderNameTemplate) -> str:
        return str(obj.account) if obj.account_id else "Site-wide default"

    def save_model(self, request: HttpRequest, obj: PlaceholderNameTemplate, form: Any, change: bool) -> None:
        placeholder_name_save(name=obj)

    def delete_model(self, request: HttpRequest, obj: PlaceholderNameTemplate) -> None:
        rule_row_delete(row=obj)


class BlockedNumberForm(forms.ModelForm):
    class Meta:
        model = BlockedNumber
        fields = ("account", "kind", "number", "note")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("kind") and data.get("number"):
            try:
                data["number"] = blocked_number_clean(kind=data["kind"], number=data["number"])
            except ValueError as exc:
                self.add_error("number", str(exc))
        return data


@admin.register(BlockedNumber)
class BlockedNumberAdmin(GuardedHistoryAdmin):
    """Numbers and prefixes that never become placeholder contacts."""

    form = BlockedNumberForm
    list_display = ("number", "kind", "scope", "note", "updated_at")
    list_filter = ("kind", ("account", admin.EmptyFieldListFilter))
    list_select_related = ("account",)
    search_fields = ("number", "note", "account__rc_account_id", "account__name")
    autocomplete_fields = ("account",)

    @admin.display(description="applies to", ordering="account")
    def scope(self, obj: BlockedNumber) -> str:
        return str(obj.account) if obj.account_id else "Site-wide"

    def save_model(self, request: HttpRequest, obj: BlockedNumber, form: Any, change: bool) -> None:
        blocked_number_save(entry=obj)

    def delete_model(self, request: HttpRequest, obj: BlockedNumber) -> None:
        rule_row_delete(row=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for row in queryset:
            rule_row_delete(row=row)


@admin.register(Account)
class AccountAdmin(GuardedHistoryAdmin):
    list_display = ("rc_account_id", "name", "created_at")
    search_fields = ("rc_account_id", "name", "account_key")
    readonly_fields = ("account_key", "created_at", "updated_at")
    fields = ("rc_account_id", "name", "account_key", "created_at", "updated_at")

    def save_model(self, request: HttpRequest, obj: Account, form: Any, change: bool) -> None:
        account_save(account=obj)


# --- the placeholder registry (read-only, exportable) ---


class _SafeTextWidget(export_widgets.CharWidget):
    """Free text as exported: credentials redacted, spreadsheet formulas turned into text."""

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        text = redact("" if value is None else str(value))
        return f"'{text}" if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


_ISO = "%Y-%m-%dT%H:%M:%S%z"


class PlaceholderContactResource(export_resources.ModelResource):
    """The columns of a placeholder-registry export (export only)."""

    created_by_name = export_fields.Field(
        attribute="created_by__name", column_name="created_by_name", widget=_SafeTextWidget(), readonly=True
    )
    rc_account_id = export_fields.Field(attribute="account__rc_account_id", column_name="rc_account_id")
    contact_name = export_fields.Field(
        attribute="contact_name", column_name="contact_name", widget=_SafeTextWidget(), readonly=True
    )
    last_error = export_fields.Field(
        attribute="last_error", column_name="last_error", widget=_SafeTextWidget(), readonly=True
    )
    created_at = export_fields.Field(
        attribute="created_at", column_name="created_at", widget=export_widgets.DateTimeWidget(_ISO)
    )
    updated_at = export_fields.Field(
        attribute="updated_at", column_name="updated_at", widget=export_widgets.DateTimeWidget(_ISO)
    )
    named_as = export_fields.Field(
        attribute="named_as", column_name="named_as", widget=_SafeTextWidget(), readonly=True
    )
    superseded_at = export_fields.Field(
        attribute="superseded_at", column_name="superseded_at", widget=export_widgets.DateTimeWidget(_ISO)
    )

    class Meta:
        model = PlaceholderContact
        fields = (
            "id",
            "created_at",
            "updated_at",
            "platform",
            "phone_number",
            "rc_account_id",
            "created_by",
            "created_by_name",
            "decided_by",
            "status",
            "attempts",
            "last_error",
            "contact_id",
            "contact_name",
            "contact_type",
            "life",
            "named_as",
            "superseded_by",
            "superseded_at",
        )
        export_order = fields

    def import_data(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("The placeholder registry is export-only.")


class CreatedByListFilter(admin.SimpleListFilter):
    """The CRM user whose call or contact creation made the placeholder (no credentials loaded)."""

    title = "created by user"
    parameter_name = "created_by"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        users = CrmUser.objects.order_by("name", "id").values_list("id", "name", "platform")
        return [(pk, f"{name or pk} ({platform})") for pk, name, platform in users]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(created_by_id=self.value()) if self.value() else queryset


@admin.register(PlaceholderContact)
class PlaceholderContactAdmin(ExportMixin, ReadOnlyAdmin):
    """The placeholder registry, read-only: rows are history. Exports the filtered list as CSV."""

    resource_classes = [PlaceholderContactResource]
    export_formats = [CSV]
    import_export_change_list_template = "admin/rules/placeholdercontact/change_list.html"  # links the report
    skip_export_form = True
    # The columns an auditor scans first (fits 1280 px); account (a filter), type, CRM id,
    # creator, attempts and platform are on the detail page.
    list_display = ("created_at", "phone_number", "contact_name", "decided_by", "status", "life")
    list_display_links = ("created_at", "phone_number")
    list_filter = (
        ("created_at", admin.DateFieldListFilter),
        "decided_by",
        "status",
        "life",
        PlatformListFilter,
        "account",
        CreatedByListFilter,
    )
    list_select_related = ("account", "created_by")
    list_per_page = 100
    show_full_result_count = False  # one COUNT per page, not two
    search_fields = ("phone_number", "=contact_id", "contact_name")
    search_help_text = "Phone number (any format), CRM contact id or contact name."
    date_hierarchy = "created_at"
    fieldsets = (
        ("Contact", {"fields": ("contact_id", "contact_name", "contact_type", "phone_number", "platform")}),
        ("Who decided", {"fields": ("decided_by", "created_by", "account", "scope_key", "rule_values")}),
        ("Creation", {"fields": ("status", "attempts", "last_error", "created_at", "updated_at")}),
        (
            "Life",
            {
                "fields": (
                    "life",
                    "life_reason",
                    "named_as",
                    "named_at",
                    "superseded_by",
                    "superseded_at",
                    "replaces",
                    "replaced_by",
                    "old_logs",
                )
            },
        ),
    )
    readonly_fields = (
        "contact_id",
        "contact_name",
        "contact_type",
        "phone_number",
        "platform",
        "decided_by",
        "created_by",
        "account",
        "scope_key",
        "rule_values",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "updated_at",
        "life",
        "life_reason",
        "named_as",
        "named_at",
        "superseded_by",
        "superseded_at",
        "replaces",
        "replaced_by",
        "old_logs",
    )

    actions = ("relink_old_logs",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[PlaceholderContact]:
        # The creating user's credentials are never loaded (so never decrypted or shown).
        return (
            super()
            .get_queryset(request)
            .select_related("account", "created_by")
            .defer(
                "created_by__access_token",
                "created_by__refresh_token",
                "created_by__platform_additional_info_json",
                "created_by__user_settings",
            )
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[PlaceholderContact], search_term: str
    ) -> tuple[QuerySet[PlaceholderContact], bool]:
        """The admin's search, plus the term read as a phone number in any format (stored E.164)."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if any(char.isdigit() for char in term):
            try:
                results = results | queryset.filter(phone_number=phone_number_normalize(term))
            except InvalidPhoneNumber:
                pass
        return results, may_have_duplicates

    @admin.display(description="rule values that decided")
    def rule_values(self, obj: PlaceholderContact) -> SafeString | str:
        if not obj.rule_snapshot:
            return "-"
        return format_html("<pre>{}</pre>", redact(json.dumps(obj.rule_snapshot, indent=2, sort_keys=True)))

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> PlaceholderContact | None:
        """The detail page's row with the placeholders it took over from and was replaced by,
        in its one query (Django's own lookup otherwise)."""
        if from_field is not None:
            return super().get_object(request, object_id, from_field)
        queryset = self.get_queryset(request).select_related("replaces", "replaced_by")
        try:
            return queryset.get(pk=self.opts.pk.to_python(object_id))
        except (PlaceholderContact.DoesNotExist, ValidationError, ValueError):
            return None

    @admin.display(description="replaced by")
    def replaced_by(self, obj: PlaceholderContact) -> str:
        try:
            return str(obj.replaced_by)
        except PlaceholderContact.DoesNotExist:
            return "-"

    @admin.display(description="old logs")
    def old_logs(self, obj: PlaceholderContact) -> str:
        """Whether the relink action can move the logs still on this placeholder."""
        unavailable = relink_unavailable_reason(placeholder=obj)
        if unavailable:
            return f"Moving them to another contact is unavailable: {unavailable}."
        return (
            f'The action "Move old logs" moves the calls and messages logged against it to contact '
            f"{obj.superseded_by}."
        )

    # --- moving a superseded placeholder's old logs to the real contact ---

    RELINK_PLACEHOLDER_LIMIT = 100

    def has_relink_permission(self, request: HttpRequest) -> bool:
        """Moving logs needs the registry's change permission, which auditors do not have
        (the registry itself stays read-only: the action goes through a service)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")

    @admin.action(
        description="Move old logs of selected superseded placeholders to the real contact",
        permissions=["relink"],
    )
    def relink_old_logs(
        self, request: HttpRequest, queryset: QuerySet[PlaceholderContact]
    ) -> HttpResponse | None:
        """First a confirmation page (what moves where, or why not); confirmed, the move."""
        ids = list(queryset.order_by("id").values_list("pk", flat=True)[: self.RELINK_PLACEHOLDER_LIMIT + 1])
        if len(ids) > self.RELINK_PLACEHOLDER_LIMIT:
            message = (
                f"Select at most {self.RELINK_PLACEHOLDER_LIMIT} placeholders at once (filter on life first)."
            )
            self.message_user(request, message, messages.ERROR)
            return None
        if request.POST.get("confirmed") != "yes":
            plans = placeholder_relink_plans(placeholder_ids=ids)
            movable = [plan for plan in plans if not plan.unavailable]
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Move old logs to the real contact",
                "plans": plans,
                "movable_logs": sum(plan.logs for plan in movable),
                "movable_activities": sum(plan.activities for plan in movable),
                "limit": RELINK_BATCH_LIMIT,
                "selected": ids,
                "action": "relink_old_logs",
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/rules/placeholdercontact/relink_confirmation.html", context
            )
        summary = placeholder_logs_relink(placeholder_ids=ids, admin=request.user.get_username())
        level = messages.WARNING if summary.failed or summary.left else messages.SUCCESS
        self.message_user(request, self.relink_message(summary), level)
        return None

    @staticmethod
    def relink_message(summary: RelinkSummary) -> str:
        parts = [f"{summary.moved} moved"]
        if summary.failed:
            reasons = ", ".join(f"{error} ({count})" for error, count in sorted(summary.errors.items()))
            parts.append(f"{summary.failed} failed: {reasons}")
        if summary.left:
            parts.append(f"{summary.left} left for the next run")
        for reason, count in sorted(summary.unavailable.items()):
            parts.append(f"{count} placeholder{'s' * (count != 1)} left alone: {reason}")
        return "Old logs: " + "; ".join(parts) + "."

    # --- the open-placeholder report: by age and calls, as a page and as CSV ---

    REPORT_COLUMNS = (
        "id",
        "created_at",
        "age_days",
        "calls",
        "last_call_at",
        "platform",
        "rc_account_id",
        "phone_number",
        "contact_id",
        "contact_name",
        "contact_type",
    )

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.report_view)
        return [path("open-report/", view, name="rules_placeholder_report"), *super().get_urls()]

    def report_view(self, request: HttpRequest) -> HttpResponse:
        """Open placeholders, oldest first, with the calls logged against each; `?format=csv`
        downloads the same rows."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = placeholders_open_report()
        if request.GET.get("format") == "csv":
            response = HttpResponse(content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = 'attachment; filename="open-placeholders.csv"'
            writer = csv.writer(response)
            writer.writerow(self.REPORT_COLUMNS)
            writer.writerows(self.report_line(row) for row in rows)
            return response
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Open placeholder contacts",
            "rows": rows,
        }
        return TemplateResponse(request, "admin/rules/placeholder_report.html", context)

    @staticmethod
    def report_line(row: OpenPlaceholderRow) -> list[Any]:
        """A report row as CSV cells (free text made safe for spreadsheets)."""
        placeholder, text = row.placeholder, _SafeTextWidget()
        last = row.last_call_at.strftime(_ISO) if row.last_call_at else ""
        return [
            placeholder.pk,
            placeholder.created_at.strftime(_ISO),
            row.age_days,
            row.calls,
            last,
            placeholder.platform,
            placeholder.account.rc_account_id if placeholder.account else "",
            placeholder.phone_number,
            text.render(placeholder.contact_id),
            text.render(placeholder.contact_name),
            placeholder.contact_type,
        ]
