"""The package's rooms, kept by a walk over its imports (`ast`, nothing is imported or run).

- `model.py` imports nothing from the package: it is the vocabulary every room shares.
- `sandbox/` imports nothing from the bot: the emulators stand for the real services, so they may not lean on
  the code they test (README's promise; sharing between the two emulators is fine).
- The edges, `mattermost/` and `deskie/`, never import the core (`relay`), the `store` or `app`.
- The core, `relay/`, imports from the package only the model, `errors`, `store`, `retry` and `relay.*`. Most of
  `relay/` does not keep this yet (it still reads the edges' clients and dicts), so the rule is checked only for
  the modules listed in `CORE_KEEPS_THE_RULE`; a module joins the list as the refactor frees it, and a module
  that keeps the rule but is not listed fails a test, so the list only grows.

Every import counts, also one inside a function or under `if TYPE_CHECKING:`: a lazy import crosses a room
as much as a top-level one.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

PACKAGE = "deskie_mm_bot"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE  # the checkout's package, not an installed copy

CORE_MAY_IMPORT = frozenset({"model", "errors", "markup", "store", "retry", "relay"})
EDGES_MAY_NOT_IMPORT = frozenset({"relay", "store", "app"})
# The relay modules that already keep the core's rule. Add each module here once it does.
CORE_KEEPS_THE_RULE = (
    "relay/__init__.py", "relay/answers.py", "relay/catchup.py", "relay/inbound.py", "relay/intake.py",
    "relay/lifecycle.py", "relay/loops.py",
    "relay/outbound.py", "relay/outgoing.py", "relay/ports.py", "relay/reactions.py", "relay/reconcile.py",
    "relay/relay.py",
)

BEYOND = "<a relative import beyond the package>"


def module_name(path: Path) -> tuple[str, bool]:
    """The dotted name of a file under ROOT, and whether it is a package's `__init__`."""
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def imported_names(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) of everything `source` imports, relative imports resolved against `module`.

    `from X import a` gives `X.a`: whether `a` is a submodule or an attribute, the room it lives in is X's.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                keep = len(parts) - (node.level - 1)
                if keep < 1:
                    yield node.lineno, BEYOND
                    continue
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def room(name: str) -> str | None:
    """The package's top-level module or folder that `name` lives in ('' for the package itself), or None
    when `name` is not the bot's (the standard library, a dependency)."""
    if name == BEYOND:
        return ""
    if name == PACKAGE:
        return ""
    if not name.startswith(PACKAGE + "."):
        return None
    return name.split(".")[1]


def model_may_import(name: str) -> bool:
    return room(name) is None


def sandbox_may_import(name: str) -> bool:
    return room(name) is None or name == f"{PACKAGE}.sandbox" or name.startswith(f"{PACKAGE}.sandbox.")


def edge_may_import(name: str) -> bool:
    return room(name) not in EDGES_MAY_NOT_IMPORT and name != BEYOND


def core_may_import(name: str) -> bool:
    r = room(name)
    return r is None or r in CORE_MAY_IMPORT


def violations_in(source: str, module: str, allowed: Callable[[str], bool], is_package: bool = False) -> list[str]:
    return [f"{module}:{line} imports {name}"
            for line, name in imported_names(source, module, is_package) if not allowed(name)]


def violations(paths: Iterable[Path], allowed: Callable[[str], bool]) -> list[str]:
    found: list[str] = []
    for path in paths:
        module, is_package = module_name(path)
        found += violations_in(path.read_text(encoding="utf-8"), module, allowed, is_package)
    return found


def files(folder: str) -> list[Path]:
    paths = sorted((ROOT / folder).rglob("*.py"))
    assert paths, f"no modules under {PACKAGE}/{folder}: the rule would pass on nothing"
    return paths


# ---- the rules, on the package as it is ---------------------------------------------------------------


def test_the_model_imports_nothing_from_the_package() -> None:
    assert violations([ROOT / "model.py"], model_may_import) == []


def test_the_text_formats_import_nothing_from_the_package() -> None:
    # The core may use them only because they are pure: nothing of either protocol's clients.
    assert violations(files("markup"), model_may_import) == []


def test_the_emulators_import_nothing_from_the_bot() -> None:
    assert violations(files("sandbox"), sandbox_may_import) == []


def test_the_edges_never_import_the_core_the_store_or_app() -> None:
    assert violations(files("mattermost") + files("deskie"), edge_may_import) == []


