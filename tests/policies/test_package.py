"""The public surface of `policies` and its import rules."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import policies

MODULES = ["policies", "policies.errors", "policies.schema", "policies.render", "policies.registry",
           "policies.store.base", "policies.store.memory", "policies.store.file"]


def test_exported_members() -> None:
    assert sorted(policies.__all__) == sorted([
        "AliasNotFound", "AuditEntry", "InvalidPolicy", "PolicyDocument", "PolicyDraft", "PolicyError",
        "PolicyExists", "PolicyHead", "PolicyNotFound", "PolicyRegistry", "PolicyStore", "PolicySummary",
        "RenderedPolicy", "ResolvedPolicy", "StoreUnavailable", "Validator", "VersionConflict", "VersionInUse",
        "VersionSummary", "export_json_schema", "load_library", "open_store", "parse_draft", "parse_ref",
        "render_policy", "seed_library",
    ])


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    assert all(hasattr(module, attr) for attr in module.__all__)


def test_policies_never_import_torch_models_service_or_psycopg() -> None:
    code = (
        "import sys, " + ", ".join(MODULES) + "\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in {'torch', 'models', 'service', 'psycopg'}]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_stores_implement_the_protocol(tmp_path: object) -> None:
    from policies.store.base import PolicyStore
    from policies.store.file import FilePolicyStore
    from policies.store.memory import InMemoryPolicyStore

    assert isinstance(InMemoryPolicyStore(), PolicyStore)
    assert isinstance(FilePolicyStore(str(tmp_path)), PolicyStore)
