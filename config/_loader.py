"""Loading and validating a config: TOML -> attrs classes, with errors that name the key path.

`load_config(path)` returns a `LoadedConfig` (the structured `Config`, every strategy's built
`Params`, and paths resolved against the config file's folder) or raises `ConfigError` whose
message is one line per problem: `config/x.toml: strategies[1].params.lookback_s: expected a
number, got 'abc'`; several are listed below `config/x.toml: 2 problems:`, one per line.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import importlib
import importlib.util
import math
import re
import sys
import tomllib
import types
import typing
from collections.abc import Callable, Collection, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, override

from tradingd.engine.model.errors import ConfigError, TradingError
from tradingd.engine.runtime.strategy import Strategy, load_strategy_class
from tradingd.engine.sim.plugins import load_simulator
from tradingd.engine.venue.plugins import available_venues, load_venue
from tradingd.simulators.common import DEFAULT_OPTIONS, parse_options, venue_options

from ._schema import BacktestConfig, CatalogConfig, Config, DaemonConfig, StrategyConfig

__all__ = [
    "LoadedConfig",
    "load_catalog_settings",
    "load_config",
    "load_daemon_settings",
    "make_converter",
    "structure",
]


# A client order id is `<strategy>-<session>-<n>`: a session of 8 base-36 digits and a count of
# up to 14 digits leave 40 for the name within Deribit's 64-character label.
MAX_STRATEGY_NAME = 40


def _describe(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _strict_str(v: Any, _: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"expected a string, got {_describe(v)}")
    return v


def _strict_float(v: Any, _: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"expected a number, got {_describe(v)}")
    try:
        f = float(v)
    except OverflowError:  # an integer beyond a double's range
        raise ValueError(f"expected a finite number, got {_describe(v)}") from None
    # TOML spells `nan` and `inf`: a NaN limit compares false with everything (no limit at
    # all) and a NaN timeout crashes trio, so neither is ever a setting.
    if not math.isfinite(f):
        raise ValueError(f"expected a finite number, got {_describe(v)}")
    return f


def _strict_int(v: Any, _: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"expected an integer, got {_describe(v)}")
    return v


def _strict_bool(v: Any, _: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"expected true or false, got {_describe(v)}")
    return v


def _decimal(v: Any, _: Any) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise TypeError(f"expected a decimal number, got {_describe(v)}")
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise ValueError(f"expected a decimal number, got {_describe(v)}") from None
    if not d.is_finite():
        raise ValueError(f"expected a finite number, got {_describe(v)}")
    return d


def _is_literal(t: Any) -> bool:
    return get_origin(t) is Literal


def _literal_hook(t: Any) -> Callable[[Any, Any], Any]:
    allowed = get_args(t)

    def hook(v: Any, _: Any) -> Any:
        if v not in allowed or type(v) is not type(next((a for a in allowed if a == v), v)):
            choices = ", ".join(repr(a) for a in allowed)
            raise ValueError(f"expected one of {choices}, got {_describe(v)}")
        return v

    return hook


def _is_list(t: Any) -> bool:
    return get_origin(t) is list


def _is_dict(t: Any) -> bool:
    return get_origin(t) is dict


def make_converter() -> cattrs.Converter:
    """A strict converter: no silent coercion (`"5"` is not a number, a string is not a list),
    unknown keys refused."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(Decimal, _decimal)
    conv.register_structure_hook_factory(_is_literal, _literal_hook)

    def list_factory(t: Any) -> Callable[[Any, Any], Any]:
        (item,) = get_args(t) or (Any,)

        def hook(v: Any, _: Any) -> Any:
            if not isinstance(v, list):
                raise TypeError(f"expected a list (a TOML array or [[table]]), got {_describe(v)}")
            errors: list[Exception] = []
            out = []
            for i, x in enumerate(v):
                try:
                    out.append(conv.structure(x, item))
                except Exception as exc:
                    exc.__notes__ = [
                        *getattr(exc, "__notes__", []),
                        IterableValidationNote(f"Structuring {t} @ index {i}", i, item),
                    ]
                    errors.append(exc)
            if errors:
                raise IterableValidationError(f"While structuring {t!r}", errors, t)
            return out

        return hook

    def dict_factory(t: Any) -> Callable[[Any, Any], Any]:
        args = get_args(t)
        value_type = args[1] if len(args) == 2 else Any

        def hook(v: Any, _: Any) -> Any:
            if not isinstance(v, dict):
                raise TypeError(f"expected a table, got {_describe(v)}")
            if value_type is Any:
                return dict(v)
            errors: list[Exception] = []
            out = {}
            for k, x in v.items():
                try:
                    out[k] = conv.structure(x, value_type)
                except Exception as exc:
                    exc.__notes__ = [
                        *getattr(exc, "__notes__", []),
                        AttributeValidationNote(f"Structuring value @ key {k!r}", k, value_type),
                    ]
                    errors.append(exc)
            if errors:
                raise ClassValidationError(f"While structuring {t!r}", errors, dict)
            return out

        return hook

    conv.register_structure_hook_factory(_is_list, list_factory)
    conv.register_structure_hook_factory(_is_dict, dict_factory)
    conv.register_structure_hook(
        StrategyConfig,
        make_dict_structure_fn(
            StrategyConfig, conv, class_=override(rename="class"), _cattrs_forbid_extra_keys=True
        ),
    )
    return conv


