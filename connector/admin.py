"""Admin for connected CRM users and the built-in CRM.

Credentials never reach a form, a list or a page: the CRM user admin is read-only and
names only non-secret fields; built-in API keys show their prefix alone.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from connector.choices import AuthType
from connector.conf import connector_settings
from connector.crm.registry import crm_registry
from connector.models import (
    BuiltinActivity,
    BuiltinApiKey,
    BuiltinContact,
    BuiltinContactPhone,
    BuiltinCrmUser,
    CrmUser,
    ManagedOAuthApp,
    ProxyConnector,
    RingCentralConnection,
)
from connector.ringcentral import RingCentralError
from connector.services import (
    builtin_api_key_revoke,
    proxy_config_errors,
    proxy_connector_save,
    proxy_connector_try,
    ringcentral_connect,
)
from connector.utils import InvalidPhoneNumber, phone_number_normalize


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewing only: no add, change or delete (the history screens of every app use it)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PlatformListFilter(admin.SimpleListFilter):
    """The configured CRM platforms (no query: read from settings)."""

    title = "platform"
    parameter_name = "platform"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in connector_settings.PLATFORMS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(platform=self.value()) if self.value() else queryset


@admin.register(CrmUser)
class CrmUserAdmin(ReadOnlyAdmin):
    # Only these fields exist on the page: the encrypted credentials are never rendered.
    fields = (
        "id",
        "platform",
        "name",
        "hostname",
        "rc_account_id",
        "timezone_name",
        "timezone_offset",
        "connected",
        "token_expiry",
        "token_refreshed_at",
        "auth_error",
        "user_settings",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    list_display = (
        "id",
        "name",
        "platform",
        "rc_account_id",
        "connected",
        "token_expiry",
        "auth_error_short",
    )
    list_filter = ("platform",)
    search_fields = ("id", "name", "rc_account_id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[CrmUser]:
        return super().get_queryset(request).defer("refresh_token", "platform_additional_info_json")

    @admin.display(boolean=True, description="connected")
    def connected(self, obj: CrmUser) -> bool:
        return obj.is_connected

    @admin.display(description="last error", ordering="auth_error")
    def auth_error_short(self, obj: CrmUser) -> str:
        return obj.auth_error[:60] + ("…" if len(obj.auth_error) > 60 else "")


class ManagedOAuthAppForm(forms.ModelForm):
    """The client secret is written, never shown: the field starts empty, and left empty
    it keeps the stored secret."""

    client_secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Stored encrypted and never shown again. Leave empty to keep the current secret.",
    )
    token_url = forms.URLField(
        required=False, assume_scheme="https", help_text="Leave empty for the CRM's own token endpoint."
    )
    redirect_uri = forms.URLField(
        required=False, assume_scheme="https", help_text="Leave empty for RingCentral's hosted redirect page."
    )

    class Meta:
        model = ManagedOAuthApp
        fields = ("rc_account_id", "platform", "client_id", "client_secret", "token_url", "redirect_uri")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["client_secret"] = ""
        oauth_platforms = [
            name
            for name in connector_settings.PLATFORMS
            if crm_registry.get(name).auth_type == AuthType.OAUTH
        ]
        self.fields["platform"] = forms.ChoiceField(choices=[(name, name) for name in oauth_platforms])

    def clean_client_secret(self) -> str:
        secret: str = self.cleaned_data.get("client_secret") or ""
        if secret:
            return secret
        if self.instance.pk:
            return str(ManagedOAuthApp.objects.get(pk=self.instance.pk).client_secret)
        raise forms.ValidationError("Enter the OAuth app's client secret.")


@admin.register(ManagedOAuthApp)
class ManagedOAuthAppAdmin(admin.ModelAdmin):
    """A RingCentral account's own OAuth app for a CRM (App Connect's admin-managed OAuth)."""

    form = ManagedOAuthAppForm
    list_display = ("rc_account_id", "platform", "client_id", "updated_at")
    list_filter = (PlatformListFilter,)
    search_fields = ("rc_account_id", "client_id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ManagedOAuthApp]:
        return super().get_queryset(request).defer("client_secret")


class ApiKeyInline(admin.TabularInline):
    model = BuiltinApiKey
    fields = ("prefix", "created_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(BuiltinCrmUser)
class BuiltinCrmUserAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)
    inlines = (ApiKeyInline,)


@admin.register(BuiltinApiKey)
class BuiltinApiKeyAdmin(ReadOnlyAdmin):
    list_display = ("prefix", "user", "created_at", "revoked_at")
    list_filter = ("revoked_at",)
    list_select_related = ("user",)
    fields = ("prefix", "user", "created_at", "revoked_at")
    readonly_fields = fields
    actions = ("revoke",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Needed for the revoke action; the form itself has no editable field.
        return request.user.has_perm("connector.change_builtinapikey")

    @admin.action(description="Revoke the selected keys (and disconnect their sessions)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[BuiltinApiKey]) -> None:
        for key in queryset:
            builtin_api_key_revoke(api_key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


class PhoneForm(forms.ModelForm):
    class Meta:
        model = BuiltinContactPhone
        fields = ("phone_number",)

    def clean_phone_number(self) -> str:
        # Numbers typed in any format are stored in E.164, so every lookup finds them.
        try:
            return phone_number_normalize(self.cleaned_data["phone_number"])
        except InvalidPhoneNumber as exc:
            raise forms.ValidationError(str(exc)) from exc


class PhoneInline(admin.TabularInline):
    model = BuiltinContactPhone
    form = PhoneForm
    extra = 1


@admin.register(BuiltinContact)
class BuiltinContactAdmin(admin.ModelAdmin):
    list_display = ("name", "contact_type", "created_by", "created_at", "updated_at")
    list_filter = ("contact_type", "created_at")
    list_select_related = ("created_by",)
    search_fields = ("name", "phone_numbers__phone_number", "=id")
    inlines = (PhoneInline,)


@admin.register(BuiltinActivity)
class BuiltinActivityAdmin(ReadOnlyAdmin):
    list_display = ("subject", "kind", "contact", "owner", "created_at")
    list_filter = ("kind", "created_at")
    list_select_related = ("contact", "owner")
    search_fields = ("subject", "=id", "contact__name")
    date_hierarchy = "created_at"


class ProxyConnectorForm(forms.ModelForm):
    """The config as JSON, validated in full before it is saved (every fault listed, each
    naming its operation and path); the secret key is written, never shown."""

    config = forms.JSONField(
        widget=forms.Textarea(attrs={"rows": 30, "cols": 100, "style": "font-family: monospace"}),
        help_text="App Connect's proxy connector format: meta, auth, requestDefaults, operations.",
    )
    secret_key = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="{{secretKey}} in the config. Stored encrypted and never shown again; leave empty "
        "to keep the current one.",
    )

    class Meta:
        model = ProxyConnector
        fields = ("config", "secret_key")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["secret_key"] = ""

    def clean_config(self) -> Any:
        config = self.cleaned_data.get("config")
        errors = proxy_config_errors(
            config=config, proxy_id=self.instance.proxy_id if self.instance.pk else ""
        )
        if errors:
            raise forms.ValidationError(errors)
        return config


class ProxyTryForm(forms.Form):
    api_key = forms.CharField(
        label="API key", widget=forms.PasswordInput(render_value=False), required=False, max_length=2000
    )
    additional_info = forms.JSONField(
        label="Additional login fields", required=False, initial=dict, help_text="A JSON object, e.g. {}"
    )
    phone_number = forms.CharField(max_length=32, initial="+14155550100")

    def clean_additional_info(self) -> dict[str, Any]:
        value = self.cleaned_data.get("additional_info") or {}
        if not isinstance(value, dict):
            raise forms.ValidationError("Enter a JSON object.")
        return value

    def clean_phone_number(self) -> str:
        try:
            return phone_number_normalize(self.cleaned_data["phone_number"])
        except InvalidPhoneNumber as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(ProxyConnector)
class ProxyConnectorAdmin(SimpleHistoryAdmin):
    """REST CRMs described in JSON. Saving validates the whole config; "Try it" runs its
    getUserInfo and findContact against the real CRM with credentials the admin types,
    storing nothing and masking every credential in what it shows."""

    form = ProxyConnectorForm
    list_display = ("name", "display_name", "proxy_id", "revision", "updated_at", "try_link")
    readonly_fields = ("proxy_id", "name", "display_name", "revision", "updated_at")
    search_fields = ("name", "display_name", "proxy_id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProxyConnector]:
        return super().get_queryset(request).defer("secret_key")

    def save_model(self, request: HttpRequest, obj: ProxyConnector, form: Any, change: bool) -> None:
        saved = proxy_connector_save(
            config=form.cleaned_data["config"],
            secret_key=form.cleaned_data.get("secret_key") or None,
            proxy_id=obj.proxy_id if change else "",
        )
        obj.pk, obj.proxy_id, obj.name = saved.pk, saved.proxy_id, saved.name

    @admin.display(description="try it")
    def try_link(self, obj: ProxyConnector) -> str:
        return format_html(
            '<a href="{}">Try it</a>', reverse("admin:connector_proxyconnector_try", args=[obj.pk])
        )

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:object_id>/try/",
                self.admin_site.admin_view(self.try_view),
                name="connector_proxyconnector_try",
            ),
            *super().get_urls(),
        ]

    def try_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        connector = get_object_or_404(ProxyConnector, pk=object_id)
        if not self.has_change_permission(request, connector):
            raise PermissionDenied
        form = ProxyTryForm(request.POST or None)
        report = None
        if request.method == "POST" and form.is_valid():
            report = proxy_connector_try(
                connector=connector,
                api_key=form.cleaned_data["api_key"],
                additional_info=form.cleaned_data["additional_info"],
                phone_number=form.cleaned_data["phone_number"],
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": connector,
            "title": f"Try {connector}",
            "form": form,
            "report": report,
            "report_json": json.dumps(report, indent=2, default=str) if report is not None else "",
        }
        return TemplateResponse(request, "admin/connector/proxyconnector/try_it.html", context)


class RingCentralConnectForm(forms.Form):
    jwt = forms.CharField(
        label="JWT credential",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "size": 80}),
        max_length=8192,
        help_text="A RingCentral admin's JWT credential (Developer Console, Credentials).",
    )


@admin.register(RingCentralConnection)
class RingCentralConnectionAdmin(SimpleHistoryAdmin):
    """RingCentral accounts connected with an admin's JWT (server-side call logging).

    Adding one, or connecting one again, goes through `ringcentral_connect` on a page of
    its own (no transaction is open while RingCentral is asked). The JWT and the tokens
    never reach a page: only their expiry, last refresh and last error are shown.
    """

    fields = (
        "rc_account_id",
        "name",
        "rc_extension_id",
        "connected_at",
        "token_expiry",
        "token_refreshed_at",
        "last_error",
        "connect_again",
    )
    readonly_fields = fields
    list_display = (
        "rc_account_id",
        "name",
        "rc_extension_id",
        "token_expiry",
        "token_refreshed_at",
        "last_error_short",
        "connected_at",
    )
    search_fields = ("rc_account_id", "name", "rc_extension_id")
    history_list_display = ("name", "rc_extension_id", "last_error")

    def get_queryset(self, request: HttpRequest) -> QuerySet[RingCentralConnection]:
        return super().get_queryset(request).defer("jwt", "access_token", "refresh_token")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # read-only; a new JWT comes through the connect page

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Its webhook subscription would outlive it at RingCentral: disconnecting is a
        # service of its own (server-side logging), not a row deletion.
        return False

    @admin.display(description="last error", ordering="last_error")
    def last_error_short(self, obj: RingCentralConnection) -> str:
        return obj.last_error[:60] + ("…" if len(obj.last_error) > 60 else "")

    @admin.display(description="JWT")
    def connect_again(self, obj: RingCentralConnection) -> str:
        return format_html(
            'Stored encrypted, never shown. <a href="{}">Connect again with a new JWT</a>',
            reverse("admin:connector_ringcentralconnection_add"),
        )

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """The connect page instead of a model form: the account is whatever the JWT says."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = RingCentralConnectForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                connection = ringcentral_connect(jwt=form.cleaned_data["jwt"])
            except RingCentralError as exc:
                form.add_error(None, str(exc))
            else:
                self.log_addition(request, connection, [{"added": {}}])
                self.message_user(
                    request, f"Connected RingCentral account {connection.rc_account_id}.", messages.SUCCESS
                )
                return HttpResponseRedirect(
                    reverse("admin:connector_ringcentralconnection_change", args=[connection.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Connect a RingCentral account",
            "form": form,
        }
        return TemplateResponse(request, "admin/connector/ringcentralconnection/connect.html", context)
