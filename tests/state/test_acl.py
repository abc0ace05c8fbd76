"""The least-privilege Redis user's rules (``state/acl.py``)."""

from __future__ import annotations

import re
from pathlib import Path

from state.acl import FLOW_COMMANDS, acl_rules, sentinel_acl_rules
from state.idempotent import _PUSH_ONCE

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_command_the_push_once_script_runs_is_allowed():
    called = {name.lower() for name in re.findall(r"redis\.call\('(\w+)'", _PUSH_ONCE)}
    assert called
    assert called <= set(FLOW_COMMANDS)


def test_the_docs_give_the_rules_of_the_default_prefix():
    line = f"ACL SETUSER alarmflow on >the-redis-password {acl_rules('bk_bkmonitorv3.ee')}"
    assert line in DOCS.read_text().splitlines()


def test_the_docs_give_the_rules_of_the_sentinel_user():
    line = f"ACL SETUSER alarmflow on >the-sentinel-password {sentinel_acl_rules()}"
    assert line in DOCS.read_text().splitlines()
