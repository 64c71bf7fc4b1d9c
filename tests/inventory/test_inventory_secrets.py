"""The password comes from the environment and goes nowhere else."""

from __future__ import annotations

import json
import traceback

import pytest

from engine.inventory.base import InventoryError, inventory_json, list_machines, lookup


def exception_texts(exc: BaseException) -> str:
    """str, repr and formatted traceback of an exception and everything chained to it."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        parts += [str(e), repr(e), repr(vars(e)) if hasattr(e, "__dict__") else "", repr(e.args)]
        stack += [e.__cause__, e.__context__]
    return "\n".join(parts)


def failing_vsphere(vpx, vc_settings, closed_port):
    yield "login", vc_settings(vpx, user="someone-else")
    yield "unreachable", vc_settings(vpx, port=closed_port)
    yield "unreachable", vc_settings(vpx, verify_tls=True)
    yield "protocol", vc_settings(vpx, protocol="http")


def test_vsphere_password_never_leaks(vpx, vc_settings, vc_password, closed_port):
    settings = vc_settings(vpx)
    assert vc_password not in repr(settings) and vc_password not in str(settings)
    doc = json.dumps(inventory_json(settings, list_machines(settings)))
    assert vc_password not in doc

    for reason, bad in failing_vsphere(vpx, vc_settings, closed_port):
        with pytest.raises(InventoryError) as err:
            list_machines(bad)
        assert err.value.reason == reason
        assert vc_password not in exception_texts(err.value)
        if reason != "protocol":
            result = lookup(bad)
            assert vc_password not in result.warning and vc_password not in repr(result)


@pytest.mark.parametrize("failure", ["login", "ps_error", "unreachable"])
def test_hyperv_password_never_leaks(wsman, hv_settings, hv_password, closed_port, failure):
    settings = hv_settings(wsman)
    assert hv_password not in repr(settings)
    if failure == "login":
        wsman.password = "the-host-expects-another-one"
    elif failure == "ps_error":
        wsman.ps_error = "Get-VM : Access denied."
    else:
        settings = hv_settings(wsman, port=closed_port)

    with pytest.raises(InventoryError) as err:
        list_machines(settings)
    assert hv_password not in exception_texts(err.value)

    wsman.reset()
    wsman.password = hv_password
    doc = json.dumps(inventory_json(settings, list_machines(hv_settings(wsman))))
    assert hv_password not in doc
