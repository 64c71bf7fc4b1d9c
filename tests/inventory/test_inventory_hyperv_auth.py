"""Hyper-V authentication (issue 12 item 6): NTLM with WinRM message encryption over
http, NTLM over verified https, Basic only when the job opts in.

The real pywinrm client (requests_ntlm, pyspnego) against the local WS-Man endpoint,
whose NTLM acceptor is pyspnego's own and which refuses unsealed SOAP over http as a
stock Windows host does (wsman_server.py).
"""

from __future__ import annotations

import base64

import pytest

from engine.inventory.base import InventoryError, list_machines, lookup
from engine.inventory.hyperv import SCRIPT

from .conftest import HV_PASSWORD, HV_USER


def _script_on_the_wire() -> bytes:
    """The inventory script as it appears inside a clear SOAP Command body."""
    return base64.b64encode(SCRIPT.encode("utf-16-le"))[:64]


def test_ntlm_over_http_seals_every_soap_body(wsman_factory, hv_settings):
    fake, _ = wsman_factory("ntlm")
    machines = list_machines(hv_settings(fake))

    assert sorted(m.name for m in machines) == ["build", "db01", "web01"]
    assert fake.logins == [HV_USER]  # one NTLM login for the whole command (one connection)
    # create, command, receive, signal, delete: each one sealed, none in clear
    assert fake.encrypted >= 5 and fake.soap_in_clear == 0
    wire = b"".join(fake.bodies)
    assert _script_on_the_wire() not in wire and b"Envelope" not in wire
    assert HV_PASSWORD.encode() not in wire and HV_PASSWORD.encode("utf-16-le") not in wire
    assert fake.scripts == [SCRIPT] and fake.open_shells == {}


def test_ntlm_wrong_password_is_a_login_error(wsman_factory, hv_settings, monkeypatch):
    fake, _ = wsman_factory("ntlm")
    settings = hv_settings(fake)
    monkeypatch.setenv(settings.password_env, "not-the-password")
    with pytest.raises(InventoryError) as err:
        list_machines(settings)
    assert err.value.reason == "login" and "login refused for user 'ferry'" in str(err.value)
    assert fake.logins == [] and fake.scripts == []


def test_https_with_the_hosts_ca_file(wsman_factory, hv_settings):
    fake, ca = wsman_factory("ntlm", tls=True)
    machines = list_machines(hv_settings(fake, protocol="https", ca_file=str(ca)))
    assert len(machines) == 3 and fake.logins == [HV_USER]
    assert fake.encrypted == 0  # TLS protects the bodies; NTLM carried the channel binding


def test_https_certificate_not_trusted_without_its_ca(wsman_factory, hv_settings):
    fake, _ = wsman_factory("ntlm", tls=True)
    result = lookup(hv_settings(fake, protocol="https"))
    assert not result.ok and "TLS certificate not trusted" in result.warning
    assert "ca_file" in result.warning
    assert fake.logins == [] and fake.scripts == []


def test_https_another_hosts_certificate_is_refused(wsman_factory, hv_settings):
    fake, _ = wsman_factory("ntlm", tls=True)
    _, other_ca = wsman_factory("ntlm", tls=True)  # a CA file, but not this host's
    result = lookup(hv_settings(fake, protocol="https", ca_file=str(other_ca)))
    assert not result.ok and "TLS certificate not trusted" in result.warning
    assert fake.scripts == []


def test_unverified_https_needs_allow_insecure(wsman_factory, hv_settings):
    fake, _ = wsman_factory("ntlm", tls=True)
    with pytest.raises(InventoryError) as err:
        list_machines(hv_settings(fake, protocol="https", verify_tls=False))
    assert "verify_tls" in str(err.value) and "allow_insecure" in str(err.value)
    assert fake.requests == 0  # refused before a byte was sent
    machines = list_machines(hv_settings(fake, protocol="https", verify_tls=False,
                                         allow_insecure=True))
    assert len(machines) == 3


def test_basic_over_http_needs_allow_insecure(wsman_factory, hv_settings):
    fake, _ = wsman_factory("basic")
    with pytest.raises(InventoryError) as err:
        list_machines(hv_settings(fake, auth="basic"))
    assert err.value.reason == "protocol"
    assert "Basic over http sends the password in clear" in str(err.value)
    assert "allow_insecure" in str(err.value) and fake.requests == 0
    machines = list_machines(hv_settings(fake, auth="basic", allow_insecure=True))
    assert len(machines) == 3


def test_basic_over_verified_https_is_fine(wsman_factory, hv_settings):
    fake, ca = wsman_factory("basic", tls=True)
    machines = list_machines(hv_settings(fake, protocol="https", auth="basic", ca_file=str(ca)))
    assert len(machines) == 3


def test_a_host_that_cannot_seal_is_not_talked_to_in_clear(wsman_factory, hv_settings):
    """A Basic-only host over http: the NTLM client never falls back to Basic."""
    fake, _ = wsman_factory("basic")
    with pytest.raises(InventoryError) as err:
        list_machines(hv_settings(fake))
    assert err.value.reason in ("login", "protocol")
    assert "Basic" not in fake.authorizations and fake.requests >= 1
    assert fake.scripts == []
