"""`python main.py live`: not built yet."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser],
               device: argparse.ArgumentParser) -> None:
    """Adds nothing yet."""
