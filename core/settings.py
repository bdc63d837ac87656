"""One declaration per setting: its CLI flag, DFL-style prompt, JSON key and help come from an `Option`.

Every command declares its settings as a tuple of Options (train's model options, the merger's
settings, extract's and sort's choices) and uses the functions here for the rest: `add_flags` puts
them on an argparse parser, `resolve` fills in what the flags left out (prompt on a terminal, the
default without one), `parse_dict` reads them from a JSON object naming the file and the key of a bad
value. `parse` never rounds or coerces silently (true is not 1, 1.7 is not 1); a `clamp` option (the
merger's knobs, DFL's behaviour) brings a number back into its range instead of refusing it.

Resolution order for each option: the flag when given; else, for a new run, the prompt (or the
default without a terminal); for saved settings, the saved value, asked again only when
`ask_overrides` holds and the option may change after creation.
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


def never(_options: Mapping[str, Any]) -> bool:
    """`ask_if` of a setting that has a flag but no prompt (DFL never asks it)."""
    return False


@dataclass(frozen=True)
class Option:
    key: str  # JSON key and, with dashes, the CLI flag (--ae-dims)
    default: Any  # a value, or a function of the options resolved so far (e.g. res // 8); None: "not set"
    help: str
    question: str = ""  # the prompt's text (default: the key in words)
    kind: str = "str"  # "int" | "float" | "bool" | "str" | "paths" (one or more file names)
    choices: tuple[str, ...] = ()
    valid_range: tuple[float, float] | None = None
    first_run_only: bool = False  # shapes of the networks: fixed once the model exists
    ask_if: Callable[[dict[str, Any]], bool] | None = None  # asked only when this holds for the options so far
    alias: str | None = None  # a second CLI flag
    # a rule beyond type and range: (value, the other options known so far) -> what the value must be
    # (e.g. "a multiple of 32 for archi 'df-ud'"), or None when it is fine; keys it needs may be missing
    check: Callable[[Any, Mapping[str, Any]], str | None] | None = None
    clamp: bool = False  # a number outside valid_range is brought into it (DFL's merger knobs), not refused
    flag_name: str | None = None  # the CLI flag when it is not the key with dashes (--max-faces-from-image)
    switch: bool = False  # a bool given as --x / --no-x (or `negative`) instead of --x y/n
    negative: str | None = None  # the "off" flag of a switch (default --no-<key>)
    negative_help: str = ""  # its help (default: "the opposite of --<key>")
    normalize: Callable[[str], str] | None = None  # a spelling to the canonical value (full_face -> f); ValueError if none
    menu: tuple[tuple[str, str], ...] = ()  # (value, title): the prompt is a numbered menu of these
    argparse_choices: bool = False  # argparse checks the flag's choices (usage and exit 2), as DFL's scripts expect
    default_text: str = ""  # how --help states the default when the plain value is not the whole story

    @property
    def flag(self) -> str:
        return self.flag_name or "--" + self.key.replace("_", "-")

    @property
    def prompt(self) -> str:
        return self.question or self.key.replace("_", " ").capitalize()

    def expected(self) -> str:
        """What a value must be, for error messages: "an integer from 1 to 256", "one of h, mf, f"."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "y or n (true or false)"
        if self.kind == "paths":
            return "a list of file names"
        what = {"int": "an integer", "float": "a number", "str": "a string"}[self.kind]
        if self.clamp and self.kind == "int":
            what = "a whole number"
        if self.valid_range:
            lo, hi = self.valid_range
            span = f"{lo} to {hi}" if self.kind == "float" else f"{int(lo)} to {int(hi)}"
            what += f" (kept within {span})" if self.clamp else f" from {span}"
        return what

    def parse(self, value: Any, others: Mapping[str, Any] | None = None) -> Any:
        """Convert and check a value from a flag, a prompt or a JSON file. A ValueError says what the value
        must be and what it was ("must be an integer from 1 to 256, got 1.7"). `others`: options known so
        far, for `check`. None is a value only for an option whose default is None ("not set")."""
        if value is None and self.default is None:
            return None
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
        elif self.kind == "paths":
            if isinstance(value, (str, Path)):
                value = (value,)
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, Path)) for v in value):
                raise bad
            value = tuple(Path(v) for v in value)
        elif not isinstance(value, str):
            raise bad
        if self.normalize is not None and isinstance(value, str):
            try:
                value = self.normalize(value)
            except (ValueError, UserError):
                raise bad from None
        if self.choices and value not in self.choices:
            raise bad
        if self.valid_range and not self.valid_range[0] <= value <= self.valid_range[1]:
            if not self.clamp:
                raise bad
            lo, hi = self.valid_range
            value = type(value)(min(hi, max(lo, value)))
        if self.check is not None:
            need = self.check(value, others or {})
            if need:
                raise ValueError(f"must be {need}, got {show(value)}")
        return value

    def default_for(self, resolved: Mapping[str, Any]) -> Any:
        return self.default(resolved) if callable(self.default) else self.default

    def ask(self, default: Any, others: Mapping[str, Any] | None = None) -> Any:
        """The prompt's answer, parsed; on a terminal a value the declaration refuses is asked again."""
        q = self.prompt
        while True:
            if self.menu:
                answer = self._ask_menu(q, default)
            elif self.kind == "int":
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

    def _ask_menu(self, question: str, default: Any) -> Any:
        values = [v for v, _ in self.menu]
        if interact.is_interactive():
            print(f"Choose a {question[0].lower()}{question[1:]}:")
            for i, (_, title) in enumerate(self.menu):
                print(f"  [{i}] {title}")
        index = interact.ask_int(question, values.index(default), (0, len(values) - 1), self.help)
        return values[index]

    def flag_help(self) -> str:
        """The --help text: the help, then the default (`default_text`, else the value when it is a plain one)."""
        text = self.help
        if self.default_text:
            return f"{text} (default: {self.default_text})"
        if not self.switch and self.default is not None and not callable(self.default) and self.default != ():
            shown = ("y" if self.default else "n") if self.kind == "bool" else self.default
            text += f" (default {shown})"
        return text


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, options: Sequence[Option],
              prefix: str = "opt_") -> None:
    """One flag per option key (options shared by several models get one flag); each stores its raw text
    under `prefix + key` (None when not given) for `flags_given`."""
    seen: set[str] = set()
    for opt in options:
        if opt.key in seen:
            continue
        seen.add(opt.key)
        dest = prefix + opt.key
        help_text = (opt.flag_help() + (" (set when the model is created)" if opt.first_run_only else "")).replace("%", "%%")
        names = [opt.flag, *([opt.alias] if opt.alias else [])]
        if opt.switch:
            group = parser.add_mutually_exclusive_group()
            group.add_argument(*names, action="store_true", dest=dest, default=None, help=help_text)
            group.add_argument(opt.negative or "--no-" + opt.flag[2:], action="store_false", dest=dest,
                               help=(opt.negative_help or f"the opposite of {opt.flag}").replace("%", "%%"))
            continue
        if opt.kind == "bool":
            metavar = "y/n"
        elif opt.choices:
            metavar = "{" + ",".join(opt.choices) + "}"
        else:
            metavar = {"paths": "FILE", "int": "INT", "float": "FLOAT"}.get(opt.kind, "STR")
        extra: dict[str, Any] = {"nargs": "+"} if opt.kind == "paths" else {}
        if opt.argparse_choices and opt.choices:  # a spelling the normalizer knows (an alias) passes too
            extra.update(choices=opt.choices, **({"type": opt.normalize} if opt.normalize else {}))
        parser.add_argument(*names, dest=dest, default=None, metavar=metavar, help=help_text, **extra)


