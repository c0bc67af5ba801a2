"""Text that reads as mojibake: cp1252 letters no word has, which another encoding reads as letters.

A file that is not UTF-8 is read as cp1252, what Excel on Windows writes. Every byte but five
decodes in cp1252, so a file written in another encoding is read without an error, wrongly:
Excel for Mac's "CSV (Macintosh)" is Mac Roman, where ``Zürich`` is the bytes cp1252 reads as
``ZŸrich``. What gives it away is where the characters fall: an uppercase letter inside a lowercase
word (``ZŸrich``, ``CafŽ``), a symbol between two letters (``Stra§e``, ``C™te``), a spacing accent
after one (``voilˆ``), a byte cp1252 does not define inside a word (Mac Roman's ç, è, ê, ù). Real
cp1252 text has none of these. The same bytes are then tried in the encodings such files come in
(:data:`CANDIDATES`); the file is refused naming those that read the word as letters.

Some bytes read as plausible text both ways and prove nothing: cp1252's ’ – — š œ ž are Mac Roman's
í ñ ó ö ú û (``Mart’nez``/``Martínez``, ``don’t``/``donít``), and a letter at the end of a word that
cp1252 reads as a footnote or closing quote mark (``Bogot‡``, ``Bront‘``) is left alone too. A Mac
Roman file is told apart by its other letters (ü, ä, é, ß, ç, è, à...); one whose only accents are
those is read as cp1252, as before. charset-normalizer was measured on such files and is not used:
it named the wrong encoding for 5 of 6 small Mac Roman files (cp1250, big5hkscs, cp949) and cp1250
for latin-1 ones; limited to cp1252 and mac_roman, it still read 3 of the 6 Mac files as cp1252.

Pure functions: no I/O.
"""
from __future__ import annotations

import dataclasses
import heapq
import re
import unicodedata
from collections.abc import Iterator

#: The encodings a file that is not cp1252 is likely to be in, and what writes them.
CANDIDATES = (
    ("mac_roman", "Excel for Mac's \"CSV (Macintosh)\""),
    ("cp850", "Excel's \"CSV (MS-DOS)\""),
)

# The letters of Western European words: ASCII, Latin-1's and cp1252's own (not the ordinal marks ª º,
# which follow a number, not a letter).
_LETTERS = frozenset(chr(c) for c in range(0x100) if chr(c).isalpha() and chr(c) not in "ªº") \
    | frozenset("ŒœŠšŽžŸ")
# Characters real text does have between two letters: an apostrophe (’, and ´ typed for one), dashes,
# an ellipsis, Catalan's middle dot (col·lecció). Whitespace and invisible format characters (a soft
# hyphen) are neither letters nor out of place.
_BETWEEN_LETTERS = frozenset("’–—…·´")
_SURROGATES = (0xDC80, 0xDCFF)  # bytes a codec does not define, decoded with errors="surrogateescape"


def _undefined(char: str) -> bool:
    return _SURROGATES[0] <= ord(char) <= _SURROGATES[1]


def undefined(text: str) -> bool:
    """Whether ``text`` (decoded with errors="surrogateescape") holds a byte its encoding does not define."""
    return any(map(_undefined, text))


def _odd(char: str) -> bool:
    """Not a letter nor anything else text has inside a word."""
    if char.isascii() or char in _LETTERS or char in _BETWEEN_LETTERS:
        return False
    return _undefined(char) or not (char.isspace() or unicodedata.category(char) == "Cf")


def _upper(char: str) -> bool:
    return not char.isascii() and char in _LETTERS and char.isupper()


def _trailing(char: str) -> bool:
    """A spacing accent (ˆ ˜ ¨) or an undefined byte: never right after a letter in real text."""
    return _undefined(char) or (char != "´" and unicodedata.category(char) in ("Lm", "Sk"))


def misplaced(word: str) -> int | None:
    """The index of the first character of ``word`` that no real word has where it stands, or None.

    Out of place: a character that is not a letter (a symbol, ``§``, ``™``, an undefined byte)
    between two letters of which one is lowercase (``Stra§e``); an uppercase accented letter after
    a letter, next to a lowercase one (``ZŸrich``, ``CafŽ``); a spacing accent or an undefined byte
    right after a lowercase letter (``voilˆ``). ``’ – — … · ´`` between letters are not (``don’t``).
    """
    for index, char in enumerate(word):
        if char.isascii():
            continue
        before = word[index - 1] if index else ""
        after = word[index + 1] if index + 1 < len(word) else ""
        lower_before = before in _LETTERS and before.islower()
        lower_after = after in _LETTERS and after.islower()
        if _odd(char) and ((lower_before and after in _LETTERS) or (before in _LETTERS and lower_after)):
            return index
        if _upper(char) and before in _LETTERS and (lower_before or lower_after):
            return index
        if _trailing(char) and lower_before:
            return index
    return None


