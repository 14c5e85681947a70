"""App Connect's paths, exactly as the client calls them."""

from django.urls import path

from connector.api import views

urlpatterns = [
    path("isAlive", views.IsAliveApi.as_view(), name="is-alive"),
    path("crmManifest", views.CrmManifestApi.as_view(), name="crm-manifest"),
    path("implementedInterfaces", views.ImplementedInterfacesApi.as_view(), name="implemented-interfaces"),
    path("oauth-callback", views.OAuthCallbackApi.as_view(), name="oauth-callback"),
    path("apiKeyLogin", views.ApiKeyLoginApi.as_view(), name="api-key-login"),
    path("authValidation", views.AuthValidationApi.as_view(), name="auth-validation"),
    path("unAuthorize", views.UnauthorizeApi.as_view(), name="unauthorize"),
    path("contact", views.ContactApi.as_view(), name="contact"),
    path("custom/contact/search", views.ContactSearchApi.as_view(), name="contact-search"),
    path("callLog", views.CallLogApi.as_view(), name="call-log"),
    path("callLog/cacheNote", views.CallNoteCacheApi.as_view(), name="call-log-cache-note"),
    path("messageLog", views.MessageLogCreateApi.as_view(), name="message-log"),
    path("user/settings", views.UserSettingsApi.as_view(), name="user-settings"),
    path("user/preloadSettings", views.UserPreloadSettingsApi.as_view(), name="user-preload-settings"),
    path("admin/settings", views.AdminSettingsApi.as_view(), name="admin-settings"),
    path(
        "admin/serverLoggingSettings",
        views.ServerLoggingSettingsApi.as_view(),
        name="server-logging-settings",
    ),
]
