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
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
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
from rules.choices import PreviewOutcome
from rules.forms import PREVIEW_CALLS_DEFAULT, RulesPageForm, name_field_name, value_display
from rules.models import Account, BlockedNumber, PlaceholderContact, PlaceholderNameTemplate, RuleSetting
from rules.parameters import PARAMETERS, RULE_KEYS, RULE_PARAMETERS, SettingKind
from rules.selectors import (
    PREVIEW_NUMBER,
    OpenPlaceholderRow,
    admin_settings_map,
    placeholder_name_preview,
    placeholder_relink_plans,
    placeholder_template_for,
    placeholders_open_report,
    recorded_calls_get,
    relink_unavailable_reason,
    rule_values_for_scope,
)
from rules.services import (
    RELINK_BATCH_LIMIT,
    RelinkSummary,
    RulesPreview,
    account_save,
    blocked_number_clean,
    blocked_number_save,
    contact_type_choices,
    placeholder_logs_relink,
    placeholder_names_scope_save,
    rule_row_delete,
    rule_setting_clean,
    rule_setting_save,
    rule_settings_scope_save,
    rules_preview,
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


def _setting_choices() -> list[tuple[str, Any]]:
    # The auto-logging rules are set on the rules page; this form keeps App Connect's own.
    return sorted(
        ((key, f"{p.label} ({key})") for key, p in PARAMETERS.items() if not p.is_rule), key=lambda c: c[1]
    )


class RuleSettingForm(forms.ModelForm):
    key = forms.ChoiceField(label="Setting", choices=_setting_choices)

    class Meta:
        model = RuleSetting
        fields = ("account", "key", "value", "customizable", "is_removed")
        help_texts = {
            "value": 'JSON: a value in quotes, e.g. "national"; true/false for switches.',
        }

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
    """Every admin-set setting row, with its history, for auditors. The auto-logging rules
    are read-only here: admins set them on the rules page (`rules_page_view`), one page per
    scope; App Connect's own settings can still be added and changed here."""

    form = RuleSettingForm
    change_list_template = "admin/rules/rulesetting/change_list.html"  # links the rules pages
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

    def has_change_permission(self, request: HttpRequest, obj: RuleSetting | None = None) -> bool:
        if obj is not None and obj.key in RULE_KEYS:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: RuleSetting | None = None) -> bool:
        if obj is not None and obj.key in RULE_KEYS:
            return False
        return super().has_delete_permission(request, obj)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        row = self.get_object(request, object_id)
        if row is not None and row.key in RULE_KEYS:
            url = rules_page_url(row.account_id)
            extra_context = {**(extra_context or {}), "rules_page_url": url}
            messages.info(
                request, format_html('Auto-logging rules are set on <a href="{}">the rules page</a>.', url)
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: RuleSetting, form: Any, change: bool) -> None:
        rule_setting_save(setting=obj)

    def delete_model(self, request: HttpRequest, obj: RuleSetting) -> None:
        rule_row_delete(row=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for row in queryset:
            if row.key in RULE_KEYS:
                raise PermissionDenied
        for row in queryset:
            rule_row_delete(row=row)

    # --- the rules page: one per scope -------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("page/", wrap(self.rules_page_view), name="rules_page"),
            path("page/<int:account_id>/", wrap(self.rules_page_view), name="rules_page_account"),
            path("page/name-preview/", wrap(self.name_preview_view), name="rules_name_preview"),
            *super().get_urls(),
        ]

    def rules_page_view(self, request: HttpRequest, account_id: int | None = None) -> HttpResponse:
        """A scope's rules as a form: each rule's value in force and where it comes from,
        the default placeholder names per contact type with their preview, and on
        "Preview" what the unsaved rules would have done with the latest recorded calls.
        Saving needs the right to change rule settings and placeholder names."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        account = get_object_or_404(Account, pk=account_id) if account_id is not None else None
        may_save = request.user.has_perms(RULES_PAGE_PERMISSIONS)
        contact_types = contact_type_choices()
        page = RulesPage(account=account, contact_types=contact_types)
        preview: RulesPreview | None = None
        if request.method == "POST":
            form = RulesPageForm(request.POST, contact_types=contact_types)
            if "_save" in request.POST and not may_save:
                raise PermissionDenied
            if form.is_valid() and "_save" in request.POST:
                try:
                    with transaction.atomic():
                        changed = rule_settings_scope_save(account=account, entries=form.entries())
                        changed += placeholder_names_scope_save(account=account, names=form.names())
                except ValueError as exc:
                    form.add_error(None, str(exc))
                else:
                    done = f"Saved {len(changed)} change{pluralize(len(changed))}" if changed else "No change"
                    messages.success(request, f"{done} to the rules of {page.scope_label}.")
                    return redirect(request.path)
            elif form.is_valid():
                calls = recorded_calls_get(
                    account=account, limit=form.cleaned_data.get("preview_calls") or PREVIEW_CALLS_DEFAULT
                )
                preview = rules_preview(page_account=account, entries=form.entries(), calls=calls)
        else:
            form = RulesPageForm(initial=page.initial(), contact_types=contact_types)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Auto-logging rules: {page.scope_label}",
            "page": page,
            "form": form,
            "rule_rows": page.rule_rows(form),
            "name_rows": page.name_rows(form),
            "preview": preview,
            "preview_counts": [(label, preview.counts[value]) for value, label in PreviewOutcome.choices]
            if preview
            else [],
            "may_save": may_save,
            "accounts": Account.objects.order_by("rc_account_id"),
            "account": account,
            "name_preview_url": reverse("admin:rules_name_preview"),
        }
        return TemplateResponse(request, "admin/rules/rules_page.html", context)

    def name_preview_view(self, request: HttpRequest) -> JsonResponse:
        """`?template=...&number=...`: the name the template gives a call from the number
        (JSON `{"name"}`), or why not (`{"error"}`, status 400). Writes nothing."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            name = name_preview(
                template=request.GET.get("template", ""), number=request.GET.get("number") or PREVIEW_NUMBER
            )
        except ValueError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        return JsonResponse({"name": name})


