"""Go's text forms that labnet must reproduce byte for byte (kubectl's field errors,
knftables' comments): pure, shared by the stages that print them."""

from __future__ import annotations


def go_quote(text: str) -> str:
    """Go's %q of a string (strconv.Quote) for the characters labnet's texts can hold: quotes
    and backslashes escaped, \\n \\t \\r by name, other control characters as \\xNN."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