def flags_given(args: argparse.Namespace, prefix: str = "opt_") -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix) and v is not None}


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


def resolve(options: Sequence[Option], saved: Mapping[str, Any] | None, given: Mapping[str, Any], *,
            ask_overrides: bool, saved_path: str | Path | None = None) -> dict[str, Any]:
    """The settings for this run. `saved` is None for a new run (model); `given` are the CLI values.

    Every value goes through its declaration, and so do the rules between options: a bad one is a
    UserError naming where it came from (the flag, or the saved settings at `saved_path`)."""
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
        else:  # an option added after these settings were saved
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


def parse_dict(options: Sequence[Option], data: Mapping[str, Any], path: Any, *, what: str = "option {key!r}",
               unknown: str = "keep") -> dict[str, Any]:
    """The declared entries of a JSON object read from `path`, each through its declaration, then the rules
    between them; a bad value is a UserError naming the file and the key (`what`: how the message names a
    key). `unknown`: "keep" returns undeclared entries as they are, "error" refuses them (a typo would
    otherwise be ignored silently)."""
    if not isinstance(data, Mapping):
        raise UserError("must be a JSON object", path)
    by_key = {opt.key: opt for opt in options}
    extra = [k for k in data if k not in by_key]
    if extra and unknown == "error":
        raise UserError(f"unknown setting(s) {', '.join(sorted(map(str, extra)))} "
                        f"(known: {', '.join(sorted(by_key))})", path)
    out = dict(data)
    for rules in (False, True):  # values first, then the rules between options (resolution and archi)
        for opt in options:
            if opt.key in data:
                try:
                    out[opt.key] = opt.parse(out[opt.key] if rules else data[opt.key], out if rules else None)
                except ValueError as e:
                    raise UserError(f"{what.format(key=opt.key)} {e}", path) from None
    return out


def to_dict(options: Sequence[Option], values: Mapping[str, Any]) -> dict[str, Any]:
    """The declared settings as a JSON object (paths as strings), in declaration order."""
    out: dict[str, Any] = {}
    for opt in options:
        value = values[opt.key]
        out[opt.key] = [str(p) for p in value] if opt.kind == "paths" and value is not None else value
    return out