def test_the_listed_core_modules_import_only_model_errors_store_retry_and_relay() -> None:
    paths = [ROOT / p for p in CORE_KEEPS_THE_RULE]
    assert [p for p in paths if not p.is_file()] == []
    assert violations(paths, core_may_import) == []


def test_a_core_module_that_keeps_the_rule_is_listed_so_the_list_only_grows() -> None:
    listed = {ROOT / p for p in CORE_KEEPS_THE_RULE}
    keeping = [p for p in files("relay") if p not in listed and not violations([p], core_may_import)]
    assert keeping == [], "these relay modules keep the core's rule now: add them to CORE_KEEPS_THE_RULE"


# ---- each rule can fail ---------------------------------------------------------------------------------


def test_module_names_and_relative_imports_resolve_as_python_does() -> None:
    assert module_name(ROOT / "sandbox" / "deskie" / "__init__.py") == (f"{PACKAGE}.sandbox.deskie", True)
    assert module_name(ROOT / "relay" / "inbound.py") == (f"{PACKAGE}.relay.inbound", False)
    src = "from . import a\nfrom .b import c\nfrom .. import d\nimport e.f\n"
    assert [n for _, n in imported_names(src, f"{PACKAGE}.relay.inbound")] == [
        f"{PACKAGE}.relay.a", f"{PACKAGE}.relay.b.c", f"{PACKAGE}.d", "e.f"]
    assert [n for _, n in imported_names("from . import a\n", f"{PACKAGE}.relay", is_package=True)] == [
        f"{PACKAGE}.relay.a"]


def test_the_sandbox_rule_catches_the_bot_imported_absolutely_relatively_or_lazily() -> None:
    mod = f"{PACKAGE}.sandbox.deskie.api"
    allowed = "import json\nimport requests\nfrom ..mattermost.state import State\nfrom .state import DeskieState\n"
    assert violations_in(allowed, mod, sandbox_may_import) == []
    for forbidden in (
        "from deskie_mm_bot.store import Store\n",
        "import deskie_mm_bot.retry\n",
        "import deskie_mm_bot\n",
        "from deskie_mm_bot import errors\n",
        "from ...errors import Unavailable\n",  # leaves sandbox/ by a relative path
        "from .... import anything\n",  # beyond the package
        "def later():\n    from ...deskie.client import DeskieClient\n",
    ):
        assert len(violations_in(forbidden, mod, sandbox_may_import)) == 1, forbidden


def test_the_model_rule_catches_any_import_of_the_package() -> None:
    mod = f"{PACKAGE}.model"
    assert violations_in("from dataclasses import dataclass\nfrom enum import Enum\n", mod, model_may_import) == []
    for forbidden in ("from .errors import Rejected\n", "from deskie_mm_bot import store\n", "import deskie_mm_bot\n",
                      "from .. import anything\n"):
        assert len(violations_in(forbidden, mod, model_may_import)) == 1, forbidden


def test_the_edge_rule_catches_the_core_the_store_and_app() -> None:
    mod = f"{PACKAGE}.deskie.webhook"
    assert violations_in("from .. import errors\nfrom ..retry import Backoff\nfrom .client import X\n",
                         mod, edge_may_import) == []
    for forbidden in (
        "from ..relay.outbound import reply_text\n",
        "from ..store import Store\n",
        "from deskie_mm_bot import store\n",
        "import deskie_mm_bot.app\n",
        "from ... import anything\n",
    ):
        assert len(violations_in(forbidden, mod, edge_may_import)) == 1, forbidden


def test_the_core_rule_catches_an_edge_or_anything_else_of_the_bot() -> None:
    mod = f"{PACKAGE}.relay.inbound"
    kept = ("import asyncio\nfrom ..model import ChatPost\nfrom .. import errors\n"
            "from ..store import Store\nfrom ..retry import Backoff\nfrom . import text\nfrom .ports import Chat\n")
    assert violations_in(kept, mod, core_may_import) == []
    for forbidden in (
        "from ..deskie.client import DeskieClient\n",
        "from ..mattermost.events import post_from_dict\n",
        "from ..blocking import off_loop\n",
        "from deskie_mm_bot import app\n",
        "import deskie_mm_bot.config\n",
        "from .... import anything\n",
    ):
        assert len(violations_in(forbidden, mod, core_may_import)) == 1, forbidden
