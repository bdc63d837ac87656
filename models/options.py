"""Model options: declared once per model, each with a CLI flag, a DFL-style prompt and a JSON home.

Resolution order for each option: the flag when given; else, for a new model, the prompt (or the
default without a terminal); for an existing model, the saved value, asked again only when the user
pressed Enter in the override window and the option may change after creation.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from core import interact, log
from core.errors import UserError


def show(value: Any) -> str:
    """A value as the user wrote it: JSON spelling (true, null, 1.7), strings quoted."""
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


@dataclass(frozen=True)
class Option:
    key: str  # JSON key and, with dashes, the CLI flag (--ae-dims)
    default: Any  # a value, or a function of the options resolved so far (e.g. res // 8)
    help: str
    question: str = ""
    kind: str = "str"  # "int" | "float" | "bool" | "str"
    choices: tuple[str, ...] = ()
    valid_range: tuple[float, float] | None = None
    first_run_only: bool = False  # shapes of the networks: fixed once the model exists
    ask_if: Callable[[dict[str, Any]], bool] | None = None  # asked only when this holds for the options so far
    alias: str | None = None  # a second CLI flag
    # a rule beyond type and range: (value, the other options known so far) -> what the value must be
    # (e.g. "a multiple of 32 for archi 'df-ud'"), or None when it is fine; keys it needs may be missing
    check: Callable[[Any, Mapping[str, Any]], str | None] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def expected(self) -> str:
        """What a value must be, for error messages: "an integer from 1 to 256", "one of h, mf, f"."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "y or n (true or false)"
        what = {"int": "an integer", "float": "a number", "str": "a string"}[self.kind]
        if self.valid_range:
            lo, hi = self.valid_range
            what += f" from {lo} to {hi}" if self.kind == "float" else f" from {int(lo)} to {int(hi)}"
        return what

    def parse(self, value: Any, others: Mapping[str, Any] | None = None) -> Any:
        """Convert and check a value from a flag, a prompt or a JSON file. A ValueError says what the value
        must be and what it was ("must be an integer from 1 to 256, got 1.7"); nothing is rounded or
        coerced silently (true is not 1, 1.7 is not 1). `others`: options known so far, for `check`."""
        bad = ValueError(f"must be {self.expected()}, got {show(value)}")
        if self.kind == "int":
            if isinstance(value, str):
                try:
                    value = int(value.strip())
                except ValueError:
                    raise bad from None
            elif isinstance(value, float) and not isinstance(value, bool) and value.is_integer():
                value = int(value)  # 4.0 from a JSON writer: nothing is lost
            elif isinstance(value, bool) or not isinstance(value, int):
                raise bad
        elif self.kind == "float":
            if isinstance(value, str):
                try:
                    value = float(value.strip())
                except ValueError:
                    raise bad from None
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                value = float(value)
            else:
                raise bad
            if not math.isfinite(value):
                raise bad
        elif self.kind == "bool":
            if isinstance(value, str):
                if value.strip().lower() not in ("y", "n", "yes", "no", "true", "false", "1", "0"):
                    raise bad
                value = value.strip().lower() in ("y", "yes", "true", "1")
            elif isinstance(value, int) and value in (0, 1):  # true/false, or 0/1 from a JSON writer
                value = bool(value)
            else:
                raise bad
        elif not isinstance(value, str):
            raise bad
        if self.choices and value not in self.choices:
            raise bad
        if self.valid_range and not self.valid_range[0] <= value <= self.valid_range[1]:
            raise bad
        if self.check is not None:
            need = self.check(value, others or {})
            if need:
                raise ValueError(f"must be {need}, got {show(value)}")
        return value

    def default_for(self, resolved: dict[str, Any]) -> Any:
        return self.default(resolved) if callable(self.default) else self.default

    def ask(self, default: Any, others: Mapping[str, Any] | None = None) -> Any:
        """The prompt's answer, parsed; on a terminal a value the declaration refuses is asked again."""
        q = self.question or self.key.replace("_", " ").capitalize()
        while True:
            if self.kind == "int":
                rng = (int(self.valid_range[0]), int(self.valid_range[1])) if self.valid_range else None
                answer = interact.ask_int(q, int(default), rng, self.help)
            elif self.kind == "float":
                answer = interact.ask_float(q, float(default), self.valid_range, self.help)
            elif self.kind == "bool":
                answer = interact.ask_bool(q, bool(default), self.help)
            else:
                answer = interact.ask_str(q, str(default), self.choices or None, self.help)
            try:
                return self.parse(answer, others)
            except ValueError as e:
                if not interact.is_interactive():
                    raise
                print(f"  {e}")


