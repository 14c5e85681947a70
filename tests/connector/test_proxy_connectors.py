"""Proxy connectors stored as data: loaded by command or admin, selected by proxyId, and the
unknown-caller flow through App Connect's sample config (rewritten for a loopback fake)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from connector.crm.registry import crm_registry
from connector.models import CrmUser, ProxyConnector
from connector.services import proxy_connector_save
from tests.conftest import ApiClient, call_body
from tests.crm_fakes.restcrm import RestCrmFake
from tests.crm_fakes.server import served
from tests.rules.test_automatic_flow import set_rules

SAMPLE = Path(__file__).resolve().parents[1] / "crm_fakes" / "proxy_sample.json"
UNKNOWN = "+14155550199"


def sample() -> dict[str, Any]:
    return json.loads(SAMPLE.read_text())


def load(path: Path, *args: str, **env: str) -> list[str]:
    out = StringIO()
    call_command("load_proxy_config", str(path), *args, stdout=out)
    return out.getvalue().splitlines()


@pytest.fixture
def fake(settings, db) -> Iterator[RestCrmFake]:
    crm = RestCrmFake()
    with served(crm, settings):
        yield crm


@pytest.fixture
def connector(fake: RestCrmFake) -> ProxyConnector:
    return proxy_connector_save(config=sample(), secret_key=fake.secret_key)


# --- loading ----------------------------------------------------------------------------------


def test_the_command_creates_then_updates_and_prints_the_proxy_id_last(db, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RESTCRM_SECRET", "partner-secret-1")

    created = load(SAMPLE, "--secret-key-env", "RESTCRM_SECRET")

    row = ProxyConnector.objects.get()
    assert created[-1] == row.proxy_id
    assert (row.name, row.display_name, row.revision, row.secret_key) == (
        "restcrm",
        "Rest CRM",
        1,
        "partner-secret-1",
    )
    changed = sample()
    changed["meta"]["displayName"] = "Rest CRM (v2)"
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(changed))

    updated = load(path)

    row.refresh_from_db()
    assert updated[-1] == row.proxy_id  # same connector
    assert (row.display_name, row.revision, row.secret_key) == ("Rest CRM (v2)", 2, "partner-secret-1")
    assert row.history.count() == 2
    assert not hasattr(row.history.first(), "secret_key")  # the secret stays out of the history


HOSTILE = {
    "absolute URL to another host": (
        ("operations", "getUserInfo", "url"),
        "https://attacker.example/collect",
        "operations.getUserInfo.url",
    ),
    "secret in a URL": (
        ("operations", "findContact", "url"),
        "/contacts?key={{secretKey}}",
        "operations.findContact.url",
    ),
    "unknown variable": (
        ("operations", "createContact", "body", "name"),
        "{{customer.ssn}}",
        "operations.createContact",
    ),
    "unknown operation": (("operations", "deleteEverything"), {"url": "/x"}, "operations.deleteEverything"),
}


@pytest.mark.parametrize("fault", list(HOSTILE))
def test_a_refused_config_changes_nothing_and_names_its_fault(db, tmp_path, fault: str) -> None:
    where, value, named = HOSTILE[fault]
    config = sample()
    node = config
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = copy.deepcopy(value)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))

    with pytest.raises(CommandError) as refused:
        load(path)

    assert "The config was refused" in str(refused.value)
    assert named in str(refused.value), str(refused.value)
    assert not ProxyConnector.objects.exists()


def test_a_config_may_not_take_a_built_in_platforms_name(db, tmp_path) -> None:
    config = sample()
    config["meta"]["name"] = "pipedrive"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))

    with pytest.raises(CommandError, match=r"meta\.name: 'pipedrive' is the platform name of a built-in"):
        load(path)


def test_a_file_that_is_not_json_is_refused(db, tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")

    with pytest.raises(CommandError, match="is not JSON"):
        load(path)


# --- selection --------------------------------------------------------------------------------


def test_the_platform_name_selects_the_connector_and_a_save_rebuilds_it(connector: ProxyConnector) -> None:
    first = crm_registry.get("restcrm")
    assert crm_registry.get("restcrm") is first  # built once per revision

    changed = sample()
    changed["meta"]["displayName"] = "Renamed"
    proxy_connector_save(config=changed, proxy_id=connector.proxy_id)

    rebuilt = crm_registry.get("restcrm")
    assert rebuilt is not first and rebuilt.manifest()["displayName"] == "Renamed"


def test_the_manifest_is_served_for_the_platform_name(connector: ProxyConnector, anon: ApiClient) -> None:
    response = anon.get("/crmManifest", {"platformName": "restcrm"})

    assert response.status_code == 200
    manifest = response.json()["platforms"]["restcrm"]
    assert manifest["auth"]["type"] == "apiKey"
    assert [t["value"] for t in manifest["contactTypes"]] == ["Contact", "Lead"]
    assert RestCrmFake.secret_key not in response.content.decode()


def login(fake: RestCrmFake, connector: ProxyConnector, **extra: Any) -> Any:
    body = {"platform": "restcrm", "apiKey": fake.api_key, "proxyId": connector.proxy_id, **extra}
    return ApiClient().post("/apiKeyLogin", body)


def test_login_with_the_proxy_id_keeps_it_with_the_user(fake: RestCrmFake, connector: ProxyConnector) -> None:
    response = login(fake, connector)

    assert response.status_code == 200, response.content
    user = CrmUser.objects.get(pk=fake.user_id)
    assert user.platform_additional_info["proxyId"] == connector.proxy_id


def test_a_proxy_id_of_another_platform_is_refused(fake: RestCrmFake, connector: ProxyConnector) -> None:
    response = ApiClient().post(
        "/apiKeyLogin", {"platform": "builtin", "apiKey": "x", "proxyId": connector.proxy_id}
    )

    assert (response.status_code, response.json()) == (
        400,
        {"error": f"Proxy connector {connector.proxy_id!r} is not platform 'builtin'."},
    )


# --- the unknown caller through the sample config ----------------------------------------------


def test_unknown_caller_by_hand(fake: RestCrmFake, connector: ProxyConnector) -> None:
    api = ApiClient(login(fake, connector).json()["jwtToken"])

    lookup = api.get("/contact", {"phoneNumber": UNKNOWN}).json()
    assert [c["id"] for c in lookup["contact"]] == ["createNewContact"]
    created = api.post(
        "/contact", {"phoneNumber": UNKNOWN, "newContactName": "Jane Caller", "newContactType": "Lead"}
    ).json()
    assert created["successful"] is True, created
    contact_id = created["contact"]["id"]
    logged = api.post("/callLog", call_body(session_id="s-1", phone=UNKNOWN, contact_id=contact_id)).json()

    assert logged["successful"] is True, logged
    assert [str(c["id"]) for c in fake.contacts_with_phone(UNKNOWN)] == [str(contact_id)]
    [activity] = fake.call_logs()
    assert str(activity["contact_id"]) == str(contact_id)
    print("\nproxy (restcrm), by hand:", *(r.summary() for r in fake.api.seen), sep="\n  ")


def test_unknown_caller_by_rule_one_placeholder_for_every_call(
    fake: RestCrmFake, connector: ProxyConnector
) -> None:
    set_rules(unknownContactAction="createPlaceholder")
    api = ApiClient(login(fake, connector).json()["jwtToken"])

    for session in ("s-1", "s-2"):
        body = call_body(session_id=session, phone=UNKNOWN)
        assert api.post("/callLog", body).json()["successful"] is True

    [contact] = fake.contacts_with_phone(UNKNOWN)
    assert contact["name"] == "Jane Caller"
    assert {str(a["contact_id"]) for a in fake.call_logs()} == {str(contact["id"])}
    assert len(fake.call_logs()) == 2


# --- admin --------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw-admin-1"))
    return client


def test_the_admin_refuses_a_bad_config_with_its_faults(admin_client: Client) -> None:
    config = sample()
    config["operations"]["getUserInfo"]["url"] = "https://attacker.example/collect"

    response = admin_client.post(
        "/admin/connector/proxyconnector/add/", {"config": json.dumps(config), "secret_key": ""}
    )

    assert response.status_code == 200
    assert "operations.getUserInfo.url" in response.content.decode()
    assert not ProxyConnector.objects.exists()


def test_the_admin_saves_a_config_and_never_shows_its_secret(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/connector/proxyconnector/add/",
        {"config": json.dumps(sample()), "secret_key": "s3cr3t-DO-NOT-SHOW"},
    )

    assert response.status_code == 302
    row = ProxyConnector.objects.get()
    assert row.secret_key == "s3cr3t-DO-NOT-SHOW"
    page = admin_client.get(f"/admin/connector/proxyconnector/{row.pk}/change/").content.decode()
    assert "s3cr3t-DO-NOT-SHOW" not in page
    history = admin_client.get(f"/admin/connector/proxyconnector/{row.pk}/history/").content.decode()
    assert "s3cr3t-DO-NOT-SHOW" not in history


def test_try_it_shows_requests_and_results_with_credentials_masked(
    admin_client: Client, fake: RestCrmFake, connector: ProxyConnector
) -> None:
    fake.add_contact(name="Known Person", phone="4155550100")
    response = admin_client.post(
        f"/admin/connector/proxyconnector/{connector.pk}/try/",
        {"api_key": fake.api_key, "additional_info": "{}", "phone_number": "+14155550100"},
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Known Person" in page and "GET https://api.restcrm.example/v1/authentication" in page
    assert fake.api_key not in page and fake.secret_key not in page
    assert not CrmUser.objects.exists()  # nothing stored
