"""Model options: what is model-specific about saved options (a fixed configuration, unknown keys kept).

The declaration idiom itself (`Option`, flags, prompts, resolution, JSON) is core.settings, shared by
every command.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from core import log
from core.settings import Option, parse_dict, show

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
    out = parse_dict(options, data, path)
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
