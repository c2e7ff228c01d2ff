"""Just enough of a Swift reader to compare the harness app's Codable types with the JSON Schemas.

It reads declarations, not expressions: types (struct/enum/class) with their brace-delimited bodies, stored
properties at the top level of a body, ``enum X: String`` cases with raw values, and the keys a hand-written
``encode(to:)`` writes. Comments are dropped and string contents masked before braces are matched, so a
``{`` inside a string literal cannot shift a body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_LEXEME = re.compile(r'(?P<comment>//[^\n]*|/\*[\s\S]*?\*/)|(?P<text>"""[\s\S]*?"""|"(?:\\.|[^"\\\n])*")')
_DECL = re.compile(r"\b(struct|enum|class)\s+(\w+)\s*(?::\s*([^{]+))?\{")
_PROPERTY = re.compile(r"^[ \t]*(?:(?:public|internal|private|fileprivate)(?:\(set\))?[ \t]+)*(let|var)[ \t]+(\w+)"
                       r"[ \t]*:[ \t]*([^={\n]+?)[ \t]*(=[^\n{]*)?(\{)?[ \t]*$", re.M)
_CASE = re.compile(r"^[ \t]*case[ \t]+([^\n]+)$", re.M)
_ENCODE_FUNC = re.compile(r"func encode\(to encoder: Encoder\)[^{]*\{")
_ENCODE_CALL = re.compile(r"\.(encode|encodeIfPresent)\(\s*(\w+)\s*,\s*forKey:\s*\.(\w+)\s*\)")


@dataclass
class SwiftType:
    kind: str  # struct | enum | class
    name: str
    inherits: str
    body: str  # comments removed, strings intact
    properties: dict[str, str] = field(default_factory=dict)  # stored property -> declared type
    cases: dict[str, str] = field(default_factory=dict)  # enum case -> raw value (String enums)
    coding_keys: dict[str, str] = field(default_factory=dict)  # CodingKeys case -> JSON key
    encoded: dict[str, tuple[str, str]] | None = None  # hand-written encode(to:): key case -> (call, property)


def _without_comments(source: str) -> tuple[str, str]:
    """(source with comments blanked, the same with string contents blanked too); both keep every offset."""
    def blank(text: str) -> str:
        return re.sub(r"[^\n]", " ", text)

    plain, masked = [], []
    last = 0
    for m in _LEXEME.finditer(source):
        plain.append(source[last:m.start()])
        masked.append(source[last:m.start()])
        if m.group("comment"):
            plain.append(blank(m.group()))
            masked.append(blank(m.group()))
        else:
            quote = '"""' if m.group().startswith('"""') else '"'
            inner = m.group()[len(quote):-len(quote)]
            plain.append(m.group())
            masked.append(quote + blank(inner).replace(" ", "x") + quote)
        last = m.end()
    plain.append(source[last:])
    masked.append(source[last:])
    return "".join(plain), "".join(masked)


def _closing(masked: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(masked)):
        if masked[i] == "{":
            depth += 1
        elif masked[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced braces after offset {open_at}")


def _top_level(masked_body: str) -> list[bool]:
    """For each offset of a body (without its own braces): is it outside every nested brace pair?"""
    depth, flags = 0, []
    for ch in masked_body:
        if ch == "}":
            depth -= 1
        flags.append(depth == 0)
        if ch == "{":
            depth += 1
    return flags


def _cases(body: str, top: list[bool]) -> dict[str, str]:
    cases = {}
    for m in _CASE.finditer(body):
        if not top[m.start()]:
            continue
        for item in m.group(1).split(","):
            parts = re.fullmatch(r'\s*(\w+)\s*(?:=\s*"([^"]*)")?\s*', item)
            if parts is None:  # an associated value, e.g. case invalidJob(String): not a String enum case
                continue
            cases[parts.group(1)] = parts.group(2) if parts.group(2) is not None else parts.group(1)
    return cases


def parse_types(source: str) -> dict[str, SwiftType]:
    plain, masked = _without_comments(source)
    types: dict[str, SwiftType] = {}
    for m in _DECL.finditer(masked):
        close = _closing(masked, m.end() - 1)
        body, masked_body = plain[m.end():close], masked[m.end():close]
        top = _top_level(masked_body)
        t = SwiftType(m.group(1), m.group(2), (m.group(3) or "").strip(), body)
        for p in _PROPERTY.finditer(body):
            if top[p.start()] and not p.group(5) and "static" not in body[p.start():p.start(2)]:
                t.properties[p.group(2)] = p.group(3).strip()
        if t.kind == "enum" and re.match(r"String\b", t.inherits):
            t.cases = _cases(body, top)
        enc = _ENCODE_FUNC.search(masked_body)
        if enc:
            enc_close = _closing(masked_body, enc.end() - 1)
            calls = _ENCODE_CALL.finditer(body[enc.end():enc_close])
            t.encoded = {c.group(3): (c.group(1), c.group(2)) for c in calls}
        types.setdefault(t.name, t)  # a nested CodingKeys is read through its parent below
        keys = re.search(r"\benum\s+CodingKeys\s*:\s*String\s*,\s*CodingKey\s*\{", masked_body)
        if keys:
            keys_close = _closing(masked_body, keys.end() - 1)
            inner = body[keys.end():keys_close]
            t.coding_keys = _cases(inner, _top_level(masked_body[keys.end():keys_close]))
    return types


def constant(source: str, name: str) -> int:
    """The integer literal assigned to ``static let <name>`` (hex or decimal, underscores allowed)."""
    m = re.search(rf"\bstatic let {name}\s*(?::\s*\w+)?\s*=\s*(0x[0-9A-Fa-f_]+|[0-9_]+)\b", source)
    if m is None:
        raise KeyError(name)
    return int(m.group(1).replace("_", ""), 0)


def string_constant(source: str, name: str) -> str:
    m = re.search(rf'\b(?:static )?let {name}\s*(?::\s*String)?\s*=\s*"([^"]*)"', source)
    if m is None:
        raise KeyError(name)
    return m.group(1)


def multiline_string(source: str, name: str) -> str:
    m = re.search(rf'\blet {name}\s*=\s*"""\n([\s\S]*?)\n[ \t]*"""', source)
    if m is None:
        raise KeyError(name)
    return m.group(1)


def integer_list(text: str) -> list[int]:
    return [int(v.replace("_", ""), 0) for v in re.findall(r"0x[0-9A-Fa-f_]+|\d[\d_]*", text)]