# Who may save a rules page: every write it makes.
RULES_PAGE_PERMISSIONS = tuple(
    f"rules.{action}_{model}"
    for model in ("rulesetting", "placeholdernametemplate")
    for action in ("add", "change", "delete")
)


def rules_page_url(account_id: int | None) -> str:
    if account_id is None:
        return reverse("admin:rules_page")
    return reverse("admin:rules_page_account", args=[account_id])


def name_preview(*, template: str, number: str) -> str:
    """The placeholder name `template` gives a sample call from `number` (any format);
    raises `ValueError` saying what is wrong with either."""
    try:
        phone_number = phone_number_normalize(number)
    except InvalidPhoneNumber as exc:
        raise ValueError(f"sample number: {exc}") from exc
    return placeholder_name_preview(template=template, phone_number=phone_number)


class RulesPage:
    """What the rules page of one scope shows besides the form: the values in force,
    where each comes from, and the placeholder names in force per contact type."""

    def __init__(self, *, account: Account | None, contact_types: list[tuple[str, str]]) -> None:
        self.account = account
        self.contact_types = contact_types
        self.scope_label = str(account) if account is not None else "site-wide"
        self.in_force = rule_values_for_scope(account=account)
        self.admin_map = admin_settings_map(account=account)
        rows = RuleSetting.objects.filter(key__in=RULE_KEYS)
        names = PlaceholderNameTemplate.objects.all()
        if account is not None:
            rows, names = rows.filter(account=account), names.filter(account=account)
        else:
            rows, names = rows.filter(account__isnull=True), names.filter(account__isnull=True)
        self.rows = {row.key: row for row in rows}
        self.names = {row.contact_type: row.template for row in names}

    def initial(self) -> dict[str, Any]:
        """The form as stored: rules set here, others showing the value they inherit."""
        snapshot = self.in_force.snapshot()
        initial: dict[str, Any] = {"sample_number": PREVIEW_NUMBER, "preview_calls": PREVIEW_CALLS_DEFAULT}
        for parameter in RULE_PARAMETERS:
            key, row = parameter.key, self.rows.get(parameter.key)
            initial[f"set_{key}"] = row is not None
            initial[key] = row.value if row is not None else snapshot[key]
            initial[f"custom_{key}"] = (
                row.customizable if row is not None else bool(self.admin_map[key].get("customizable"))
            )
        for index, (contact_type, _) in enumerate(self.contact_types):
            initial[name_field_name(index)] = self.names.get(contact_type, "")
        return initial

    def _sample(self, form: RulesPageForm) -> str:
        number = form.data.get("sample_number") if form.is_bound else None
        return str(number or PREVIEW_NUMBER)

    def rule_rows(self, form: RulesPageForm) -> list[dict[str, Any]]:
        snapshot = self.in_force.snapshot()
        rows = []
        for parameter in RULE_PARAMETERS:
            key = parameter.key
            source = self.in_force.sources[key]
            rows.append(
                {
                    "parameter": parameter,
                    "set": form[f"set_{key}"],
                    "value": form[key],
                    "custom": form[f"custom_{key}"],
                    "in_force": value_display(parameter, snapshot[key]),
                    "source": SOURCE_LABELS.get(source, source),
                    "users_may_change": bool(self.admin_map[key].get("customizable")),
                    "preview": self._name_preview(form, key, snapshot[key])
                    if parameter.kind == SettingKind.TEMPLATE
                    else None,
                }
            )
        return rows

    def _name_preview(self, form: RulesPageForm, field_name: str, in_force: str) -> dict[str, str]:
        typed = str(form.data.get(field_name) or "").strip() if form.is_bound else ""
        if form.is_bound and field_name in RULE_KEYS and not form.data.get(f"set_{field_name}"):
            typed = ""
        try:
            return {"name": name_preview(template=typed or in_force, number=self._sample(form))}
        except ValueError as exc:
            return {"error": str(exc)}

    def name_rows(self, form: RulesPageForm) -> list[dict[str, Any]]:
        rows = []
        for index, (contact_type, label) in enumerate(self.contact_types):
            template, source = placeholder_template_for(rules=self.in_force, contact_type=contact_type)
            field_name = name_field_name(index)
            rows.append(
                {
                    "contact_type": contact_type,
                    "label": label,
                    "field": form[field_name],
                    "in_force": template,
                    "source": source,
                    "preview": self._name_preview(form, field_name, template),
                }
            )
        return rows


