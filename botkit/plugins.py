"""Finding and building strategy plugins: `path/to/file.py:Class`, `package.module:Class`, or an entry point name
in the `botkit.strategies` group. Every failure names the plugin and says what to fix.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from botkit.strategy import Strategy

ENTRY_POINT_GROUP = "botkit.strategies"


class PluginError(Exception):
    """A strategy plugin could not be loaded or configured."""


def load_strategy_class(ref: str) -> type[Strategy]:
    """Resolve a plugin reference to its Strategy subclass."""
    if ":" not in ref:
        return _from_entry_point(ref)
    target, _, name = ref.rpartition(":")
    if not name.isidentifier():
        raise PluginError(f"strategy plugin {ref!r}: {name!r} is not a class name; use 'module_or_file.py:ClassName'")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _import_file(ref, Path(target))
    else:
        module = _import_module(ref, target)
    obj = getattr(module, name, None)
    if obj is None:
        found = _defined_strategies(module)
        hint = difflib.get_close_matches(name, found, n=1)
        tip = f" Did you mean {hint[0]!r}?" if hint else ""
        listed = ", ".join(found) if found else "none"
        raise PluginError(
            f"strategy plugin {ref!r}: no class {name!r} in {target}.{tip} Strategy classes defined there: {listed}"
        )
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise PluginError(f"strategy plugin {ref!r}: {name} is not a subclass of botkit.Strategy")
    return obj


def _defined_strategies(module: Any) -> list[str]:
    """Strategy subclasses the module itself defines: not Strategy, not base classes it merely imports."""
    mod_name = getattr(module, "__name__", None)
    return sorted(
        k
        for k, v in vars(module).items()
        if isinstance(v, type) and issubclass(v, Strategy) and v is not Strategy and v.__module__ == mod_name
    )


def _is_missing(exc: ModuleNotFoundError, target: str) -> bool:
    """True when the module named by the ref (or a package on its way) is missing, not one the module imports."""
    parts = target.split(".")
    return exc.name in {".".join(parts[: i + 1]) for i in range(len(parts))}


def _try_import(ref: str, target: str) -> Any:
    """The module, or the ModuleNotFoundError saying the module itself is missing; other failures raise."""
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if _is_missing(exc, target):
            return exc
        failure: Exception = exc
    except Exception as exc:
        failure = exc
    raise PluginError(
        f"strategy plugin {ref!r}: importing {target} failed: {type(failure).__name__}: {failure}"
    ) from failure


def _import_module(ref: str, target: str) -> Any:
    """Import `package.module`: installed packages first, then the current directory, as `python -m` would find it.

    The current directory goes at the END of sys.path (and stays, so the plugin can import its siblings later): an
    installed package of the same name keeps winning, exactly as it did before the directory was searched.
    """
    module = _try_import(ref, target)
    if not isinstance(module, ModuleNotFoundError):
        return module
    cwd = Path.cwd()
    file = cwd.joinpath(*target.split(".")).with_suffix(".py")
    in_cwd = file.is_file() or (file.with_suffix("") / "__init__.py").is_file()
    searched = any(Path(p or ".").resolve() == cwd for p in sys.path)
    if in_cwd and not searched:
        sys.path.append(str(cwd))
        importlib.invalidate_caches()
        module = _try_import(ref, target)
        if not isinstance(module, ModuleNotFoundError):
            return module
    top = target.split(".")[0]
    if in_cwd:  # the file is here, but a package of the same top-level name elsewhere on sys.path hides it
        raise PluginError(
            f"strategy plugin {ref!r}: cannot import module {target!r} ({module}): the {top!r} found first on "
            f"sys.path is not the one in {cwd}; use the file form '{file.relative_to(cwd)}:{ref.rpartition(':')[2]}'"
        )
    nearby = sorted(f.stem for f in file.parent.glob("*.py") if f.stem != "__init__") if file.parent != cwd else []
    there = f"; modules in {file.parent}: {', '.join(nearby)}" if nearby else ""
    raise PluginError(
        f"strategy plugin {ref!r}: cannot import module {target!r} ({module}): it is neither installed nor under "
        f"the current directory {cwd} (no {file}{there}). Use 'path/to/file.py:Class' for a file, or run from "
        "the folder that holds the package"
    )


def _import_file(ref: str, path: Path) -> Any:
    if not path.is_file():
        raise PluginError(f"strategy plugin {ref!r}: file {path} does not exist (paths are relative to {Path.cwd()})")
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
    mod_name = f"botkit_plugin_{resolved.stem}_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, resolved)
    if spec is None or spec.loader is None:
        raise PluginError(f"strategy plugin {ref!r}: cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[mod_name]
        raise PluginError(f"strategy plugin {ref!r}: importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _from_entry_point(name: str) -> type[Strategy]:
    eps = entry_points(group=ENTRY_POINT_GROUP)
    match = [ep for ep in eps if ep.name == name]
    if not match:
        known = sorted(ep.name for ep in eps)
        raise PluginError(
            f"strategy plugin {name!r}: not a 'file.py:Class' or 'module:Class' reference, and no entry point "
            f"of that name in group {ENTRY_POINT_GROUP!r} (installed: {known or 'none'})"
        )
    try:
        obj = match[0].load()
    except Exception as exc:
        raise PluginError(f"strategy plugin {name!r}: loading entry point failed: {exc}") from exc
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise PluginError(f"strategy plugin {name!r}: entry point does not point at a Strategy subclass")
    return obj


def build_strategy(ref: str, params: dict[str, Any]) -> Strategy:
    """Load the plugin and validate its parameters against its `Params` model."""
    cls = load_strategy_class(ref)
    if cls.Params.model_config.get("extra") is None:  # unknown params are errors unless a Params says otherwise
        known = {f.alias or name for name, f in cls.Params.model_fields.items()} | set(cls.Params.model_fields)
        unknown = [k for k in params if k not in known]
        if unknown:
            tips = ", ".join(
                f"{k!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, known, n=1)) else "")
                for k in unknown
            )
            raise PluginError(
                f"strategy plugin {ref!r} ({cls.__name__}): unknown [strategy.params] {tips}. Accepted params: "
                f"{', '.join(cls.Params.model_fields) or 'none'}"
            )
    try:
        validated = cls.Params.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(params)'} = {e.get('input')!r}: {e['msg']}"
            for e in exc.errors()
        )
        fields = ", ".join(cls.Params.model_fields) or "none"
        raise PluginError(
            f"strategy plugin {ref!r} ({cls.__name__}): bad [strategy.params]: {problems}. Accepted params: {fields}"
        ) from None
    return cls(validated)