def _format_exception(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, KeyError):
        return "required key missing"
    if isinstance(exc, ForbiddenExtraKeysError):
        known = sorted(f.name for f in attrs.fields(exc.cl)) if attrs.has(exc.cl) else []
        known = ["class" if k == "class_" else k for k in known]
        extras = sorted(exc.extra_fields)
        close = [c for e in extras for c in difflib.get_close_matches(e, known, n=1, cutoff=0.6)]
        if close:  # the suggestion is the answer: the list of known keys would only hide it
            return f"unknown key(s) {', '.join(extras)}; did you mean {' or '.join(map(repr, close))}?"
        shown = known[:MAX_KNOWN] + (["..."] if len(known) > MAX_KNOWN else [])
        return f"unknown key(s) {', '.join(extras)}" + (f" (known: {', '.join(shown)})" if known else "")
    if isinstance(exc, TypeError | ValueError) and str(exc).startswith("expected"):
        return str(exc)
    if isinstance(exc, AttributeError | TypeError) and type_ is not None and attrs.has(type_):
        return "expected a table"
    return f"invalid value ({exc})"


# An unknown key without a close match lists the table's keys, at most this many (one line).
MAX_KNOWN = 8


def _path(p: str) -> str:
    p = p.removeprefix("$").removeprefix(".")
    return p.replace(".class_", ".class")


# At most this many problems of one config are listed, one per line.
MAX_PROBLEMS = 10


def _problem(message: str) -> tuple[str, str]:
    """(message, key path) of one of cattrs' `message @ $.path` lines."""
    msg, _, where = message.rpartition(" @ ")
    where = _path(where)
    # A class's own validator names its field ("heartbeat_s: expected ..."): fold it in.
    field, sep, rest = msg.removeprefix("invalid value (").removesuffix(")").partition(": ")
    if sep and field.isidentifier() and rest.startswith("expected"):
        msg, where = rest, f"{where}.{field}" if where else field
    return msg, where


_PART = re.compile(r"\[\d+\]|[^.\[\]]+")


def _table_type(t: Any) -> Any:
    """`X` of `X | None`."""
    if get_origin(t) in (typing.Union, types.UnionType):
        return next((a for a in get_args(t) if a is not type(None)), None)
    return t


def _keys_at(cls: Any, where: str) -> set[str]:
    """The keys the table at key path `where` below `cls` takes (none when it is free-form)."""
    t = cls
    for part in _PART.findall(where):
        t = _table_type(t)
        if part.startswith("["):
            t = get_args(t)[0] if get_origin(t) is list and get_args(t) else None
        elif attrs.has(t):
            t = typing.get_type_hints(t).get("class_" if part == "class" else part)
        else:
            return set()
    t = _table_type(t)
    return {"class" if f.name == "class_" else f.name for f in attrs.fields(t)} if attrs.has(t) else set()


def _header(where: str) -> str:
    """How a key path's table is written in TOML: `strategies[0].params` is [strategies.params]."""
    if not where:
        return "the top level"
    name = re.sub(r"\[\d+\]", "", where)
    return f"[[{name}]]" if where.endswith("]") else f"[{name}]"


def _misplaced(msg: str, where: str, outer_keys: set[str]) -> str:
    """The usual TOML slip: a key written below a [table] header belongs to that table, so a
    `mode = ...` after `[logging]` is logging's (unknown there) and the top level misses it.
    Say so when an unknown key is one of the enclosing table's."""
    found = re.match(r"unknown key\(s\) ([^;(]+)", msg)
    if not found or not where:
        return ""
    keys = [k for k in (k.strip() for k in found[1].split(",")) if k in outer_keys]
    if not keys:
        return ""
    outer = _header(where.rpartition(".")[0] if "." in where else "")
    what, it = ("is a key", "it") if len(keys) == 1 else ("are keys", "them")
    return (
        f"; {', '.join(keys)} {what} of {outer}: put {it} above {_header(where)} "
        "(below a [table] header, a key belongs to that table)"
    )


