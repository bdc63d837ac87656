"""OpenCV `waitKeyEx` codes as the key names the windows' key maps use (merger, XSeg editor).

One decoder for every window, because the backends disagree: Win32 reports Shift+E as 'E' and
Ctrl+Z as 26; OpenCV's Qt backend reports Shift as its own press followed by a lower-case 'e' (it
drops the case) and swallows Ctrl+letter. `KeyReader` makes a Shift press shift the next key, so
both give 'E'; holding Shift for several presses under Qt shifts only the first one.
"""
from __future__ import annotations

NAMED = {9: "tab", 0xFF09: "tab", 27: "esc", 0xFF1B: "esc", 13: "enter", 10: "enter", 0xFF0D: "enter",
         0xFF8D: "enter", 8: "backspace", 0xFF08: "backspace", 0xFFFF: "delete", 0x2E0000: "delete",
         0xFFE1: "shift", 0xFFE2: "shift", 26: "ctrl+z", 25: "ctrl+y", 4: "ctrl+d", 1: "ctrl+a"}
SHIFTED = {",": "<", ".": ">", "/": "?", ";": ":", "`": "~", "[": "{", "]": "}"}


def decode_key(code: int | None) -> str | None:
    """A key code as a name ('tab', 'esc', 'enter', 'shift', 'ctrl+z', ...) or the character typed;
    None for no key and for keys no window uses."""
    if code is None or code < 0:
        return None
    name = NAMED.get(code)
    if name is not None:
        return name
    low = code & 0xFFFF if code > 0xFFFF else code
    return chr(low) if 32 <= low < 127 else None


class KeyReader:
    """Key codes to names with Shift applied ('E' is Shift+E), whichever backend sent them."""

    def __init__(self) -> None:
        self.shift = False

    def read(self, code: int | None) -> str | None:
        key = decode_key(code)
        if key is None:
            return None
        if key == "shift":
            self.shift = True
            return None
        if self.shift and len(key) == 1:
            key = key.upper() if key.isalpha() else SHIFTED.get(key, key)
        self.shift = False
        return key
