"""Raynet staff (persons with a user account) are not contacts when ``contacts_exclude_users``
is on (the default) — in windows, and also when a contact is asked for by id or by field:
``crmsync sync --entity contact --id <user's person id>`` created the agent as a Daktela
contact ``crm_1``, and retries / webhooks read contacts by id the same way. Real engine and
CLI, both simulators over HTTP."""

from __future__ import annotations

from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli
from crmsync_tests.fixtures.raynet import RaynetEngineEnv, RaynetFactory


def test_sync_by_id_of_a_staff_person_is_not_found(raynet_engine_env: RaynetEngineEnv) -> None:
    env = raynet_engine_env
    staff = next(p for p in env.raynet.store.all("person") if p.get("userAccount"))
    customer = next(p for p in env.raynet.store.all("person") if not p.get("userAccount"))
    config = env.write_config(accounts=True, contacts=True, activities=False)
    result = CliRunner().invoke(cli, ["sync", "-c", str(config), "--entity", "contact",
                                      "--id", str(staff["id"]), "--id", str(customer["id"])])
    assert result.exit_code == 1, result.output  # one requested id is not a contact
    assert f"contact {staff['id']}: not_found" in result.output
    names = {c["name"] for c in env.daktela.all("contacts")}
    assert f"crm_{customer['id']}" in names and f"crm_{staff['id']}" not in names


def test_staff_are_not_contacts_by_id_or_field(make_demo_raynet: RaynetFactory) -> None:
    adapter = make_demo_raynet()
    staff_id = "1"
    staff = adapter.client.request("GET", f"person/{staff_id}/") or {}
    assert staff["data"]["activeUserAccount"] is True
    assert adapter.get_contact(staff_id) is None
    assert adapter.get_contacts([staff_id]) == {}
    assert adapter.find_contact_by("contactInfo.email", staff["data"]["contactInfo"]["email"]) is None
    # With contacts_exclude_users off they are contacts like any person.
    everyone = make_demo_raynet(contacts_exclude_users=False)
    assert everyone.get_contact(staff_id) is not None