# One problem of a config: its message and its key path ("" for the top level).
Problem = tuple[str, str]


def _cattrs_problems(
    exc: ClassValidationError | IterableValidationError, cls: Any, path: str, outer_keys: Collection[str]
) -> list[Problem]:
    messages = cattrs.transform_error(
        exc, path="$" + (("." + path) if path else ""), format_exception=_format_exception
    )
    problems = []
    for msg, where in map(_problem, messages):
        parent = where.rpartition(".")[0] if "." in where else ""
        if where == path:
            outer = set(outer_keys)
        elif parent == path or parent.startswith(f"{path}.") or not path:
            outer = _keys_at(cls, parent.removeprefix(path).removeprefix("."))
        else:
            outer = set()
        problems.append((msg + _misplaced(msg, where, outer), where))
    return problems


_UNKNOWN = re.compile(r"unknown key\(s\) ([^;(]+)")


def _without_unknown(data: Any, problems: list[Problem], path: str) -> Any:
    """`data` without the unknown keys `problems` name (a copy), to look for what else is wrong
    with the rest; `data` itself when they name none, None when one cannot be found again."""
    named = [(m, where) for (msg, where) in problems if (m := _UNKNOWN.match(msg))]
    if not named:
        return data
    rest = copy.deepcopy(data)
    for found, where in named:
        if path and not (where == path or where.startswith((f"{path}.", f"{path}["))):
            return None
        table = rest
        for part in _PART.findall(where[len(path) :]):
            try:
                table = table[int(part[1:-1])] if part.startswith("[") else table[part]
            except (KeyError, IndexError, TypeError, ValueError):
                return None
        if not isinstance(table, dict):
            return None
        for key in found[1].split(","):
            table.pop(key.strip(), None)
    return rest


def _validator_problems(obj: Any, where: str) -> list[Problem]:
    """Every field validator's complaint in `obj` (attrs stops at the first): each by its path."""
    out: list[Problem] = []
    if attrs.has(type(obj)):
        for f in attrs.fields(type(obj)):
            value = getattr(obj, f.name)
            name = "class" if f.name == "class_" else f.name
            at = f"{where}.{name}" if where else name
            if f.validator is not None:
                try:
                    f.validator(obj, f, value)
                except (TypeError, ValueError) as exc:
                    msg = str(exc).removeprefix(f"{f.name}: ")
                    out.append((msg if msg.startswith("expected") else f"invalid value ({exc})", at))
            out += _validator_problems(value, at)
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            out += _validator_problems(item, f"{where}[{i}]")
    elif isinstance(obj, dict):
        for key, item in obj.items():
            out += _validator_problems(item, f"{where}.{key}" if where else str(key))
    return out


def _structure_problems(
    conv: cattrs.Converter, data: Any, cls: type[Any], *, path: str = "", outer_keys: Collection[str] = ()
) -> tuple[Any, list[Problem]]:
    """Structure `data` into `cls`: (the value, []) or (None, every problem found). cattrs finds
    every key of a wrong type or unknown in one pass, but a class's validators run only once
    everything else is right, and stop at the first: so the rest (without the unknown keys) is
    built again with validators off and each validator asked in turn."""
    try:
        return conv.structure(data, cls), []
    except (ClassValidationError, IterableValidationError) as exc:
        problems = _cattrs_problems(exc, cls, path, outer_keys)
    except (TypeError, ValueError) as exc:  # the class's own validator, or not a table at all
        problems = [(_format_exception(exc, cls), path)]
    rest = _without_unknown(data, problems, path)
    if rest is None:
        return None, problems
    try:
        with attrs.validators.disabled():
            built = conv.structure(rest, cls)
    except Exception:  # wrong types remain: those are the problems to fix first
        return None, problems
    found = _validator_problems(built, path)
    if rest is data:  # nothing unknown: the one problem was the first validator's, all are here
        return None, found or problems
    # The unknown keys, then each validator's complaint in the order of the fields.
    return None, [p for p in problems if p not in found] + found


class _Problems(ConfigError):
    """A `ConfigError` of several problems, which a caller collecting problems takes apart."""

    problems: list[Problem]


def _problems_in(exc: ConfigError) -> list[Problem]:
    """The problems a `ConfigError` says: those of several, or its one."""
    if isinstance(exc, _Problems):
        return list(exc.problems)
    return [(exc.message, exc.path or "")]


