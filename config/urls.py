"""Root URL configuration: App Connect's API at the root, the admin, and our OpenAPI schema.

App Connect's paths come first: its `/admin/settings` lives beside Django's admin.
"""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from sscl.conf import WEBHOOK_PATH
from sscl.views import RingCentralWebhookView

# The product's name on every admin page and the login page (Django's "Django administration").
admin.site.site_header = "App Connect connector server"
admin.site.site_title = "App Connect connector server"
admin.site.index_title = "Rules and log history"

urlpatterns = [
    path("", include("connector.api.urls")),
    path(WEBHOOK_PATH, RingCentralWebhookView.as_view(), name="ringcentral-webhook"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