def add_flags(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """One flag per option key (options shared by several models get one flag)."""
    seen: set[str] = set()
    for opt in options:
        if opt.key in seen:
            continue
        seen.add(opt.key)
        metavar = "y/n" if opt.kind == "bool" else ("{" + ",".join(opt.choices) + "}" if opt.choices else opt.kind.upper())
        parser.add_argument(opt.flag, *([opt.alias] if opt.alias else []), dest=f"opt_{opt.key}", default=None, metavar=metavar,
                            help=opt.help.replace("%", "%%") + ("" if not opt.first_run_only else " (set when the model is created)"))


def flags_given(args: argparse.Namespace) -> dict[str, Any]:
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_") and v is not None}


def parse_flags(options: Sequence[Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """The CLI values of the declared options, parsed; a bad one is a UserError naming its flag.
    Values of options not declared here are left out (see `unused_flags`)."""
    by_key = {opt.key: opt for opt in options}
    out: dict[str, Any] = {}
    for key, value in given.items():
        opt = by_key.get(key)
        if opt is not None:
            try:
                out[key] = opt.parse(value)
            except ValueError as e:
                raise UserError(f"{opt.flag} {e}") from None
    return out


def unused_flags(options: Sequence[Option], given: Mapping[str, Any]) -> list[str]:
    """Keys given on the command line that these options do not declare (a model that would ignore them)."""
    known = {opt.key for opt in options}
    return [key for key in given if key not in known]


def resolve(options: Sequence[Option], saved: dict[str, Any] | None, given: dict[str, Any], *,
            ask_overrides: bool, saved_path: str | Path | None = None) -> dict[str, Any]:
    """The options for this run. `saved` is None for a new model; `given` are the CLI values.

    Every value goes through its declaration, and so do the rules between options (resolution and
    archi): a bad one is a UserError naming where it came from (the flag, or the saved options at
    `saved_path`)."""
    given = parse_flags(options, given)
    result: dict[str, Any] = {}
    source: dict[str, str] = {}

    def checked(opt: Option, value: Any, where: str) -> Any:
        source[opt.key] = where
        try:
            return opt.parse(value, {**(saved or {}), **result})
        except ValueError as e:
            raise _error(opt, where, saved_path, e) from None

    for opt in options:
        default = opt.default_for({**(saved or {}), **result})
        if opt.ask_if is not None and not opt.ask_if({**(saved or {}), **result}):
            if opt.key in given:
                result[opt.key] = checked(opt, given[opt.key], "flag")
            elif saved and opt.key in saved:
                result[opt.key] = checked(opt, saved[opt.key], "saved")
            else:
                result[opt.key] = checked(opt, default, "default")
            continue
        if saved is not None and opt.key in saved:
            current = checked(opt, saved[opt.key], "saved")
            if opt.key in given:
                wanted = checked(opt, given[opt.key], "flag")
                if opt.first_run_only and wanted != current:
                    log.warning(f"{opt.key} is fixed when a model is created; keeping {current} (not {wanted})")
                    wanted = current
                    source[opt.key] = "saved"
                result[opt.key] = wanted
            elif ask_overrides and not opt.first_run_only:
                result[opt.key] = checked(opt, opt.ask(current, {**saved, **result}), "prompt")
            else:
                result[opt.key] = current
            continue
        if opt.key in given:
            result[opt.key] = checked(opt, given[opt.key], "flag")
        elif saved is None:
            result[opt.key] = checked(opt, opt.ask(default, result), "prompt")
        else:  # an option added after this model was made
            result[opt.key] = checked(opt, default, "default")
    for opt in options:  # the rules between options, now that all are known
        try:
            opt.parse(result[opt.key], result)
        except ValueError as e:
            raise _error(opt, source.get(opt.key, "default"), saved_path, e) from None
    return result


def _error(opt: Option, where: str, saved_path: str | Path | None, problem: ValueError) -> UserError:
    if where == "flag":
        return UserError(f"{opt.flag} {problem}")
    if where == "saved" and saved_path is not None:
        return UserError(f"option {opt.key!r} {problem}", saved_path)
    return UserError(f"option {opt.key!r} ({opt.flag}) {problem}")


_warned: set[tuple[str, str]] = set()


def _warn_once(path: str | Path, message: str) -> None:
    if (str(path), message) not in _warned:
        _warned.add((str(path), message))
        log.warning(f"{path}: {message}")


def unknown_entries(options: Sequence[Option], data: Mapping[str, Any],
                    fixed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The entries of a saved options dict that are neither declared nor fixed by the model: kept as they
    are (a newer version, or the user, may have put them there), never used."""
    known = {opt.key for opt in options} | set(fixed or {})
    return {k: v for k, v in data.items() if k not in known}


def parse_saved(options: Sequence[Option], data: dict[str, Any], path: Any, *, class_name: str = "this model",
                fixed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate a model's saved options (its options file, or the copy in its state) with the same
    declarations as the flags: a bad value is a UserError naming the file and the key. Unknown keys are
    kept (warned about once); values of a fixed configuration (Quick96) that differ are warned about."""
    out = dict(data)
    for opt in options:
        if opt.key in data:
            try:
                out[opt.key] = opt.parse(data[opt.key])
            except ValueError as e:
                raise UserError(f"option {opt.key!r} {e}", path) from None
    for opt in options:  # the rules between options (resolution and archi)
        if opt.key in out:
            try:
                opt.parse(out[opt.key], out)
            except ValueError as e:
                raise UserError(f"option {opt.key!r} {e}", path) from None
    unknown = list(unknown_entries(options, data, fixed))
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        _warn_once(path, f"{names} {'is not an option' if len(unknown) == 1 else 'are not options'} of {class_name}: "
                         f"kept in the file, not used")
    fixed = fixed or {}
    declared = {opt.key for opt in options}
    ignored = [k for k in data if k in fixed and k not in declared and data[k] != fixed[k]]
    if ignored:
        values = ", ".join(f"{k} {show(data[k])}" for k in ignored)
        uses = ", ".join(f"{k} {show(fixed[k])}" for k in ignored)
        _warn_once(path, f"{class_name}'s configuration is fixed: {values} not used ({class_name} uses {uses})")
    return out
