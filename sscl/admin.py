"""Admin for server-side call logging: the per-account settings with the user mapping and
the subscription's health, the calls seen (those left to a person resolvable here), and
the raw deliveries.

Changes go through `sscl.services`; the views only render and report.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from connector.admin import ReadOnlyAdmin
from connector.models import CrmUser
from connector.services import contact_find, real_contacts
from sscl.choices import MappingSource, SessionState
from sscl.models import CallSession, ServerLogging, UserMapping, WebhookEvent, WebhookSubscription
from sscl.services import (
    ServerLoggingError,
    blocked_numbers_clean,
    call_session_resolve,
    call_session_retry,
    server_logging_check,
    server_logging_enable,
)


class ServerLoggingForm(forms.ModelForm):
    blocked_numbers_text = forms.CharField(
        label="Blocked numbers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        help_text="Phone numbers (E.164, e.g. +14155550100) and extension numbers whose calls are "
        "never logged; one per line or separated by commas.",
    )

    class Meta:
        model = ServerLogging
        fields = ("account", "enabled", "crm_user", "owner_mode")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["blocked_numbers_text"].initial = "\n".join(self.instance.blocked_numbers or [])
        crm_user_field = self.fields["crm_user"]
        assert isinstance(crm_user_field, forms.ModelChoiceField)
        crm_user_field.queryset = CrmUser.objects.exclude(access_token=None)

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        account, user = cleaned.get("account"), cleaned.get("crm_user")
        if cleaned.get("enabled") and account is not None and user is not None:
            try:
                server_logging_check(
                    account=account, crm_user=user, owner_mode=cleaned.get("owner_mode") or ""
                )
            except ServerLoggingError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return cleaned

    def clean_blocked_numbers_text(self) -> list[str]:
        text = self.cleaned_data.get("blocked_numbers_text") or ""
        try:
            return blocked_numbers_clean(text.replace("\n", ","))
        except ServerLoggingError as exc:
            raise forms.ValidationError(str(exc)) from exc


class UserMappingInline(admin.TabularInline):
    model = UserMapping
    extra = 0
    fields = ("extension_number", "rc_name", "rc_email", "crm_user_id", "crm_user_name", "source")
    readonly_fields = ("extension_number", "rc_name", "rc_email", "crm_user_name", "source")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ServerLogging)
class ServerLoggingAdmin(SimpleHistoryAdmin):
    form = ServerLoggingForm
    inlines = (UserMappingInline,)
    list_display = ("account", "enabled", "crm_user", "owner_mode", "subscription_health", "last_delivery")
    list_filter = ("enabled", "owner_mode")
    readonly_fields = ("subscription_detail", "enabled_at")
    fields = (
        "account",
        "enabled",
        "crm_user",
        "owner_mode",
        "blocked_numbers_text",
        "enabled_at",
        "subscription_detail",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ServerLogging]:
        return (
            super()
            .get_queryset(request)
            .select_related("account", "crm_user", "account__webhook_subscription")
        )

    @staticmethod
    def _subscription(obj: ServerLogging) -> WebhookSubscription | None:
        return getattr(obj.account, "webhook_subscription", None)

    @admin.display(description="subscription")
    def subscription_health(self, obj: ServerLogging) -> str:
        sub = self._subscription(obj)
        if sub is None or not sub.status:
            return "none"
        if sub.last_error:
            return f"{sub.get_status_display()} (error)"
        return sub.get_status_display()

    @admin.display(description="last delivery")
    def last_delivery(self, obj: ServerLogging) -> Any:
        sub = self._subscription(obj)
        return sub.last_delivery_at if sub else None

    @admin.display(description="webhook subscription")
    def subscription_detail(self, obj: ServerLogging) -> str:
        sub = self._subscription(obj) if obj.pk else None
        if sub is None:
            return "Not subscribed yet: it is created when logging is enabled."
        expires = (
            timezone.localtime(sub.expires_at).strftime("%Y-%m-%d %H:%M:%S") if sub.expires_at else "unknown"
        )
        return format_html(
            "Status: <strong>{}</strong> · id {} · expires {} · re-created {} time(s) · last delivery {}<br>"
            "Delivery address: {}<br>{}",
            sub.get_status_display() or "none",
            sub.rc_subscription_id or "(none)",
            expires,
            sub.recreated,
            timezone.localtime(sub.last_delivery_at).strftime("%Y-%m-%d %H:%M:%S")
            if sub.last_delivery_at
            else "never",
            sub.address or "(none)",
            f"Last error: {sub.last_error}" if sub.last_error else "",
        )

    def save_model(self, request: HttpRequest, obj: ServerLogging, form: Any, change: bool) -> None:
        result = server_logging_enable(
            account=obj.account,
            crm_user=obj.crm_user,
            owner_mode=obj.owner_mode,
            blocked_numbers=form.cleaned_data["blocked_numbers_text"],
            enabled=obj.enabled,
        )
        if result.subscription_error:
            messages.warning(request, result.subscription_error)
        obj.pk = result.setting.pk
        obj.refresh_from_db()

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        # a mapping an admin changed is kept by later automatic refreshes
        for mapping in formset.save(commit=False):
            mapping.source = MappingSource.ADMIN
            mapping.crm_user_name = (
                CrmUser.objects.filter(pk=mapping.crm_user_id).values_list("name", flat=True).first() or ""
            )
            mapping.save()


@admin.register(CallSession)
class CallSessionAdmin(ReadOnlyAdmin):
    list_display = (
        "telephony_session_id",
        "account",
        "rc_extension_id",
        "direction",
        "phone_number",
        "state",
        "attempts",
        "updated_at",
    )
    list_filter = ("state", "direction")
    search_fields = ("telephony_session_id", "session_id", "phone_number")
    readonly_fields = [f.name for f in CallSession._meta.fields if f.name not in ("lease_owner",)] + [
        "resolve_link"
    ]
    exclude = ("lease_owner",)
    actions = ("retry_failed",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[CallSession]:
        return super().get_queryset(request).select_related("account", "call_log")

    @admin.display(description="resolve")
    def resolve_link(self, obj: CallSession) -> str:
        if obj.state not in (SessionState.LEFT_TO_USER, SessionState.FAILED) or obj.call_log_id is None:
            return "-"
        url = reverse("admin:sscl_callsession_resolve", args=[obj.pk])
        return format_html('<a class="button" href="{}">Choose a contact or create the placeholder</a>', url)

    @admin.action(description="Retry the selected failed calls")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[CallSession]) -> None:
        if not request.user.has_perm("sscl.change_callsession"):
            raise PermissionDenied
        retried = 0
        for row in queryset.filter(state=SessionState.FAILED):
            call_session_retry(row=row)
            retried += 1
        messages.info(request, f"{retried} failed call(s) queued again; others were left alone.")

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:pk>/resolve/",
                self.admin_site.admin_view(self.resolve_view),
                name="sscl_callsession_resolve",
            )
        ]
        return own + super().get_urls()

    def resolve_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """A call the rules left to a person: pick one of the contacts the CRM finds for the
        number now, or create the placeholder; logged through the pipeline."""
        if not request.user.has_perm("sscl.change_callsession"):
            raise PermissionDenied
        row = get_object_or_404(CallSession.objects.select_related("call_log__user", "account"), pk=pk)
        back = reverse("admin:sscl_callsession_change", args=[row.pk])
        if request.method == "POST":
            try:
                state = call_session_resolve(
                    row=row,
                    contact_id=request.POST.get("contact_id", "").strip()[:255],
                    create_placeholder=request.POST.get("create_placeholder") == "1",
                )
            except ServerLoggingError as exc:
                messages.error(request, str(exc))
            else:
                messages.info(request, f"The call is now: {SessionState(state).label}.")
            return HttpResponseRedirect(back)
        contacts: list[dict[str, Any]] = []
        lookup_error = ""
        if row.call_log is not None and row.phone_number:
            lookup = contact_find(
                user=row.call_log.user, phone_number=row.call_log.phone_number or row.phone_number
            )
            contacts = real_contacts(lookup.contacts)
            if not lookup.successful:
                lookup_error = str((lookup.return_message or {}).get("message") or "")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Resolve a call left to a person",
            "row": row,
            "contacts": contacts,
            "lookup_error": lookup_error,
            "back": back,
        }
        return TemplateResponse(request, "admin/sscl/callsession/resolve.html", context)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ("uuid", "account", "telephony_session_id", "sequence", "received_at", "processed_at")
    list_filter = (("processed_at", admin.EmptyFieldListFilter),)
    search_fields = ("uuid", "telephony_session_id")
    date_hierarchy = "received_at"
