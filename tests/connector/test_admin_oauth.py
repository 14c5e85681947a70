"""The admin shows OAuth users' token health and keeps accounts' OAuth app secrets write-only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from connector.models import CrmUser, ManagedOAuthApp

ACCESS, REFRESH, SECRET = "at-DO-NOT-SHOW-1c2d", "rt-DO-NOT-SHOW-9e8f", "app-secret-DO-NOT-SHOW-77aa"


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw-admin-1"))
    return client


@pytest.fixture(autouse=True)
def oauth_platform(settings) -> None:
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "PLATFORMS": {**settings.CONNECTOR["PLATFORMS"], "oauthtest": "tests.oauth_fake.OAuthTestCrm"},
    }


def test_a_connected_users_page_shows_token_health_never_a_token(admin_client: Client) -> None:
    expiry = timezone.now() + timedelta(minutes=42)
    user = CrmUser.objects.create(
        id="7-oauthtest",
        platform="oauthtest",
        name="Olive",
        access_token=ACCESS,
        refresh_token=REFRESH,
        token_expiry=expiry,
        token_refreshed_at=timezone.now(),
        auth_error="oauthtest revoked the grant",
    )

    listing = admin_client.get("/admin/connector/crmuser/").content.decode()
    page = admin_client.get(f"/admin/connector/crmuser/{user.pk}/change/").content.decode()

    for html in (listing, page):
        assert "oauthtest revoked the grant" in html
        assert ACCESS not in html and REFRESH not in html
    assert "Token expiry" in page and "Token refreshed at" in page


def test_an_accounts_oauth_app_secret_is_stored_encrypted_and_never_shown(admin_client: Client) -> None:
    form = {
        "rc_account_id": "37439510",
        "platform": "oauthtest",
        "client_id": "acct-client",
        "client_secret": SECRET,
        "token_url": "",
        "redirect_uri": "",
    }

    response = admin_client.post("/admin/connector/managedoauthapp/add/", form)

    assert response.status_code == 302
    app = ManagedOAuthApp.objects.get()
    assert app.client_secret == SECRET
    page = admin_client.get(f"/admin/connector/managedoauthapp/{app.pk}/change/").content.decode()
    assert SECRET not in page and "never shown again" in page
    # saved again with the secret left empty: the stored one stays
    response = admin_client.post(
        f"/admin/connector/managedoauthapp/{app.pk}/change/", {**form, "client_secret": "", "client_id": "c2"}
    )
    assert response.status_code == 302
    app.refresh_from_db()
    assert (app.client_id, app.client_secret) == ("c2", SECRET)


def test_a_new_oauth_app_needs_a_secret_and_an_oauth_platform(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/connector/managedoauthapp/add/",
        {"rc_account_id": "1", "platform": "builtin", "client_id": "c", "client_secret": ""},
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "client_secret" in errors and "platform" in errors
    assert not ManagedOAuthApp.objects.exists()
