"""Console prompts in DFL's grammar: `[default] Question ( choices ?:help ) : `.

Every option also has a command-line flag; prompts only fill in what the flags left out. When stdin
is not a terminal (scripts, CI) a prompt never waits: it takes the default and says so.
"""
from __future__ import annotations

import sys
from typing import Callable, Sequence, TypeVar

from core import log

T = TypeVar("T")


def is_interactive() -> bool:
    """True when a person can answer prompts (stdin is a terminal)."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except ValueError:  # closed stdin
        return False


def _format_default(value: object) -> str:
    if isinstance(value, bool):
        return "y" if value else "n"
    return str(value)


def format_prompt(question: str, default: object, choices: Sequence[str] | None = None, has_help: bool = False) -> str:
    """The prompt line exactly as DFL users know it."""
    inner = []
    if choices:
        inner.append("/".join(choices))
    if has_help:
        inner.append("?:help")
    tail = f" ( {' '.join(inner)} )" if inner else ""
    return f"[{_format_default(default)}] {question}{tail} : "


def _ask(question: str, default: T, parse: Callable[[str], T], choices: Sequence[str] | None, help_text: str | None) -> T:
    if not is_interactive():
        log.info(f"{question}: {_format_default(default)} (default; stdin is not a terminal)")
        return default
    prompt = format_prompt(question, default, choices, help_text is not None)
    while True:
        try:
            answer = input(prompt).strip()
        except EOFError:
            return default
        if answer == "?" and help_text:
            print(help_text)
            continue
        if answer == "":
            return default
        try:
            return parse(answer)
        except ValueError as e:
            print(f"  {e}")


def ask_int(question: str, default: int, valid_range: tuple[int, int] | None = None, help_text: str | None = None) -> int:
    def parse(s: str) -> int:
        value = int(s)
        if valid_range and not valid_range[0] <= value <= valid_range[1]:
            raise ValueError(f"enter a number from {valid_range[0]} to {valid_range[1]}")
        return value
    choices = [f"{valid_range[0]}-{valid_range[1]}"] if valid_range else None
    return _ask(question, default, parse, choices, help_text)


def ask_float(question: str, default: float, valid_range: tuple[float, float] | None = None,
              help_text: str | None = None) -> float:
    def parse(s: str) -> float:
        value = float(s)
        if valid_range and not valid_range[0] <= value <= valid_range[1]:
            raise ValueError(f"enter a number from {valid_range[0]} to {valid_range[1]}")
        return value
    choices = [f"{valid_range[0]}-{valid_range[1]}"] if valid_range else None
    return _ask(question, default, parse, choices, help_text)


def ask_bool(question: str, default: bool, help_text: str | None = None) -> bool:
    def parse(s: str) -> bool:
        if s.lower() in ("y", "yes", "1", "true"):
            return True
        if s.lower() in ("n", "no", "0", "false"):
            return False
        raise ValueError("answer y or n")
    return _ask(question, default, parse, ["y", "n"], help_text)


def ask_str(question: str, default: str, choices: Sequence[str] | None = None, help_text: str | None = None) -> str:
    def parse(s: str) -> str:
        if choices:
            lowered = {c.lower(): c for c in choices}
            if s.lower() not in lowered:
                raise ValueError(f"choose one of: {', '.join(choices)}")
            return lowered[s.lower()]
        return s
    return _ask(question, default, parse, choices, help_text)


def pick(value: T | None, ask: Callable[[], T]) -> T:
    """The flag's value when given, otherwise the answer to the prompt (or its default)."""
    return value if value is not None else ask()


def enter_pressed_within(seconds: float, message: str) -> bool:
    """DFL's override window: print `message` and wait up to `seconds` for Enter (False when not a terminal)."""
    if not is_interactive():
        return False
    print(message, flush=True)
    if sys.platform == "win32":
        import msvcrt
        import time
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if msvcrt.kbhit() and msvcrt.getwch() in "\r\n":
                return True
            time.sleep(0.05)
        return False
    import select
    ready, _, _ = select.select([sys.stdin], [], [], seconds)
    if ready:
        sys.stdin.readline()
        return True
    return False