_SECRET_HOLDERS = ("alerts.webhooks",)  # their values may be secrets (a webhook's URL)
_GOT = re.compile(r"\bgot .*\Z", re.DOTALL)
_QUOTED_URL = re.compile(r"'[A-Za-z][A-Za-z0-9+.-]*://[^']*'?")


def _scrub(problem: Problem) -> Problem:
    """A problem under `alerts.webhooks` never repeats the value it found: whatever was written
    there (a webhook's URL in `format`, `webhooks = "https://..."`) may be the secret itself."""
    msg, where = problem
    if not where.startswith(_SECRET_HOLDERS):
        return problem
    msg = _GOT.sub("got a value not shown (it may be a secret)", msg)
    return _QUOTED_URL.sub("a URL not shown", msg), where


def _config_error(problems: list[Problem], *, file: str | None, path: str = "") -> ConfigError:
    """One line when there is one problem, else one line each, up to a bound that still fits
    a screen (an empty file misses two keys: say both)."""
    problems = [_scrub(p) for p in problems]
    if len(problems) == 1:
        msg, where = problems[0]
        return ConfigError(msg, file=file, path=where or None)
    lines = [f"  {where}: {msg}" if where else f"  {msg}" for msg, where in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"  and {len(problems) - MAX_PROBLEMS} more")
    error = _Problems(f"{len(problems)} problems:\n" + "\n".join(lines), file=file, path=path or None)
    error.problems = list(problems)
    error.path = problems[0][1] or None  # the first, for a caller that points at one
    return error


def structure(
    conv: cattrs.Converter,
    data: Any,
    cls: type[Any],
    *,
    file: str | None,
    path: str = "",
    outer_keys: Collection[str] = (),
) -> Any:
    """Structure `data` into `cls`, raising `ConfigError` naming every problem by its key path
    (one line when there is one, else one line each). `outer_keys`: the keys of the table
    enclosing `path` (to say when a key was written below the wrong header)."""
    value, problems = _structure_problems(conv, data, cls, path=path, outer_keys=outer_keys)
    if problems:
        raise _config_error(problems, file=file, path=path) from None
    return value


@attrs.frozen
class LoadedConfig:
    """A validated config: the structure, every enabled strategy's class and built `Params`, and
    its data paths resolved against the config file's folder."""

    path: Path
    config: Config
    strategy_classes: dict[str, type[Strategy]]
    strategy_params: dict[str, Any]
    data_paths: list[Path]
    venue_settings: dict[str, Any] = attrs.field(factory=dict)

    def settings_of(self, venue: str) -> Any:
        """The venue's structured settings: as configured, or its defaults."""
        found = self.venue_settings.get(venue)
        return load_venue(venue).Settings() if found is None else found

    @property
    def log_file(self) -> Path | None:
        """`[logging] file`, read from the config file's folder (None: not configured)."""
        file = self.config.logging.file
        return None if file is None else self.path.parent / Path(file).expanduser()

    def data_file_missing(self, index: int) -> str:
        """Why data file `index` is looked for where it is, for the line saying it is not there:
        the path as written, where it points, and, for a relative one, that it is read from the
        config file's folder (not the working directory: a config means the same from anywhere,
        so a copied config looks beside its copy)."""
        assert self.config.backtest is not None
        written = self.config.backtest.data[index].path
        where = self.data_paths[index]
        text = f'backtest.data[{index}].path = "{written}" does not exist at {where}'
        if not Path(written).expanduser().is_absolute():
            text += f" (a relative path is read from the config's folder, {self.path.parent.resolve()})"
        return text

    def build_strategies(self) -> list[Strategy]:
        return [cls(name, self.strategy_params[name]) for name, cls in self.strategy_classes.items()]


def _read_toml(p: Path) -> dict[str, Any]:
    file = str(p)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("no such file", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=file) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=file) from None


def _is_non_finite(v: Any) -> bool:
    if isinstance(v, float):
        return not math.isfinite(v)
    return isinstance(v, Decimal) and not v.is_finite()


def _refuse_non_finite(raw: Any, file: str, path: str = "") -> None:
    """No number in a config is ever `nan` or `inf`, whatever its type says, including the
    free-form tables (`fees`, `generate`, untyped params) that no converter hook sees."""
    if isinstance(raw, dict):
        for key, value in raw.items():
            _refuse_non_finite(value, file, f"{path}.{key}" if path else str(key))
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            _refuse_non_finite(item, file, f"{path}[{i}]")
    elif _is_non_finite(raw):
        raise ConfigError(f"expected a finite number, got {_describe(raw)}", file=file, path=path or None)


