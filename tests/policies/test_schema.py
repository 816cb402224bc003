"""`policies/schema.py`: validation, checksum, JSON Schema export."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from policies.schema import (
    CHECKSUM_FIELDS,
    PolicyDocument,
    PolicyDraft,
    Severity,
    compute_checksum,
    schema_json_text,
)
from tests.policies.helpers import AT, doc, draft

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "policies" / "schema.json"


def _category(**over: Any) -> dict[str, Any]:
    base = {"id": "violence", "name": "Violence", "description": "Threats.", "stance": "disallowed",
            "severity": "high"}
    return {**base, **over}


def _errors(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        PolicyDraft.model_validate(data)
    return [(tuple(e["loc"]), e["type"]) for e in info.value.errors()]


class TestValidation:
    @pytest.mark.parametrize("pid", ["ab", "general-safety", "a1", "x" * 63, "0-day"])
    def test_good_ids(self, pid: str) -> None:
        assert draft(policy_id=pid).id == pid

    @pytest.mark.parametrize("pid", ["a", "-ab", "Ab", "a_b", "a b", "x" * 64, "a@1", "a:b", ""])
    def test_bad_ids(self, pid: str) -> None:
        assert _errors({"id": pid, "spec": {"text": "t"}})[0][0] == ("id",)

    def test_needs_text_or_categories(self) -> None:
        assert _errors({"id": "ab", "spec": {}})[0][0] == ("spec",)
        assert _errors({"id": "ab", "spec": {"text": "   "}})[0][0] == ("spec", "text")
        assert PolicyDraft.model_validate({"spec": {"categories": [_category()]}}).spec.text is None

    @pytest.mark.parametrize("threshold", [-0.01, 1.01, "high"])
    def test_threshold_range(self, threshold: object) -> None:
        assert _errors({"id": "ab", "spec": {"text": "t"}, "threshold": threshold})[0][0] == ("threshold",)

    def test_threshold_default(self) -> None:
        assert draft().threshold == 0.5

    def test_severity_rules(self) -> None:
        missing = _errors({"spec": {"categories": [_category(severity=None)]}})
        assert missing[0][0] == ("spec", "categories", 0)
        allowed_with = _errors({"spec": {"categories": [_category(stance="allowed")]}})
        assert allowed_with[0][0] == ("spec", "categories", 0)
        bad_word = _errors({"spec": {"categories": [_category(severity="extreme")]}})
        assert bad_word[0] == (("spec", "categories", 0, "severity"), "enum")
        assert [s.rank for s in Severity] == [1, 2, 3, 4]

    def test_duplicate_category_ids(self) -> None:
        assert _errors({"spec": {"categories": [_category(), _category()]}})[0][0] == ("spec",)

    def test_examples(self) -> None:
        example = {"prompt": "p", "response": "r", "expected": "maybe"}
        errs = _errors({"spec": {"categories": [_category(examples=[example])]}})
        assert errs[0][0] == ("spec", "categories", 0, "examples", 0, "expected")

    def test_errors_are_listed_field_by_field(self) -> None:
        errs = _errors({"id": "A", "spec": {"text": "t", "extra": 1}, "threshold": 2, "unknown": True})
        assert {loc for loc, _ in errs} == {("id",), ("spec", "extra"), ("threshold",), ("unknown",)}

    def test_documents_are_immutable(self) -> None:
        d = doc()
        with pytest.raises(ValidationError):
            d.threshold = 0.9  # type: ignore[misc]


class TestChecksum:
    def test_pinned_value(self) -> None:
        # Changing this value breaks every stored checksum: only with a migration.
        d = doc(text="Pinned policy text.")
        assert d.checksum == compute_checksum("demo", d.spec, 0.5)
        canonical = b'{"id":"demo","spec":{"categories":[],"text":"Pinned policy text."},"threshold":0.5}'
        assert d.checksum == hashlib.sha256(canonical).hexdigest()
        assert d.checksum == "2e3625bd9570b07625796a4ef9bf0780fc33004ea3d2f4b0bbbfb7b6d4fca89e"

    def test_covers_content_fields_only(self) -> None:
        assert CHECKSUM_FIELDS == ("id", "spec", "threshold")
        base = doc()
        other_meta = PolicyDocument.from_draft(
            draft(metadata={"owner": "x", "change_note": "n"}), policy_id="demo", version=7, parent_version=6,
            created_by="someone-else", created_at=AT,
        )
        assert other_meta.checksum == base.checksum
        assert doc(text="Different.").checksum != base.checksum
        assert doc(policy_id="other").checksum != base.checksum
        assert PolicyDocument.from_draft(draft(threshold=0.7), policy_id="demo", version=1, parent_version=None,
                                         created_by="t", created_at=AT).checksum != base.checksum

    def test_stable_across_serialisation_and_key_order(self) -> None:
        d = PolicyDocument.from_draft(
            PolicyDraft.model_validate({"spec": {"categories": [_category()], "text": "t"}}),
            policy_id="demo", version=1, parent_version=None, created_by="t", created_at=AT,
        )
        data = json.loads(d.model_dump_json())
        reordered = dict(reversed(list(data.items())))
        assert PolicyDocument.model_validate(reordered).checksum == d.checksum
        assert PolicyDocument.model_validate_json(d.model_dump_json()) == d

    def test_filled_when_absent_and_verified_when_present(self) -> None:
        data = json.loads(doc().model_dump_json())
        del data["checksum"]
        assert PolicyDocument.model_validate(data).checksum == doc().checksum
        data["checksum"] = "0" * 64
        with pytest.raises(ValidationError, match="checksum mismatch"):
            PolicyDocument.model_validate(data)


class TestJsonSchema:
    def test_committed_schema_is_current(self) -> None:
        assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_json_text(), (
            "policies/schema.json is stale: run `python -m policies.schema`"
        )

    def test_schema_describes_both_models(self) -> None:
        schema = json.loads(schema_json_text())
        assert {"PolicyDocument", "PolicyDraft", "PolicyCategory"} <= set(schema["$defs"])
        doc_props = schema["$defs"]["PolicyDocument"]["properties"]
        assert {"id", "version", "spec", "threshold", "metadata", "parent_version", "checksum"} <= set(doc_props)
