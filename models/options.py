"""Model options: declared once per model, each with a CLI flag, a DFL-style prompt and a JSON home.

Resolution order for each option: the flag when given; else, for a new model, the prompt (or the
default without a terminal); for an existing model, the saved value, asked again only when the user
pressed Enter in the override window and the option may change after creation.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from core import interact, log


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

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def parse(self, value: Any) -> Any:
        """Convert and check a value from a flag, a prompt or a JSON file."""
        if self.kind == "int":
            value = int(value)
        elif self.kind == "float":
            value = float(value)
        elif self.kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("y", "n", "yes", "no", "true", "false", "1", "0"):
                    raise ValueError(f"{self.key}: expected y or n, got {value!r}")
                value = value.lower() in ("y", "yes", "true", "1")
            value = bool(value)
        else:
            value = str(value)
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.key}: expected one of {', '.join(self.choices)}, got {value!r}")
        if self.valid_range and not self.valid_range[0] <= value <= self.valid_range[1]:
            raise ValueError(f"{self.key}: {value} is outside {self.valid_range[0]}..{self.valid_range[1]}")
        return value

    def default_for(self, resolved: dict[str, Any]) -> Any:
        return self.default(resolved) if callable(self.default) else self.default

    def ask(self, default: Any) -> Any:
        q = self.question or self.key.replace("_", " ").capitalize()
        if self.kind == "int":
            rng = (int(self.valid_range[0]), int(self.valid_range[1])) if self.valid_range else None
            return interact.ask_int(q, int(default), rng, self.help)
        if self.kind == "float":
            return interact.ask_float(q, float(default), self.valid_range, self.help)
        if self.kind == "bool":
            return interact.ask_bool(q, bool(default), self.help)
        return interact.ask_str(q, str(default), self.choices or None, self.help)


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


def resolve(options: Sequence[Option], saved: dict[str, Any] | None, given: dict[str, Any], *,
            ask_overrides: bool) -> dict[str, Any]:
    """The options for this run. `saved` is None for a new model; `given` are the CLI values."""
    result: dict[str, Any] = {}
    for opt in options:
        default = opt.default_for({**(saved or {}), **result})
        if opt.ask_if is not None and not opt.ask_if({**(saved or {}), **result}):
            result[opt.key] = opt.parse(saved.get(opt.key, default)) if saved else default
            if opt.key in given:
                result[opt.key] = opt.parse(given[opt.key])
            continue
        if saved is not None and opt.key in saved:
            current = opt.parse(saved[opt.key])
            if opt.key in given:
                wanted = opt.parse(given[opt.key])
                if opt.first_run_only and wanted != current:
                    log.warning(f"{opt.key} is fixed when a model is created; keeping {current} (not {wanted})")
                    wanted = current
                result[opt.key] = wanted
            elif ask_overrides and not opt.first_run_only:
                result[opt.key] = opt.parse(opt.ask(current))
            else:
                result[opt.key] = current
            continue
        if opt.key in given:
            result[opt.key] = opt.parse(given[opt.key])
        elif saved is None:
            result[opt.key] = opt.parse(opt.ask(default))
        else:  # an option added after this model was made
            result[opt.key] = default
    return result


def parse_saved(options: Sequence[Option], data: dict[str, Any], path: Any) -> dict[str, Any]:
    """Validate an options file; unknown keys are kept (a newer version may know them)."""
    from core.errors import UserError
    out = dict(data)
    for opt in options:
        if opt.key in data:
            try:
                out[opt.key] = opt.parse(data[opt.key])
            except (TypeError, ValueError) as e:
                raise UserError(f"bad option in the model's options file: {e}", path) from None
    return out