def _refuse_non_finite_fields(obj: Any, file: str, path: str) -> None:
    """The same for what an attrs class built with its own converters (fee overrides given as
    strings: `option_cap = "NaN"` would become `Decimal('NaN')`)."""
    if not attrs.has(type(obj)):
        return
    for f in attrs.fields(type(obj)):
        value = getattr(obj, f.name)
        if _is_non_finite(value):
            raise ConfigError(f"expected a finite number, got {value}", file=file, path=f"{path}.{f.name}")


_SECRET_KEY = re.compile(
    r"(secret|passw|passphrase|private[_-]?key|api[_-]?key|access[_-]?token|session[_-]?key|mnemonic)",
    re.IGNORECASE,
)


def _refuse_secrets(raw: Any, file: str, path: str = "") -> None:
    """A config file is shared and committed: a key that names a secret is refused outright,
    pointing at where secrets do go."""
    if isinstance(raw, dict):
        for key, value in raw.items():
            where = f"{path}.{key}" if path else str(key)
            if _SECRET_KEY.search(str(key)) and not str(key).endswith(("_env", "_file")):
                raise ConfigError(
                    "secrets are never read from the config: put it in the environment or a "
                    "credential file (e.g. DERIBIT_CLIENT_SECRET or DERIBIT_CLIENT_SECRET_FILE; "
                    "README, Deploy)",
                    file=file,
                    path=where,
                )
            _refuse_secrets(value, file, where)
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            _refuse_secrets(item, file, f"{path}[{i}]")


def _refuse_webhook_urls(raw: Any, file: str) -> None:
    """A webhook's URL is its secret (anyone holding a Slack or Discord webhook URL, or a
    Telegram bot token, can post as it): `url` in `[[alerts.webhooks]]` is refused, pointing at
    `url_env` / `url_file`, and the value is never repeated."""
    alerts = raw.get("alerts") if isinstance(raw, dict) else None
    hooks = alerts.get("webhooks") if isinstance(alerts, dict) else None
    for i, hook in enumerate(hooks if isinstance(hooks, list) else ()):
        if isinstance(hook, dict) and "url" in hook:
            raise ConfigError(
                "a webhook's URL is a secret, never read from the config: name the environment "
                "variable holding it (url_env) or a file (url_file)",
                file=file,
                path=f"alerts.webhooks[{i}].url",
            )


def load_daemon_settings(path: str | Path) -> DaemonConfig:
    """Only a config's `[daemon]` table (for `tradingd status`/`kill`, which must work without
    importing the strategies or reaching the venues)."""
    p = Path(path)
    raw = _read_toml(p).get("daemon", {})
    _refuse_non_finite(raw, str(p), "daemon")
    settings: DaemonConfig = structure(make_converter(), raw, DaemonConfig, file=str(p), path="daemon")
    return settings


def _holds(folder: Path, top: str) -> bool:
    return (folder / top).is_dir() or (folder / f"{top}.py").is_file()


def _origin(module: Any) -> Path | None:
    """Where an imported module came from (its file or its package's folder), if anywhere."""
    spec = getattr(module, "__spec__", None)
    where = getattr(spec, "origin", None) or getattr(module, "__file__", None)
    if where is None or where in ("built-in", "frozen"):
        # A namespace package (a folder without `__init__.py`) has only its folders.
        where = next(iter(getattr(module, "__path__", ())), None)
    return Path(where).resolve() if where else None


@contextlib.contextmanager
def _user_folder_first(module: str, config_file: Path, *, file: str, path: str) -> Iterator[None]:
    """Import a user's `module` (of a `module:Class`) the way uvicorn's `--app-dir` does.

    Its top-level package or module is looked for in the config file's folder, then in the
    working directory. The config's folder comes first because the config names the class: the
    module beside it is the one its author meant, whatever directory the command runs from
    (cron, systemd). The folder holding it goes to the front of `sys.path` while the module is
    imported (what it imports of its own, a `helpers.py` beside it, comes from there too, ahead
    of an installed package of the same name), then to the back, where it stays for imports the
    user's code makes later: from then on no file in a user's folder can take the place of a
    module Python or tradingd imports later (a `random.py` beside the config), and nothing of
    the user's is searched before what is installed more than needed. A top-level name that is
    already a standard module or one this process imported from elsewhere cannot be the user's
    (one process has one module per name): that is refused, naming the file to rename. A module
    in neither folder may still be installed; one found nowhere is a one-line error naming the
    folders searched."""
    top = module.partition(".")[0]
    folders = list(dict.fromkeys([config_file.parent.resolve(), Path.cwd().resolve()]))
    home = next((f for f in folders if _holds(f, top)), None)
    if home is None:
        if importlib.util.find_spec(top) is None:
            searched = " or ".join(str(f) for f in folders)
            raise ConfigError(
                f"strategy module {module!r} not found: no {top!r} in {searched}, nor installed",
                file=file,
                path=path,
            )
        yield
        return
    mine = home / top if (home / top).is_dir() else home / f"{top}.py"
    loaded = sys.modules.get(top)
    origin = _origin(loaded) if loaded is not None else None
    if loaded is not None and not (origin is not None and origin.is_relative_to(home)):
        raise ConfigError(
            f"strategy module {module!r}: {mine} has the name of the module {top!r} already "
            f"imported from {origin or 'Python itself'}: rename your {mine.name}",
            file=file,
            path=path,
        )
    if loaded is None and top in sys.stdlib_module_names:
        raise ConfigError(
            f"strategy module {module!r}: {mine} has the name of Python's standard module {top!r}: "
            f"rename your {mine.name}",
            file=file,
            path=path,
        )
    entry = str(home)
    sys.path.insert(0, entry)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(entry)  # the first occurrence: ours, at the front
        if entry not in sys.path:
            sys.path.append(entry)


