"""One way to read configuration, for the bot, the sandbox and `[auth]`: a TOML file, `BOTKIT_*` environment
overrides (bot configs), pydantic validation, and one error type whose message names the key, the value and the fix.

An error caused by an environment variable names the variable, not the file, and a `BOTKIT_` variable whose section
the config does not have is an error, not silently ignored. Values that may be secrets are never echoed.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

ENV_PREFIX = "BOTKIT_"
# BOTKIT_ variables that are not config overrides (they configure tests, or hold a key by name)
NOT_CONFIG_ENV = frozenset({"BOTKIT_REQUIRE_SHARED_DATA", "BOTKIT_TOKEN_KEY"})
SECRET_WORDS = ("secret", "token", "password", "key", "verifier", "code")  # keys whose values are never shown


class ConfigError(ValueError):
    """The configuration is wrong. The message names the key (or variable), the value and the fix. CLI exit 2."""


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{what} {p} does not exist (looked in {Path.cwd()})")
    if p.is_dir():
        raise ConfigError(f"{what} {p} is a directory; give the path of a .toml file")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {p} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {p} is not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{what} {p} cannot be read ({exc.strerror}); fix the path or its permissions") from None


def env_variables(environ: Mapping[str, str], sections: Iterable[str], top_level: Iterable[str] = ()) -> dict[
        tuple[str, ...], str]:
    """The `BOTKIT_SECTION__KEY` (or `BOTKIT_KEY` for top-level keys) variables that override the config, by the
    key path they set. A variable for a section the config does not have is an error that says what exists."""
    known = {s.lower() for s in sections}
    tops = {t.lower() for t in top_level}
    out: dict[tuple[str, ...], str] = {}
    bad: list[str] = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in NOT_CONFIG_ENV:
            continue
        parts = tuple(p.lower() for p in name[len(ENV_PREFIX):].split("__"))
        if (len(parts) > 1 and parts[0] in known) or (len(parts) == 1 and parts[0] in tops):
            out[parts] = name
            continue
        guess = difflib.get_close_matches(parts[0], sorted(known | tops), n=1)
        bad.append(f"  {name}: no config section or key {parts[0]!r}"
                   + (f"; did you mean BOTKIT_{guess[0].upper()}{'__' if guess[0] in known else ''}...?" if guess
                      else f"; sections: {', '.join(sorted(known))}"))
    if bad:
        raise ConfigError("environment variables that override nothing (a typo would be ignored otherwise):\n"
                          + "\n".join(bad) + "\nfix the name or unset the variable")
    return out


def shown(loc: tuple[Any, ...], value: Any) -> str:
    """The offending value for a message, unless it is a table or may hold a secret."""
    if isinstance(value, dict):
        return f"<table with keys {sorted(value)}>"
    if isinstance(value, list):
        return "<list>"
    if any(w in str(p).lower() for p in loc for w in SECRET_WORDS):
        return "<hidden>"
    return repr(value)[:120]


def allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (sub)model that `loc` points into, to suggest fixes for unknown keys."""
    current: Any = model
    for part in loc[:-1]:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []  # dict values: no fixed keys
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        candidates = [ann, *args]
        nxt = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nxt is None and args:
            inner = [a for c in args for a in getattr(c, "__args__", ())]
            nxt = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        current = nxt
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def format_errors(exc: ValidationError, source: str, model: type[BaseModel], *, prefix: tuple[str, ...] = (),
                  env: Mapping[tuple[str, ...], str] | None = None,
                  fix: Callable[[dict[str, Any]], str | None] | None = None) -> str:
    """One message for every problem: key (or the environment variable that set it), value, and the fix."""
    lines = [f"invalid config {source}:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in (*prefix, *loc)) or "(top level)"
        var = next((v for path, v in (env or {}).items() if tuple(str(p).lower() for p in loc[:len(path)]) == path),
                   None)
        where = f"{key} (from the environment variable {var})" if var else key
        if err["type"] == "extra_forbidden":
            allowed = allowed_keys(model, loc)
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            tip = f" Did you mean {hint[0]!r}?" if hint else ""
            lines.append(f"  {where}: unknown key.{tip} Allowed here: {', '.join(allowed) or 'see README'}")
        elif err["type"] == "missing":
            lines.append(f"  {where}: required key is missing; add it (see configs/ for examples)")
        else:
            how = fix(dict(err)) if fix is not None else None
            lines.append(f"  {where} = {shown(loc, err.get('input'))}: {err['msg']}" + (f"; fix: {how}" if how else ""))
    return "\n".join(lines)


def validate(model: type[M], data: Mapping[str, Any], source: str, *, prefix: tuple[str, ...] = (),
             env: Mapping[tuple[str, ...], str] | None = None,
             fix: Callable[[dict[str, Any]], str | None] | None = None,
             error: type[ConfigError] = ConfigError) -> M:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise error(format_errors(exc, source, model, prefix=prefix, env=env, fix=fix)) from None
