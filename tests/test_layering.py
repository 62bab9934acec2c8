"""The house rules on imports, checked on the source (like websockets'
tests/test_exports.py): `engine` imports nothing of ours, `actors` never
imports `web`, nothing imports another package's underscore module, tests
never import `perf`, and every package's `__all__` names exist.

A package's private modules are its own and its sub-packages' (``actors.store``
may use ``actors._model``); a sibling (``actors.archive``) or another top-level
package (``web``) goes through the public ``__init__``."""
import ast
import importlib
import os

import pytest

from tests.support import ROOT

SOURCE = ("engine", "actors", "web")
OURS = {"engine", "actors", "web", "tests", "perf"}


def _modules(top):
    """(dotted module name, package parts, path) of every .py file under ``top``."""
    for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = os.path.relpath(folder, ROOT).split(os.sep)
        for name in sorted(files):
            if name.endswith(".py"):
                stem = name[:-3]
                parts = rel if stem == "__init__" else rel + [stem]
                yield ".".join(parts), rel, os.path.join(folder, name)


def _is_module(parts):
    base = os.path.join(ROOT, *parts)
    return os.path.isfile(base + ".py") or os.path.isfile(os.path.join(base, "__init__.py"))


def _imports(package, path):
    """Every module an import statement in ``path`` names (absolute, dotted),
    function-level imports included."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = node.module.split(".")
            yield node.lineno, ".".join(target)
            for alias in node.names:       # `from actors import _feeds` names a module
                if _is_module(target + [alias.name]):
                    yield node.lineno, ".".join(target + [alias.name])


def _all_imports(tops):
    for top in tops:
        for module, package, path in _modules(top):
            for lineno, target in _imports(package, path):
                yield f"{os.path.relpath(path, ROOT)}:{lineno}", module, package, target


def test_the_source_tree_is_walked():
    names = {module for top in SOURCE for module, _, _ in _modules(top)}
    # A walk that found nothing would pass every rule below.
    assert {"engine", "actors.store._store", "actors.wire", "web.gateway._gateway"} <= names


def test_engine_imports_nothing_of_ours():
    bad = [(where, target) for where, _, _, target in _all_imports(["engine"])
           if target.split(".")[0] in OURS - {"engine"}]
    assert bad == []


def test_actors_never_import_web():
    bad = [(where, target) for where, _, _, target in _all_imports(["actors"])
           if target.split(".")[0] in {"web", "tests", "perf"}]
    assert bad == []


def test_tests_never_import_perf():
    bad = [(where, target) for where, _, _, target in _all_imports(["tests"])
           if target.split(".")[0] == "perf"]
    assert bad == []


def _private_owner(target):
    """The package whose private module ``target`` is (None if public)."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return parts[:i]
    return None


def test_no_package_imports_another_packages_private_module():
    bad = []
    for where, _, package, target in _all_imports(SOURCE):
        if target.split(".")[0] not in OURS:
            continue
        owner = _private_owner(target)
        if owner is not None and package[:len(owner)] != owner:
            bad.append((where, target))
    assert bad == []


def test_the_private_module_rule_can_fail():
    # The rule's own check on known cases, so a broken helper cannot hide a breach.
    assert _private_owner("actors.store._receipt") == ["actors", "store"]
    assert _private_owner("actors.wire") is None
    assert _private_owner("web.__init__") is None


def _packages():
    for top in SOURCE:
        for module, package, path in _modules(top):
            if path.endswith("__init__.py"):
                yield module


@pytest.mark.parametrize("name", sorted(_packages()))
def test_every_package_exports_names_that_exist(name):
    package = importlib.import_module(name)
    exported = getattr(package, "__all__", None)
    assert exported, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(package, n)]
    assert missing == []