def _check_generate(venue: str, options: dict[str, Any], *, file: str, path: str) -> bool:
    """A `generate` table is read only when its file is missing, at the first `backtest`:
    `check-config` says now what that run would refuse (`hour = 1` for `hours`). Every bundled
    simulator reads the table with `simulators.common.parse_options`; another venue's simulator
    checks its own when it generates. True when a bundled simulator's table was read."""
    try:
        simulator = load_simulator(venue)
    except ConfigError as exc:
        raise ConfigError(exc.message, file=file, path=path) from None
    if not type(simulator).__module__.startswith("tradingd.simulators."):
        return False
    try:
        parse_options(options, venue=venue)
    except ValueError as exc:
        raise ConfigError(str(exc), file=file, path=path) from None
    return True


def _check_crypto_path(generated: list[tuple[int, str, dict[str, Any]]], problems: list[Problem]) -> None:
    """A Polymarket sample with `crypto = "deribit"` prices its Bitcoin markets from the BTC path
    of the Deribit sample of the same seed, start and strikes (simulators/polymarket/crypto.py:
    the path depends on all three): beside a generated Deribit sample of other ones, its markets
    would follow another BTC than the options. Refused, naming both entries, unless one of the
    backtest's generated Deribit entries matches. `generated`: (index, venue, table) of the
    entries whose bundled simulator read their table."""

    def path_of(venue: str, options: dict[str, Any]) -> dict[str, Any]:
        merged = {**DEFAULT_OPTIONS, **options}
        seed, _, start_ns = parse_options(options, venue=venue)
        strikes = venue_options(options, venue)["strikes"]
        return {"seed": seed, "start": (start_ns, merged["start"]), "strikes": strikes}

    deribit = [(i, path_of("deribit", o)) for i, v, o in generated if v == "deribit"]
    if not deribit:
        return  # no generated options to follow (a recording's path is not the generator's)
    for i, venue, options in generated:
        if venue != "polymarket" or venue_options(options, venue)["crypto"] != "deribit":
            continue
        mine = path_of(venue, options)
        if any(theirs == mine for _, theirs in deribit):
            continue
        j, theirs = deribit[0]

        def shown(key: str, value: Any) -> str:
            return repr(value[1]) if key == "start" else str(value)

        differ = ", ".join(
            f"{key} {shown(key, mine[key])} here, {shown(key, theirs[key])} there"
            for key in ("seed", "start", "strikes")
            if mine[key] != theirs[key]
        )
        problems.append(
            (
                f'crypto = "deribit" follows the BTC path of the Deribit sample of the same seed, start'
                f" and strikes, but backtest.data[{j}] (deribit) differs: {differ}",
                f"backtest.data[{i}].generate",
            )
        )


def load_catalog_settings(path: str | Path) -> CatalogConfig:
    """Only a config's `[catalog]` table (for `tradingd catalog`, which needs neither the
    strategies nor the venues)."""
    p = Path(path)
    raw = _read_toml(p).get("catalog", {})
    _refuse_non_finite(raw, str(p), "catalog")
    settings: CatalogConfig = structure(make_converter(), raw, CatalogConfig, file=str(p), path="catalog")
    return settings


