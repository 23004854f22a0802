"""The sandbox is an independent oracle: its endpoint table (written from the docs) against the client's registry.

A wrong path, method, auth kind, scope or rate limit now has to be made twice, in two places, to go unnoticed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from botkit.sandbox import endpoints as sandbox_table
from botkit.sandbox.server import Sandbox
from botkit.whitebit import endpoints as client_table

SANDBOX_DIR = Path(sandbox_table.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_the_sandbox_imports_nothing_from_the_client() -> None:
    offenders = {
        f"{p.name}: {m}" for p in SANDBOX_DIR.glob("*.py") for m in _imports(p)
        if m == "botkit.whitebit" or m.startswith("botkit.whitebit.") or m.startswith("botkit.auth")
    }
    assert not offenders, f"the sandbox must not import the client (botkit.whitebit / botkit.auth): {offenders}"


def _client_rows() -> list[client_table.Endpoint]:
    return list(client_table.ENDPOINTS)


@pytest.mark.parametrize("ep", _client_rows(), ids=lambda e: e.name)
def test_every_client_endpoint_matches_the_documented_row(ep: client_table.Endpoint) -> None:
    """Path and method, auth kinds, scopes, the endpoint's own limit and its scope (group) limit."""
    row = sandbox_table.route(ep.path)  # KeyError: the client calls a path the docs do not list
    assert ep.name == row.name, f"{ep.path}: client name {ep.name!r} vs sandbox {row.name!r} (bucket keys differ)"
    assert ep.method == row.method, f"{ep.name}: method {ep.method} vs documented {row.method}"
    documented = {row.auth} | ({"bearer"} if row.bearer_opt_in else set())
    assert set(ep.auth) == documented, (
        f"{ep.name}: client auth {sorted(ep.auth)} vs documented {sorted(documented)} (bearer on trading endpoints "
        "is the sandbox's opt-in, not WhiteBIT's)"
    )
    assert set(ep.scopes) == set(row.scopes), f"{ep.name}: scopes {sorted(ep.scopes)} vs {sorted(row.scopes)}"
    assert ep.rate_limit == row.limit, f"{ep.name}: own limit {ep.rate_limit} vs documented {row.limit}"
    group_limit = client_table.DEFAULT_GROUP_LIMITS.get(ep.rate_group)
    assert group_limit == row.scope_limit, (
        f"{ep.name}: group {ep.rate_group!r} limit {group_limit} vs the documented scope limit {row.scope_limit} "
        f"of {row.scope[1] if row.scope else 'no scope'}"
    )


def test_global_limit_and_scope_limits_agree() -> None:
    assert client_table.GLOBAL_LIMIT == sandbox_table.GLOBAL_LIMIT
    documented = {name: lim for name, _, lim in sandbox_table.SCOPE_LIMITS}
    assert documented == client_table.DEFAULT_GROUP_LIMITS


def test_the_sandbox_serves_every_row_of_its_table() -> None:
    """Each documented path has a handler with that method (no row is only on paper)."""
    sb = Sandbox()
    served = {
        (r.method, r.resource.canonical)
        for r in sb.app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    missing = [f"{r.method} {r.path}" for r in sandbox_table.ROUTES if (r.method, r.path) not in served]
    assert not missing, f"rows without a handler: {missing}"


def test_the_comparison_catches_a_wrong_scope() -> None:
    """The check above can fail: a client row with a scope the docs do not give is refused."""
    good = next(e for e in client_table.ENDPOINTS if e.name == "order_cancel")
    bad = client_table.Endpoint(good.name, good.method, good.path, good.auth, frozenset({"orders.create"}),
                                good.idempotent, good.rate_group, good.rate_limit)
    with pytest.raises(AssertionError, match="scopes"):
        test_every_client_endpoint_matches_the_documented_row(bad)


def test_sandbox_citations_point_at_the_projects_own_notes() -> None:
    """No citation of the out-of-repo research file; every `docs/whitebit.md §N` names a section that exists."""
    notes = SANDBOX_DIR.parents[1] / "docs" / "whitebit.md"
    headings = set(re.findall(r"^#+ (\d+(?:\.\d+)?)\.? ", notes.read_text(encoding="utf-8"), re.MULTILINE))
    cited: set[str] = set()
    for path in SANDBOX_DIR.rglob("*"):
        if path.suffix not in (".py", ".md", ".toml"):
            continue
        text = path.read_text(encoding="utf-8")
        assert "whitebit-api.md" not in text, f"{path.name} still cites whitebit-api.md; cite docs/whitebit.md §N"
        for ref in re.findall(r"docs/whitebit\.md §(\d+(?:\.\d+)?)", text):
            cited.add(ref)
    assert cited, "the sandbox cites no section at all?"
    missing = sorted(cited - headings)
    assert not missing, f"cited sections missing from docs/whitebit.md: {missing}"


def test_notes_keep_the_research_files_section_numbers(shared_data: Path) -> None:
    """docs/whitebit.md keeps ../shared/whitebit-api.md's § numbers, so citations can be rewritten mechanically."""
    research = shared_data.parent / "whitebit-api.md"
    notes = SANDBOX_DIR.parents[1] / "docs" / "whitebit.md"

    def numbers(path: Path) -> list[str]:
        return re.findall(r"^#+ (\d+(?:\.\d+)?)[. ]", path.read_text(encoding="utf-8"), re.MULTILINE)

    assert numbers(notes) == numbers(research)