SOURCE_LABELS = {"default": "default", "site": "site-wide", "account": "this account"}


@admin.register(PlaceholderNameTemplate)
class PlaceholderNameTemplateAdmin(GuardedHistoryAdmin):
    """Default placeholder names per contact type, with their history, for auditors; admins
    set them on the rules page, beside the `defaultPlaceholderName` rule they override."""

    change_list_template = "admin/rules/rulesetting/change_list.html"  # links the rules pages
    list_display = ("contact_type", "template", "scope", "updated_at")
    list_select_related = ("account",)
    search_fields = ("template", "contact_type", "account__rc_account_id")

    @admin.display(description="applies to", ordering="account")
    def scope(self, obj: PlaceholderNameTemplate) -> str:
        return str(obj.account) if obj.account_id else "Site-wide default"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
    readonly_fields = ("account_key", "rules", "created_at", "updated_at")
    fields = ("rc_account_id", "name", "account_key", "rules", "created_at", "updated_at")

    @admin.display(description="auto-logging rules")
    def rules(self, obj: Account) -> SafeString | str:
        if obj.pk is None:
            return "-"
        return format_html('<a href="{}">Set this account\'s rules</a>', rules_page_url(obj.pk))

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
    _sections: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("Contact", ("contact_id", "contact_name", "contact_type", "phone_number", "platform")),
        ("Who decided", ("decided_by", "created_by", "account", "scope_key", "rule_values")),
        ("Creation", ("status", "attempts", "last_error", "created_at", "updated_at")),
        (
            "Life",
            (
                "life",
                "life_reason",
                "named_as",
                "named_at",
                "superseded_by",
                "superseded_at",
                "replaces",
                "replaced_by",
                "old_logs",
            ),
        ),
    )
    fieldsets = tuple((title, {"fields": names}) for title, names in _sections)
    # every field shown is read-only (the registry is history), the computed ones included
    readonly_fields = tuple(name for _, names in _sections for name in names)

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