def _check_data_venues(
    config: Config, classes: dict[str, type[Strategy]], params: dict[str, Any], file: str
) -> None:
    """A backtest strategy subscribing to a venue no data file is of would get nothing from it
    and print zeros (issue 16): refused, naming its `venue` param when it has one. Its
    `required_subscriptions` needs no context (the engine asks before attaching one); a
    strategy that cannot say them without one is not checked here (the backtest warns)."""
    assert config.backtest is not None
    data = sorted({d.venue for d in config.backtest.data})
    for i, sc in enumerate(config.strategies):
        if sc.name not in classes:
            continue
        try:
            subs = list(classes[sc.name](sc.name, params[sc.name]).required_subscriptions())
        except Exception:  # the user's code, run early: the backtest's warnings still cover it
            continue
        missing = sorted({sub.venue for sub in subs} - set(data))
        if missing:
            where = f"strategies[{i}]"
            if getattr(params[sc.name], "venue", None) in missing:
                where += ".params.venue"
            raise ConfigError(
                f"subscribes to {', '.join(missing)}, but no [[backtest.data]] is of"
                f" {'them' if len(missing) > 1 else 'it'} (the data is of {', '.join(data)}):"
                " it would get nothing",
                file=file,
                path=where,
            )


def _alone(conv: cattrs.Converter, raw: Any, cls: Any) -> Any:
    """`raw` structured as `cls`, or None when it does not fit (its problems are reported by
    the whole config's pass): to check what can be checked of a config that does not fit."""
    try:
        return conv.structure(raw, cls)
    except Exception:
        return None


def _check_strategy(
    conv: cattrs.Converter, sc: StrategyConfig, where: str, p: Path, file: str
) -> tuple[type[Strategy], Any]:
    """The class a strategy names and its built `Params`, or `ConfigError` naming each problem."""
    try:
        if ":" in sc.class_:
            with _user_folder_first(sc.class_.partition(":")[0], p, file=file, path=f"{where}.class"):
                cls = load_strategy_class(sc.class_)
        else:
            cls = load_strategy_class(sc.class_)
    except ConfigError:
        raise
    except TradingError as exc:
        raise ConfigError(str(exc), file=file, path=f"{where}.class") from None
    params_cls = cls.Params
    if params_cls is None:
        if sc.params:
            raise ConfigError(
                f"{sc.class_} takes no params: it declares no `Params` class (an attrs class "
                "built from this table; README, Add a strategy)",
                file=file,
                path=f"{where}.params",
            )
        return cls, None
    built = structure(
        conv,
        sc.params,
        params_cls,
        file=file,
        path=f"{where}.params",
        outer_keys=_keys_at(StrategyConfig, ""),
    )
    return cls, built


def _name_problem(sc: StrategyConfig, seen: set[str]) -> str | None:
    if not sc.name or not sc.name.replace("_", "").replace("-", "").isalnum():
        return "a strategy name is letters, digits, '_' and '-'"
    if len(sc.name) > MAX_STRATEGY_NAME:
        # Its orders' client ids (`<name>-<session>-<n>`) go to the venues as labels, and
        # Deribit refuses a label over 64 characters (VENUES.md §1.7).
        return (
            f"a strategy name is at most {MAX_STRATEGY_NAME} characters (it starts every order's "
            f"client id, which venues limit: Deribit's labels to 64); {sc.name!r} has {len(sc.name)}"
        )
    if sc.name == "engine":  # the engine-wide scope of tradingd_daily_pnl_usd and the alerts
        return "'engine' is reserved (the engine-wide figures' name): choose another strategy name"
    if sc.name in seen:
        return f"duplicate strategy name {sc.name!r}"
    return None


def _check_backtest(
    backtest: BacktestConfig, known_venues: set[str], p: Path, file: str, problems: list[Problem]
) -> list[Path]:
    """The data files' venues, formats and `generate` tables, and the latencies: each problem
    added to `problems`; the data paths resolved against the config file's folder."""
    data_paths: list[Path] = []
    generated: list[tuple[int, str, dict[str, Any]]] = []  # the tables bundled simulators read
    if not backtest.data:
        problems.append(("list at least one [[backtest.data]] file", "backtest.data"))
    for i, d in enumerate(backtest.data):
        where = f"backtest.data[{i}]"
        # `~` is the user's home, as in a shell (`p.parent / '~/x'` would be a folder `~`).
        data_paths.append((p.parent / Path(d.path).expanduser()).resolve())
        if d.venue not in known_venues:
            known = ", ".join(sorted(known_venues))
            problems.append((f"unknown venue {d.venue!r} (known: {known})", f"{where}.venue"))
            continue
        formats = ("recording", *getattr(load_venue(d.venue), "data_formats", ()))
        if d.format not in formats:
            problems.append(
                (f"{d.venue} reads no {d.format!r} data (it reads: {', '.join(formats)})", f"{where}.format")
            )
        if d.generate is not None:
            try:
                if _check_generate(d.venue, d.generate, file=file, path=f"{where}.generate"):
                    generated.append((i, d.venue, d.generate))
            except ConfigError as exc:
                problems.extend(_problems_in(exc))
    _check_crypto_path(generated, problems)
    for field, value in (
        ("latency_ms", backtest.latency_ms),
        ("equity_interval_s", backtest.equity_interval_s),
    ):
        if value < 0 or (field == "equity_interval_s" and value == 0):
            problems.append((f"must be positive, got {value}", f"backtest.{field}"))
    return data_paths


