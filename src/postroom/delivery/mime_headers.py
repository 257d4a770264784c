"""Header lines of the outgoing message: folded at whitespace to 78 octets where a word allows
it (998, RFC 5322's limit, always), with CRLF line ends.

Text that is not plain ASCII (a subject, a display name, a file name) goes as RFC 2047 encoded
words (email.quoprimime, email.base64mime) or, for a file name, RFC 2231 parameters
(email.utils) in sections that fit a line, in every message: only addresses are written as raw
UTF-8, and only in a message that goes with SMTPUTF8 (the only one that can have them). The
standard library encodes; what is ours is the folding, which its fast (compat32) API does not
do for RFC 2231 sections or raw UTF-8 addresses, and its modern one does at 2.5-9 ms a message
(bench/RESULTS.md).
"""

import re
from email import base64mime, quoprimime
from email.utils import encode_rfc2231

_LINE = 78
_CRLF = "\r\n"
_WSP = " \t"
_SPLIT_WSP = re.compile(r"([ \t]+)")
# RFC 5322 atext, words separated by single spaces: a display name that needs no quotes.
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_EW_OVERHEAD = len("=?utf-8?q??=")
_EW_MAX = 75  # RFC 2047 2: an encoded word is at most 75 characters
_MIN_ROOM = 20  # the least room left on a line that an encoded word starts on
_CONTINUATION = {"%8", "%9", "%A", "%B"}  # %80-%BF: not the first byte of a character


