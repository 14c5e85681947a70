"""A RingCentral account is connected with an admin's JWT: from the service, the shell
(`manage.py ringcentral_connect`) and the admin. The RingCentral here is the loopback fake
of tests/crm_fakes/ringcentral.py."""

from __future__ import annotations

import base64
import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection as db_connection
from django.utils import timezone

from connector.models import RingCentralConnection
from connector.ringcentral import (
    RingCentralCredentialInvalid,
    RingCentralNotConfigured,
    RingCentralRefused,
    RingCentralUnavailable,
)
from connector.services import ringcentral_connect
from tests.crm_fakes.ringcentral import (
    ACCOUNT_ID,
    ADMIN_EXTENSION_ID,
    ADMIN_JWT,
    JWT_BEARER,
    USER_JWT,
    RingCentralFake,
    fake_jwt,
)

# --- the service --------------------------------------------------------------------------


def test_an_admins_jwt_connects_its_account_with_every_secret_encrypted(rc: RingCentralFake, db) -> None:
    connection = ringcentral_connect(jwt=ADMIN_JWT)

    assert (connection.rc_account_id, connection.rc_extension_id, connection.name) == (
        ACCOUNT_ID,
        ADMIN_EXTENSION_ID,
        "Ada Admin",
    )
    stored = RingCentralConnection.objects.get()
    assert (stored.jwt, stored.access_token, stored.refresh_token) == (ADMIN_JWT, "rc-at-1", "rc-rt-1")
    assert timedelta(minutes=59) < stored.token_expiry - timezone.now() <= timedelta(hours=1)
    assert stored.connected_at is not None and stored.last_error == ""
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT jwt, access_token, refresh_token FROM connector_ringcentralconnection")
        raw = cursor.fetchone()
    assert all(value.startswith("gAAAAA") for value in raw)  # Fernet tokens, not the secrets
    # The JWT bearer grant, with the app's credentials in a Basic header (jwt-flow guide).
    grant = rc.api.requests("POST", r"/restapi/oauth/token")[0]
    assert grant.form == {"grant_type": JWT_BEARER, "assertion": ADMIN_JWT}
    basic = base64.b64encode(f"{rc.client_id}:{rc.client_secret}".encode()).decode()
    assert grant.headers["authorization"] == f"Basic {basic}"
    # Whose tokens they are: the token's own extension.
    assert rc.api.requests("GET", r"/restapi/v1\.0/account/~/extension/~")[0].headers["authorization"] == (
        "Bearer rc-at-1"
    )


def test_the_history_keeps_no_secret(rc: RingCentralFake, db) -> None:
    ringcentral_connect(jwt=ADMIN_JWT)

    history_fields = {f.name for f in RingCentralConnection.history.model._meta.get_fields()}
    assert {"jwt", "access_token", "refresh_token"}.isdisjoint(history_fields)
    assert RingCentralConnection.history.get().name == "Ada Admin"


def test_connecting_an_account_again_replaces_its_jwt_and_tokens(rc: RingCentralFake, db) -> None:
    first = ringcentral_connect(jwt=ADMIN_JWT)
    rc.jwts[fake_jwt("new-" + ADMIN_EXTENSION_ID)] = ADMIN_EXTENSION_ID
    RingCentralConnection.objects.filter(pk=first.pk).update(last_error="refused", refresh_lease_owner="x")

    again = ringcentral_connect(jwt=fake_jwt("new-" + ADMIN_EXTENSION_ID))

    assert again.pk == first.pk and RingCentralConnection.objects.count() == 1
    again.refresh_from_db()
    assert again.jwt == fake_jwt("new-" + ADMIN_EXTENSION_ID)
    assert (again.access_token, again.refresh_token) == ("rc-at-2", "rc-rt-2")
    assert (again.token_version, again.last_error, again.refresh_lease_owner) == (
        first.token_version + 1,
        "",
        "",
    )


def test_without_the_servers_app_credentials_nothing_is_sent(rc: RingCentralFake, settings, db) -> None:
    settings.CONNECTOR = {**settings.CONNECTOR, "RINGCENTRAL_CLIENT_SECRET": ""}

    with pytest.raises(RingCentralNotConfigured, match="RINGCENTRAL_CLIENT_ID and RINGCENTRAL_CLIENT_SECRET"):
        ringcentral_connect(jwt=ADMIN_JWT)

    assert rc.api.requests() == [] and not RingCentralConnection.objects.exists()


def test_a_refused_jwt_stores_nothing(rc: RingCentralFake, db) -> None:
    with pytest.raises(RingCentralRefused) as refused:
        ringcentral_connect(jwt=fake_jwt("nobody"))

    assert refused.value.status_code == 400
    assert "invalid_grant" in str(refused.value)
    assert not RingCentralConnection.objects.exists()


def test_wrong_app_credentials_are_told_apart_from_a_refused_jwt(rc: RingCentralFake, settings, db) -> None:
    settings.CONNECTOR = {**settings.CONNECTOR, "RINGCENTRAL_CLIENT_SECRET": "wrong"}

    with pytest.raises(RingCentralRefused) as refused:
        ringcentral_connect(jwt=ADMIN_JWT)

    assert refused.value.status_code == 401 and "invalid_client" in str(refused.value)