def load_config(path: str | Path) -> LoadedConfig:
    """Read, structure and cross-check a config file (see module docstring). Every problem
    found is reported at once, one per line (up to `MAX_PROBLEMS`): those of the whole config's
    structure, then what can be checked of each part that fits (each strategy's class and
    params on their own, each venue, each data file), so that a user fixes them in one go."""
    p = Path(path)
    return load_config_data(_read_toml(p), p)


def load_config_data(raw: dict[str, Any], path: str | Path) -> LoadedConfig:
    """`load_config` of a config already read (a sweep's trial: the base config's table with
    its parameters changed): checked as the file at `path` would be, relative paths relative to
    its folder, problems naming it."""
    p = Path(path)
    file = str(p)
    _refuse_secrets(raw, file)
    _refuse_webhook_urls(raw, file)
    _refuse_non_finite(raw, file)
    conv = make_converter()
    config, problems = _structure_problems(conv, raw, Config)
    table: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if config is not None:
        strategies: list[StrategyConfig | None] = list(config.strategies)
        venues: dict[str, dict[str, Any]] = config.venues
        backtest: BacktestConfig | None = config.backtest
    else:  # what of it fits on its own is still checked
        found = table.get("strategies")
        strategies = [_alone(conv, sc, StrategyConfig) for sc in found] if isinstance(found, list) else []
        venues = _alone(conv, table.get("venues", {}), dict[str, dict[str, Any]]) or {}
        backtest = _alone(conv, table["backtest"], BacktestConfig) if "backtest" in table else None

    known_venues = set(available_venues())
    venue_settings: dict[str, Any] = {}
    for name, raw_settings in venues.items():
        if name not in known_venues:
            problems.append((f"unknown venue (known: {', '.join(sorted(known_venues))})", f"venues.{name}"))
            continue
        plugin = load_venue(name)
        settings, found_problems = _structure_problems(
            conv, raw_settings, plugin.Settings, path=f"venues.{name}"
        )
        if found_problems:
            problems += found_problems
            continue
        try:
            fees = plugin.fee_model(settings.fees)
            _refuse_non_finite_fields(fees, file, f"venues.{name}.fees")
        except (ValueError, TypeError, ArithmeticError) as exc:
            if isinstance(exc, ConfigError):
                problems.extend(_problems_in(exc))
            else:
                problems.append((str(exc), f"venues.{name}.fees"))
            continue
        venue_settings[name] = settings

    classes: dict[str, type[Strategy]] = {}
    params: dict[str, Any] = {}
    seen: set[str] = set()
    for i, sc in enumerate(strategies):
        if sc is None:  # does not fit [[strategies]]: said by the whole config's pass
            continue
        where = f"strategies[{i}]"
        wrong_name = _name_problem(sc, seen)
        if wrong_name is not None:
            problems.append((wrong_name, f"{where}.name"))
        seen.add(sc.name)
        if not sc.enabled:
            continue
        try:
            cls, built = _check_strategy(conv, sc, where, p, file)
        except ConfigError as exc:
            problems.extend(_problems_in(exc))
            continue
        if wrong_name is None:
            classes[sc.name] = cls
            params[sc.name] = built

    data_paths: list[Path] = []
    if config is not None and config.mode == "backtest" and backtest is None:
        problems.append(("mode is 'backtest' but there is no [backtest] table", "backtest"))
    if backtest is not None:
        data_paths = _check_backtest(backtest, known_venues, p, file, problems)
    if config is not None and not any(sc is not None and sc.enabled for sc in strategies):
        problems.append(("no enabled strategy", "strategies"))
    if problems:
        raise _config_error(problems, file=file)
    assert config is not None  # it did not fit: that was a problem
    if config.mode == "backtest" and config.backtest is not None:
        _check_data_venues(config, classes, params, file)
    return LoadedConfig(
        path=p,
        config=config,
        strategy_classes=classes,
        strategy_params=params,
        data_paths=data_paths,
        venue_settings=venue_settings,
    )


# Keep typing's forward references resolvable for cattrs on Python 3.11.
typing.get_type_hints(Config)