# The fast look over a file's bytes (cp1252 is one byte a character). Each byte is translated to its
# kind: a lowercase letter "l", another letter "u", an uppercase accented letter "X", a spacing accent or
# undefined byte "T", another odd character "O", anything else " ". What misplaced() asks of a
# character's neighbours is only whether each is a letter and lowercase, so misplaced() itself, asked of
# one character of each kind between neighbours of each kind, says which runs of three kinds are out of
# place. Each of the three searches below starts at a literal, which the regex engine finds in C.
_KINDS = {"l": "a", "u": "A", "X": "Ÿ", "T": "ˆ", "O": "§", " ": " "}  # a character of each kind


def _kind(char: str) -> str:
    if _upper(char):
        return "X"
    if _trailing(char):
        return "T"
    if _odd(char):
        return "O"
    if char in _LETTERS:
        return "l" if char.islower() else "u"
    return " "


_TABLE = bytes(ord(_kind(bytes([b]).decode("cp1252", "surrogateescape"))) for b in range(256))


def _search(middle: str) -> re.Pattern[bytes]:
    """The search for a character of kind ``middle`` that is out of place, over translated bytes."""
    branches = []
    for before in _KINDS:
        after = [k for k in _KINDS if misplaced(_KINDS[before] + _KINDS[middle] + _KINDS[k]) == 1]
        if not after:
            continue
        # (the end of the data is a neighbour of kind " ")
        ahead = "" if len(after) == len(_KINDS) else \
            f"(?![^{''.join(after)}])" if " " in after else f"(?=[{''.join(after)}])"
        branches.append(f"(?<={re.escape(before)}{middle}){ahead}")
    return re.compile(f"{middle}(?:{'|'.join(branches)})".encode())


_SEARCHES = tuple(_search(kind) for kind in "XTO")
_WORD = re.compile(r'[^\s,;|"]*')
_WORD_END = re.compile(r'[^\s,;|"]*$')


def word_at(text: str, index: int) -> tuple[int, str]:
    """(where it starts, the word) of the word of ``text`` that holds ``text[index]``: what lies between
    spaces, delimiters and quotes, at most 64 characters before it (a word is short)."""
    before = _WORD_END.search(text, max(0, index - 64), index)
    after = _WORD.match(text, index)
    begin = before.start() if before else index  # (both patterns match the empty string: always found)
    return begin, text[begin:after.end() if after else index]


def _hits(data: bytes) -> Iterator[int]:
    """Where ``data`` (read as cp1252) holds a character out of place, in order."""
    kinds = data.translate(_TABLE)
    return heapq.merge(*((hit.start() for hit in search.finditer(kinds)) for search in _SEARCHES))


@dataclasses.dataclass(frozen=True, slots=True)
class Unlikely:
    """A word of cp1252 text that another encoding reads as letters."""

    #: where the word starts in the data (in bytes and in characters: cp1252 is one byte a character)
    start: int
    #: the word as cp1252 reads it
    word: str
    #: (encoding, the word as it reads there) for each of CANDIDATES that reads it as letters
    readings: tuple[tuple[str, str], ...]


def readings(raw: bytes) -> tuple[tuple[str, str], ...]:
    """(encoding, text) for each of :data:`CANDIDATES` that reads ``raw`` with nothing out of place."""
    found = []
    for encoding, _ in CANDIDATES:
        text = raw.decode(encoding, "surrogateescape")
        if misplaced(text) is None:
            found.append((encoding, text))
    return tuple(found)


def unlikely(data: bytes, enough: int = 20) -> Unlikely | None:
    """The first word of ``data`` read as cp1252 that holds a character out of place (:func:`misplaced`)
    and that another encoding reads as letters.

    Its readings are narrowed by the next such words (up to ``enough`` in all) to the encodings that
    read them all as letters: a Mac Roman ``François`` is ``Franìois`` in cp850 too, its ``Crème`` is not.
    """
    first: Unlikely | None = None
    names: set[str] = set()
    for hit in _hits(data):
        # (a word is short: a little on each side of the character is enough)
        back = max(0, hit - 64)
        begin, word = word_at(data[back:hit + 64].decode("cp1252", "surrogateescape"), hit - back)
        found = readings(word.encode("cp1252", "surrogateescape"))
        if not found:
            continue
        if first is None:
            first, names = Unlikely(back + begin, word, found), {name for name, _ in found}
        else:
            names = names & {name for name, _ in found} or names
        enough -= 1
        if not enough:
            break
    if first is None:
        return None
    return dataclasses.replace(first, readings=tuple(r for r in first.readings if r[0] in names))


def shown(word: str) -> str:
    """``word`` quoted for a message, a byte cp1252 does not define written as ``\\x8d``."""
    return "'" + word.encode("cp1252", "surrogateescape").decode("cp1252", "backslashreplace") + "'"