def _octets(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _needs_encoding(word: str) -> bool:
    # "=?" would be read back as the start of an encoded word.
    return not word.isascii() or "=?" in word


class _Folder:
    """One header, built a piece at a time; a piece starts with whitespace, where the line may
    fold (a CRLF goes before that whitespace, so unfolding gives the value back exactly)."""

    def __init__(self, name: str) -> None:
        self._lines: list[str] = []
        self._line = name + ":"
        self._start = self._width = len(self._line)

    def add(self, piece: str) -> None:
        size = _octets(piece)
        if self._width + size > _LINE and self._width > self._start:
            self._lines.append(self._line)
            self._line, self._width = piece, size
        else:
            self._line += piece
            self._width += size

    def add_encoded(self, text: str, lead: str = " ") -> None:
        """`text` as encoded words, the first after `lead`, the others after a space (which a
        reader drops between two encoded words)."""
        used = self._width + len(lead)
        if _LINE - used < _MIN_ROOM:
            used = len(lead)  # the first word goes on a line of its own
        for word in _encoded_words(text, used):
            self.add(lead + word)
            lead = " "

    def text(self) -> str:
        self._lines.append(self._line)
        return _CRLF.join(self._lines) + _CRLF


def _encoded_words(text: str, used: int) -> list[str]:
    """`text` as "utf-8" encoded words, "q" or "b" (whichever is shorter for the whole text),
    encoded by the standard library: the first fits a line whose first `used` octets are taken,
    each other one a folded line of its own, none longer than 75 (RFC 2047), none splitting a
    character. (email.header.Header would also do the chunking, but it breaks the text at
    U+2028, U+0085 and the other line boundaries of str.splitlines and joins it with spaces.)"""
    data = text.encode()
    use_b = base64mime.header_length(data) < quoprimime.header_length(data)
    length = base64mime.header_length if use_b else quoprimime.header_length
    encode = base64mime.header_encode if use_b else quoprimime.header_encode
    budget = min(_LINE - used, _EW_MAX) - _EW_OVERHEAD
    words: list[str] = []
    chunk = b""
    for char in text:
        grown = chunk + char.encode()
        if chunk and length(grown) > budget:
            words.append(encode(chunk, "utf-8"))
            budget = min(_LINE - 1, _EW_MAX) - _EW_OVERHEAD
            grown = char.encode()
        chunk = grown
    words.append(encode(chunk, "utf-8"))
    return words


def unstructured(name: str, text: str) -> str:
    """An unstructured header (Subject): plain words as they are, folded between them; a run
    of words that are not plain ASCII (or too long for a line, or holding "=?", or whitespace
    at the start, which a reader strips) as encoded words, whitespace inside the run included."""
    if (
        text.isascii()
        and len(name) + 2 + len(text) <= _LINE
        and "=?" not in text
        and not text.startswith((" ", "\t"))
    ):
        return f"{name}: {text}{_CRLF}"
    parts = _SPLIT_WSP.split(text)
    if len(parts) > 1 and not parts[-1]:
        # Trailing whitespace stays with the last word: no line may be whitespace only.
        parts[-3] += parts[-2]
        del parts[-2:]
    if len(parts) > 1 and not parts[0]:
        parts[1:3] = [parts[1] + parts[2]]  # leading whitespace: part of the first word
        del parts[0]
    folder = _Folder(name)
    words = parts[::2]
    spaces = [" ", *parts[1::2]]
    run: list[str] = []  # the encoded run so far: its lead, then its text
    for index, (space, word) in enumerate(zip(spaces, words, strict=True)):
        encode = (
            _needs_encoding(word)
            or _octets(space) + _octets(word) > _LINE
            or (index == 0 and word.startswith((" ", "\t")))
        )
        if encode and run:
            run.append(space + word)
        elif encode:
            # The run's lead is one whitespace character; the rest of it is encoded.
            run = [space[0], space[1:] + word] if index else [" ", word]
        else:
            if run:
                folder.add_encoded("".join(run[1:]), run[0])
                run = []
            folder.add(space + word)
    if run:
        folder.add_encoded("".join(run[1:]), run[0])
    return folder.text()


def _add_phrase(folder: _Folder, name: str) -> None:
    """A display name: atoms as they are; else one quoted string, folded at its whitespace;
    else (not ASCII, or holding "=?") encoded words.

    A long ASCII word stays whole in its quoted string (a longer line, well within 998): split
    into encoded words it would read back with a space in it in Python's email package, which
    keeps the whitespace between two encoded words of a display name (RFC 2047 drops it)."""
    if _needs_encoding(name):
        folder.add_encoded(name)
    elif _ATOMS.fullmatch(name):
        for word in name.split(" "):
            folder.add(" " + word)
    else:
        quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts = _SPLIT_WSP.split(quoted)
        folder.add(" " + parts[0])
        for i in range(1, len(parts), 2):
            folder.add(parts[i] + parts[i + 1])


def mailbox(name: str, display_name: str | None, address: str) -> str:
    folder = _Folder(name)
    if display_name:
        _add_phrase(folder, display_name)
        folder.add(f" <{address}>")
    else:
        folder.add(" " + address)
    return folder.text()


def address_list(name: str, addresses: tuple[str, ...]) -> str:
    folder = _Folder(name)
    last = len(addresses) - 1
    for index, address in enumerate(addresses):
        folder.add(f" {address}," if index < last else f" {address}")
    return folder.text()


def with_parameter(name: str, value: str, parameter: str, text: str) -> str:
    """`Name: value; parameter="text"`, or, for text a quoted string would not carry exactly
    (not ASCII, "=?", whitespace at either end, too long), RFC 2231's `parameter*0*=utf-8''...`
    in sections that fit a line."""
    folder = _Folder(name)
    folder.add(f" {value};")
    if (
        not _needs_encoding(text)
        and text.strip(_WSP) == text
        and len(parameter) + len(text) + 6 + text.count('"') + text.count("\\") <= _LINE
    ):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        folder.add(f' {parameter}="{escaped}"')
        return folder.text()
    encoded = encode_rfc2231(text, "utf-8").removeprefix("utf-8''")
    sections: list[str] = []
    prefix = "utf-8''"
    while encoded or not sections:
        head = f" {parameter}*{len(sections)}*={prefix}"
        room = _LINE - len(head) - 1
        cut = min(room, len(encoded))
        if cut < len(encoded) and "%" in encoded[max(cut - 2, 0) : cut]:
            cut = encoded.rindex("%", 0, cut)  # never split a %XX
        while encoded[cut : cut + 2] in _CONTINUATION and cut > 3:
            cut -= 3  # nor a character's UTF-8 bytes
        sections.append(head + encoded[:cut])
        encoded, prefix = encoded[cut:], ""
    for index, section in enumerate(sections):
        folder.add(section + (";" if index < len(sections) - 1 else ""))
    return folder.text()
