"""`csrm policy ...`: the policy lifecycle against a running server, over its HTTP API.

    csrm policy [--url URL] [--json] list
    csrm policy show ID | ID@N | ID:ALIAS
    csrm policy publish FILE [--policy-id ID] [--expect N] [--validate-examples] [--idempotency-key K] [--reason R]
    csrm policy promote ID VERSION [--alias stable] [--expect N] [--reason R]
    csrm policy rollback ID [--alias stable] [--reason R]
    csrm policy canary ID WEIGHT [--reason R]
    csrm policy archive ID VERSION [--reason R]    (and `unarchive`)
    csrm policy diff ID A B
    csrm policy audit ID

The server is `--url`, else `CSRM_URL`, else `http://127.0.0.1:8000`; the API key is `CSRM_API_KEY` (never a
flag, so it stays out of shell history and process lists). Output is a readable summary or table, or the server's
JSON with `--json`. `publish` creates the policy when it does not exist yet (unless `--expect` says otherwise).

Exit status: 0 done; 1 the server refused (its error code and message, and each detail, go to stderr); 2 a local
problem (bad file, bad arguments); 3 the server could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

__all__ = ["DEFAULT_URL", "CliError", "add_policy_commands", "main", "run_policy_command"]

DEFAULT_URL = "http://127.0.0.1:8000"
_EXIT_REFUSED, _EXIT_LOCAL, _EXIT_UNREACHABLE = 1, 2, 3


class CliError(Exception):
    """A failure to report on stderr with an exit status (no traceback)."""

    def __init__(self, message: str, status: int, details: Sequence[str] = (), code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = list(details)
        self.code = code


class _Session:
    """One command's connection to the server and its output streams."""

    def __init__(self, client: httpx.Client, out: IO[str], as_json: bool, has_key: bool) -> None:
        self.client = client
        self.out = out
        self.as_json = as_json
        self.has_key = has_key

    def call(self, method: str, path: str, *, ok: Sequence[int] = (200,), **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CliError(f"cannot reach {self.client.base_url}: {exc or type(exc).__name__}",
                           _EXIT_UNREACHABLE) from exc  # fmt: skip
        if response.status_code not in ok:
            raise _refusal(response, self.has_key)
        return None if response.status_code == 204 else response.json()

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def dump(self, data: Any) -> None:
        self.print(json.dumps(data, indent=2, ensure_ascii=False))


def _refusal(response: httpx.Response, has_key: bool) -> CliError:
    try:
        error = response.json()["error"]
        code, message, details = error["code"], error["message"], error.get("details")
    except (ValueError, KeyError, TypeError):
        code, message, details = "HTTP_ERROR", response.text.strip() or response.reason_phrase, None
    lines: list[str] = []
    if isinstance(details, list):
        for d in details:
            if isinstance(d, Mapping):
                where = d.get("loc", d.get("field", ""))
                where = ".".join(str(p) for p in where) if isinstance(where, list) else str(where)
                lines.append(f"{where}: {d.get('msg', d.get('message', ''))}" if where else str(d.get("msg", d)))
            else:
                lines.append(str(d))
    elif isinstance(details, Mapping):
        lines.extend(f"{k}: {v}" for k, v in details.items())
    if response.status_code == 401 and not has_key:
        lines.append("hint: set CSRM_API_KEY to an API key (csrm keys create --role admin --name NAME)")
    return CliError(f"{response.status_code} {code}: {message}", _EXIT_REFUSED, lines, code)


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [list(header)] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def _aliases(aliases: Mapping[str, int]) -> str:
    return " ".join(f"{a}={v}" for a, v in sorted(aliases.items())) or "-"


# -- commands --------------------------------------------------------------------------------------------------


def _list(s: _Session, args: argparse.Namespace) -> None:
    data = s.call("GET", "/v1/policies")
    if s.as_json:
        return s.dump(data)
    rows = [(p["id"], p["latest_version"], _aliases(p["aliases"]), f"{p['canary_weight']:g}") for p in data["policies"]]
    s.print(_table(rows, ("ID", "LATEST", "ALIASES", "CANARY")))


def _print_version(s: _Session, v: Mapping[str, Any]) -> None:
    doc = v["document"]
    meta = doc.get("metadata") or {}
    s.print(f"{doc['id']}@{doc['version']}  checksum {doc['checksum'][:16]}  threshold {doc['threshold']:g}"
            f"{'  ARCHIVED' if v['archived'] else ''}")  # fmt: skip
    s.print(f"  aliases: {' '.join(v['aliases']) or '-'}  parent: {doc.get('parent_version') or '-'}")
    s.print(f"  created: {meta.get('created_at') or '-'} by {meta.get('created_by') or '-'}"
            f"  owner: {meta.get('owner') or '-'}")  # fmt: skip
    if meta.get("change_note"):
        s.print(f"  note: {meta['change_note']}")
    s.print(f"  rendered ({v['template_id']}):")
    for line in v["rendered_text"].splitlines():
        s.print(f"    {line}")


def _show(s: _Session, args: argparse.Namespace) -> None:
    ref: str = args.ref
    if "@" in ref:
        policy_id, _, number = ref.partition("@")
        data = s.call("GET", f"/v1/policies/{policy_id}/versions/{number}")
        return s.dump(data) if s.as_json else _print_version(s, data)
    policy_id, _, alias = ref.partition(":")
    head = s.call("GET", f"/v1/policies/{policy_id}")
    if alias:
        if alias not in head["aliases"]:
            raise CliError(f"policy {policy_id!r} has no alias {alias!r} (aliases: {_aliases(head['aliases'])})",
                           _EXIT_REFUSED)  # fmt: skip
        data = s.call("GET", f"/v1/policies/{policy_id}/versions/{head['aliases'][alias]}")
        return s.dump(data) if s.as_json else _print_version(s, data)
    if s.as_json:
        return s.dump(head)
    versions = s.call("GET", f"/v1/policies/{policy_id}/versions")["versions"]
    s.print(f"{head['id']}  latest {head['latest_version']}  aliases {_aliases(head['aliases'])}  "
            f"canary weight {head['canary_weight']:g}")  # fmt: skip
    s.print()
    rows = [(v["version"], " ".join(v["aliases"]), "yes" if v["archived"] else "", v["created_by"],
             v["created_at"], v["checksum"][:12], v["change_note"]) for v in versions]  # fmt: skip
    s.print(_table(rows, ("VERSION", "ALIASES", "ARCHIVED", "BY", "AT", "CHECKSUM", "NOTE")))
    if head["stable"] is not None:
        s.print()
        _print_version(s, head["stable"])


def _read_document(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", _EXIT_LOCAL) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is not valid JSON: {exc}", _EXIT_LOCAL) from exc
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold a JSON object (a policy draft)", _EXIT_LOCAL)
    return data


def _publish(s: _Session, args: argparse.Namespace) -> None:
    doc = _read_document(args.file)
    policy_id = args.policy_id or doc.get("id")
    if not isinstance(policy_id, str) or not policy_id:
        raise CliError(f"{args.file} has no \"id\"; pass --policy-id", _EXIT_LOCAL)
    params = {"validate": "examples"} if args.validate_examples else {}
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    data = None
    if args.expect != 0:
        body: dict[str, Any] = {"policy": doc, "expected_latest": args.expect, "reason": args.reason}
        try:
            data = s.call("POST", f"/v1/policies/{policy_id}/versions", ok=(201,), json=body, params=params,
                          headers=headers)  # fmt: skip
        except CliError as exc:
            if args.expect is not None or exc.code != "POLICY_NOT_FOUND":
                raise
    if data is None:  # a new policy
        data = s.call("POST", "/v1/policies", ok=(201,), json={"policy": {**doc, "id": policy_id},
                      "reason": args.reason}, params=params, headers=headers)  # fmt: skip
    if s.as_json:
        return s.dump(data)
    stored = data["document"]
    verb = "replayed" if data.get("replayed") else "created" if stored["version"] == 1 else "published"
    s.print(f"{verb} {stored['id']} version {stored['version']} (checksum {stored['checksum'][:16]})")
    check = data["validation"]
    if check.get("policy_tokens") is not None:
        s.print(f"  policy tokens: {check['policy_tokens']} of {check['policy_token_budget']}")
    if check.get("examples_checked") is not None:
        s.print(f"  golden examples: {check['examples_checked']} passed")
    if stored["version"] == 1:
        s.print("  stable -> 1")
    else:
        s.print(f"  no alias moved; promote with: csrm policy promote {stored['id']} {stored['version']}")


def _promote(s: _Session, args: argparse.Namespace) -> None:
    body = {"version": args.version, "expected_version": args.expect, "reason": args.reason}
    data = s.call("PUT", f"/v1/policies/{args.policy_id}/aliases/{args.alias}", json=body)
    s.dump(data) if s.as_json else s.print(f"{data['policy_id']}:{data['alias']} -> {data['version']}")


def _rollback(s: _Session, args: argparse.Namespace) -> None:
    data = s.call("POST", f"/v1/policies/{args.policy_id}/rollback", json={"alias": args.alias, "reason": args.reason})
    s.dump(data) if s.as_json else s.print(f"{data['policy_id']}:{data['alias']} rolled back to {data['version']}")


def _canary(s: _Session, args: argparse.Namespace) -> None:
    data = s.call("PUT", f"/v1/policies/{args.policy_id}/canary", json={"weight": args.weight, "reason": args.reason})
    s.dump(data) if s.as_json else s.print(f"{data['policy_id']} canary weight {data['canary_weight']:g}")


def _archiver(action: str) -> Callable[[_Session, argparse.Namespace], None]:
    def run(s: _Session, args: argparse.Namespace) -> None:
        data = s.call("POST", f"/v1/policies/{args.policy_id}/versions/{args.version}/{action}",
                      json={"reason": args.reason})  # fmt: skip
        s.dump(data) if s.as_json else s.print(f"{data['policy_id']}@{data['version']} {action}d")

    return run


def _diff(s: _Session, args: argparse.Namespace) -> None:
    data = s.call("GET", f"/v1/policies/{args.policy_id}/diff", params={"from": args.a, "to": args.b})
    if s.as_json:
        return s.dump(data)
    changed = ", ".join(data["changed_fields"]) or "nothing"
    same = "  (same content)" if data["same_content"] else ""
    s.print(f"{data['policy_id']} {data['from']} -> {data['to']}: changed {changed}{same}")
    cats = data["categories"]
    for label in ("added", "removed"):
        if cats.get(label):
            s.print(f"  categories {label}: {', '.join(cats[label])}")
    for cid, fields in (cats.get("changed") or {}).items():
        s.print(f"  category {cid} changed: {', '.join(fields)}")
    if data["rendered_diff"]:
        s.print()
        s.print(data["rendered_diff"].rstrip("\n"))


def _audit(s: _Session, args: argparse.Namespace) -> None:
    data = s.call("GET", f"/v1/policies/{args.policy_id}/audit")
    if s.as_json:
        return s.dump(data)

    def change(e: Mapping[str, Any]) -> str:
        if e["from"] is None and e["to"] is None:
            return ""
        return f"{'-' if e['from'] is None else e['from']} -> {'-' if e['to'] is None else e['to']}"

    rows = [(e["at"], e["actor"], e["action"], e["version"], e["alias"], change(e), e["reason"])
            for e in data["entries"]]  # fmt: skip
    s.print(_table(rows, ("AT", "ACTOR", "ACTION", "VERSION", "ALIAS", "CHANGE", "REASON")))


# -- wiring ----------------------------------------------------------------------------------------------------


def add_policy_commands(subparsers: Any) -> None:
    """Register `csrm policy` and its actions on the `csrm` subparsers (sets `handler=run_policy_command`)."""
    parser = subparsers.add_parser(
        "policy",
        help="manage policies on a running server",
        description="Publish, promote, roll back and inspect policies through a running server's API. "
        "The API key comes from CSRM_API_KEY.",
    )
    parser.add_argument("--url", default=None, help=f"server URL (default: CSRM_URL, else {DEFAULT_URL})")
    parser.add_argument("--json", action="store_true", help="print the server's JSON instead of a summary")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server (default 60)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, run: Callable[[_Session, argparse.Namespace], None], help_: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=help_, description=help_)
        sub.set_defaults(run=run)
        return sub

    def reason(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--reason", default=None, help="why (recorded in the audit log)")

    action("list", _list, "list policies with their latest version, aliases and canary weight")
    sub = action("show", _show, "show a policy (ID: state, versions, stable version) or one version (ID@N, ID:ALIAS)")
    sub.add_argument("ref", metavar="ID[@N|:ALIAS]")
    sub = action("publish", _publish, "publish a policy draft (JSON file, - for stdin) as a new version")
    sub.add_argument("file", metavar="FILE")
    sub.add_argument("--policy-id", default=None, help="policy id (default: the file's \"id\")")
    sub.add_argument("--expect", type=int, default=None, metavar="N",
                     help="refuse unless the latest version is N (0: the policy must not exist yet)")
    sub.add_argument("--validate-examples", action="store_true",
                     help="score the policy's golden examples and refuse if a verdict disagrees")
    sub.add_argument("--idempotency-key", default=None, help="a retry with the same key returns the same version")
    reason(sub)
    sub = action("promote", _promote, "point an alias (default stable) at a version")
    sub.add_argument("policy_id", metavar="ID")
    sub.add_argument("version", type=int, metavar="VERSION")
    sub.add_argument("--alias", default="stable", help="the alias to move (default stable)")
    sub.add_argument("--expect", type=int, default=None, metavar="N",
                     help="refuse unless the alias points at N now (0: it must not exist yet)")
    reason(sub)
    sub = action("rollback", _rollback, "move an alias (default stable) back to its previous version")
    sub.add_argument("policy_id", metavar="ID")
    sub.add_argument("--alias", default="stable", help="the alias to roll back (default stable)")
    reason(sub)
    sub = action("canary", _canary, "set the share (0..1) of unqualified references scored with the canary alias")
    sub.add_argument("policy_id", metavar="ID")
    sub.add_argument("weight", type=float, metavar="WEIGHT")
    reason(sub)
    for verb in ("archive", "unarchive"):
        sub = action(verb, _archiver(verb), f"{verb} a version" + (" (refused while an alias points at it)"
                                                                   if verb == "archive" else ""))  # fmt: skip
        sub.add_argument("policy_id", metavar="ID")
        sub.add_argument("version", type=int, metavar="VERSION")
        reason(sub)
    sub = action("diff", _diff, "what changed between two versions")
    sub.add_argument("policy_id", metavar="ID")
    sub.add_argument("a", type=int, metavar="A")
    sub.add_argument("b", type=int, metavar="B")
    sub = action("audit", _audit, "the policy's audit log")
    sub.add_argument("policy_id", metavar="ID")
    parser.set_defaults(handler=run_policy_command)


def run_policy_command(
    args: argparse.Namespace,
    *,
    transport: httpx.BaseTransport | None = None,
    env: Mapping[str, str] | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Run one parsed `csrm policy` action; return the exit status.

    Args:
        args: From the parser `add_policy_commands` built.
        transport: An httpx transport to use instead of the network (tests).
        env: Where `CSRM_URL` and `CSRM_API_KEY` are read (default `os.environ`).
        out: Where results go (default stdout).
        err: Where errors go (default stderr).
    """
    env = os.environ if env is None else env
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    url = args.url or env.get("CSRM_URL") or DEFAULT_URL
    key = env.get("CSRM_API_KEY", "").strip()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=args.timeout, transport=transport) as client:
            args.run(_Session(client, out, args.json, bool(key)), args)
    except CliError as exc:
        print(f"csrm policy {args.action}: {exc}", file=err)
        for line in exc.details:
            print(f"  {line}", file=err)
        return exc.status
    return 0


def main(
    argv: Sequence[str] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    env: Mapping[str, str] | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """`csrm policy` alone: `argv` is what follows `csrm policy` (for tests and embedding); see `run_policy_command`."""
    parser = argparse.ArgumentParser(prog="csrm")
    add_policy_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["policy", *(sys.argv[1:] if argv is None else argv)])
    return run_policy_command(args, transport=transport, env=env, out=out, err=err)