@pytest.mark.parametrize("text", ["", "not a jwt", "a.b", "a.b.c d", "x" * 9000])
def test_text_that_is_no_jwt_is_refused_before_anything_is_sent(rc: RingCentralFake, text: str, db) -> None:
    with pytest.raises(RingCentralCredentialInvalid):
        ringcentral_connect(jwt=text)

    assert rc.api.requests() == []


def test_a_jwt_of_an_extension_that_is_no_admin_is_refused(rc: RingCentralFake, db) -> None:
    with pytest.raises(RingCentralRefused, match="not an admin") as refused:
        ringcentral_connect(jwt=USER_JWT)

    assert refused.value.status_code == 403
    assert not RingCentralConnection.objects.exists()


def test_an_unreachable_ringcentral_is_said_so(settings, db) -> None:
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "RINGCENTRAL_SERVER": "http://127.0.0.1:9",
        "RINGCENTRAL_CLIENT_ID": "id",
        "RINGCENTRAL_CLIENT_SECRET": "secret",
    }

    with pytest.raises(RingCentralUnavailable):
        ringcentral_connect(jwt=ADMIN_JWT)


def test_a_ringcentral_failing_at_its_token_endpoint_is_unavailable_not_a_refusal(
    rc: RingCentralFake, db
) -> None:
    from tests.crm_fakes.server import Reply

    rc.api.fail("POST", r"/restapi/oauth/token", Reply(503, {"errorCode": "CMN-211"}))

    with pytest.raises(RingCentralUnavailable):
        ringcentral_connect(jwt=ADMIN_JWT)


# --- the command --------------------------------------------------------------------------


def test_the_command_connects_and_prints_the_account_id_alone_on_its_last_line(
    rc: RingCentralFake, db
) -> None:
    out = io.StringIO()

    call_command("ringcentral_connect", "--jwt", ADMIN_JWT, stdout=out)

    lines = out.getvalue().strip().splitlines()
    assert lines[-1] == ACCOUNT_ID
    assert f"Connected RingCentral account {ACCOUNT_ID}" in lines[0] and ADMIN_JWT not in out.getvalue()
    assert RingCentralConnection.objects.get().rc_account_id == ACCOUNT_ID


def test_the_command_reads_the_jwt_from_the_environment(rc: RingCentralFake, monkeypatch, db) -> None:
    monkeypatch.setenv("RINGCENTRAL_JWT", ADMIN_JWT)
    out = io.StringIO()

    call_command("ringcentral_connect", stdout=out)

    assert out.getvalue().strip().splitlines()[-1] == ACCOUNT_ID


def test_the_command_reads_the_jwt_from_standard_input(rc: RingCentralFake, monkeypatch, db) -> None:
    monkeypatch.delenv("RINGCENTRAL_JWT", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(ADMIN_JWT + "\n"))
    out = io.StringIO()

    call_command("ringcentral_connect", stdout=out)

    assert out.getvalue().strip().splitlines()[-1] == ACCOUNT_ID


def test_the_command_fails_clearly_on_a_refused_jwt(rc: RingCentralFake, monkeypatch, db) -> None:
    monkeypatch.delenv("RINGCENTRAL_JWT", raising=False)

    with pytest.raises(CommandError, match="RingCentral refused the JWT"):
        call_command("ringcentral_connect", "--jwt", fake_jwt("nobody"), stdout=io.StringIO())

    assert not RingCentralConnection.objects.exists()


def test_the_command_without_any_jwt_says_where_to_give_one(rc: RingCentralFake, monkeypatch, db) -> None:
    monkeypatch.delenv("RINGCENTRAL_JWT", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    with pytest.raises(CommandError, match="RINGCENTRAL_JWT"):
        call_command("ringcentral_connect", stdout=io.StringIO())


# --- the admin ----------------------------------------------------------------------------


@pytest.fixture
def admin_client_logged(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def test_the_admin_connects_an_account_from_a_jwt_it_never_shows_again(
    rc: RingCentralFake, admin_client_logged, db
) -> None:
    add_url = "/admin/connector/ringcentralconnection/add/"
    page = admin_client_logged.get(add_url)
    assert page.status_code == 200
    assert b'type="password" name="jwt"' in page.content

    response = admin_client_logged.post(add_url, {"jwt": ADMIN_JWT})

    connection = RingCentralConnection.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/connector/ringcentralconnection/{connection.pk}/change/"
    pages = [
        admin_client_logged.get(response["Location"]),
        admin_client_logged.get("/admin/connector/ringcentralconnection/"),
        admin_client_logged.get(f"/admin/connector/ringcentralconnection/{connection.pk}/history/"),
    ]
    for shown in pages:
        assert shown.status_code == 200
        text = shown.content.decode()
        for secret in (ADMIN_JWT, connection.access_token, connection.refresh_token):
            assert secret not in text
    assert (
        ACCOUNT_ID in pages[0].content.decode()
        and "Connect again with a new JWT" in pages[0].content.decode()
    )


def test_the_admin_shows_why_a_jwt_was_refused(rc: RingCentralFake, admin_client_logged, db) -> None:
    response = admin_client_logged.post(
        "/admin/connector/ringcentralconnection/add/", {"jwt": fake_jwt("nobody")}
    )

    assert response.status_code == 200
    assert "RingCentral refused the JWT" in response.content.decode()
    assert fake_jwt("nobody") not in response.content.decode()
    assert not RingCentralConnection.objects.exists()
