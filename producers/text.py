"""Names and options given to backfill, checked where they come in (the CLI's arguments, the HTTP
service's fields and query): a text that will be stored (an import's source, an option, a
campaign, a key's name) may hold no control character, no line or paragraph separator and no
bidirectional control (which would make it look like another name). Pure.

They are refused, not cleaned: a name with a NUL or an escape sequence in it is a mistake or an
attack, and a name quietly changed would no longer be the one its sender looks for. Tab is a
control character too, and refused like the others, except as the delimiter (``delimiter=\\t``).
"""
from __future__ import annotations

import unicodedata

from worker.errors import ConfigError

#: Unicode's control characters (C0, DEL, C1) and the lone surrogates a name that is not UTF-8
#: becomes on the command line: no database text column takes them whole (PostgreSQL refuses NUL).
_REFUSED = {"Cc": "control character", "Cs": "byte that is not UTF-8", "Zl": "line separator",
            "Zp": "paragraph separator"}
#: The bidirectional embeddings, overrides and isolates: shown, they reorder the text after them (a file
#: ``invoice\u202Efdp.exe`` reads as ``invoiceexe.pdf``), so a name would not look like what it is.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def problem_in(text: str) -> str | None:
    """What is wrong with ``text`` ("control character U+0000 at position 5"), or None. Pure."""
    for position, char in enumerate(text):
        kind = "bidirectional control" if char in _BIDI else _REFUSED.get(unicodedata.category(char))
        if kind:
            return f"{kind} (U+{ord(char):04X}) at position {position + 1}"
    return None


def check_text(what: str, text: str) -> str:
    """``text``, when it holds no control character; raises ConfigError naming ``what`` otherwise."""
    found = problem_in(text)
    if found:
        raise ConfigError(f"{what} {text!r} holds a {found}: names and options are text without control characters")
    return text


def check_texts(what: str, texts) -> None:
    """:func:`check_text` of each of ``texts`` (a list, or the keys and values of a mapping)."""
    items = texts.items() if isinstance(texts, dict) else ((text, None) for text in texts)
    for key, value in items:
        check_text(what, key)
        if value is not None:
            check_text(what, value)
