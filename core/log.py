"""Console logging, coloured by level with colorama; one logger for the whole toolkit."""
from __future__ import annotations

import logging
import sys

import colorama

_COLOURS = {
    logging.DEBUG: colorama.Style.DIM,
    logging.INFO: "",
    logging.WARNING: colorama.Fore.YELLOW,
    logging.ERROR: colorama.Fore.RED,
    logging.CRITICAL: colorama.Fore.RED + colorama.Style.BRIGHT,
}

_LOGGER_NAME = "facekit"


class _ColourFormatter(logging.Formatter):
    def __init__(self, use_colour: bool):
        super().__init__("%(message)s")
        self.use_colour = use_colour

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING and not text.startswith(("Error", "Warning")):
            text = ("Error: " if record.levelno >= logging.ERROR else "Warning: ") + text
        colour = _COLOURS.get(record.levelno, "")
        if self.use_colour and colour:
            return f"{colour}{text}{colorama.Style.RESET_ALL}"
        return text


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the message (not the one at set-up), so output
    captured or redirected later (pytest, a wrapping tool) still receives the toolkit's lines."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup(debug: bool = False) -> logging.Logger:
    """Configure the toolkit logger once per process (main and every worker call this)."""
    colorama.just_fix_windows_console()
    logger = logging.getLogger(_LOGGER_NAME)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(_ColourFormatter(sys.stderr.isatty()))
        logger.addHandler(handler)
        logger.propagate = False
    return logger


def get() -> logging.Logger:
    """The toolkit logger; configured with defaults if `setup` was not called yet."""
    logger = logging.getLogger(_LOGGER_NAME)
    if not logger.handlers:
        setup()
    return logger


def info(msg: str) -> None:
    get().info(msg)


def warning(msg: str) -> None:
    get().warning(msg)


def error(msg: str) -> None:
    get().error(msg)


def debug(msg: str) -> None:
    get().debug(msg)
