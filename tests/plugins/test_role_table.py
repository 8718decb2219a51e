"""The role table (drivers/roles.py) holds together: each row's capability, actions and simulated
peer exist and fit each other, and the engine's orders come from it."""

from __future__ import annotations

import importlib

import pytest

from drivers import capabilities, roles
from drivers.plugins import ACTIONS, plugins
from drivers.registry import builtin, driver_class
from station.actions.registry import ActionSet, all_actions


def test_the_safe_state_order_and_the_energy_sources_are_the_tables():
    assert roles.safe_order(["dmm", "scope", "fixture", "bms", "leak", "cycler", "safety", "torque"]) == [
        "safety", "cycler", "bms", "leak", "fixture", "dmm", "scope", "torque"]  # unknown roles last, as given
    assert roles.energy_roles() == ("safety", "cycler", "bms")
    assert roles.on_duty(roles.BUS_VOLTMETER) == "dmm" and roles.on_duty(roles.INTERLOCKS) == "fixture"
    with pytest.raises(LookupError):
        roles.on_duty("coffee")


@pytest.mark.parametrize("row", roles.ROLES, ids=lambda r: r.name)
def test_each_row_names_a_capability_an_action_set_and_a_simulated_peer_that_exist(row):
    assert getattr(capabilities, row.capability.__name__) is row.capability
    assert capabilities.Instrument in row.capability.__mro__  # every role's capability is an Instrument's
    found = plugins(ACTIONS)[row.actions]
    assert found.builtin
    action_set = found.load()
    assert isinstance(action_set, ActionSet) and action_set.specs
    assert {spec.role for spec in action_set.specs.values()} == {row.name}
    module, _, name = row.sim_peer.partition(":")
    assert module.startswith("sim.") and isinstance(getattr(importlib.import_module(module), name), type)


def test_every_built_in_action_belongs_to_a_role_of_the_table_or_to_the_station():
    assert all(spec.role is None or roles.role(spec.role) is not None for spec in all_actions().values())


def test_every_built_in_driver_serves_a_role_of_the_table_and_refuses_one_it_cannot():
    served = {}
    for key in builtin():
        cls = driver_class(key)
        served[key] = [r.name for r in roles.ROLES if roles.missing_capability(r.name, cls) is None]
        assert served[key], f"{key} serves no role"
    assert served["keysight_34465a"] == ["dmm"] and served["itech_it6000"] == ["cycler"]
    assert "cycler" in served["modbus_cycler"] and "safety" in served["kikusui_tos9300"]
    why = roles.missing_capability("cycler", driver_class("keysight_34465a"))
    assert why is not None and why.startswith("the cycler role needs a Cycler; Keysight34465A lacks set_output")
    # a role outside the table needs what every instrument has
    assert roles.missing_capability("scope", driver_class("keysight_34465a")) is None
    assert "needs an Instrument; object lacks open" in (roles.missing_capability("scope", object) or "")
