"""Hypothesis strategies that damage a CSV the ways real files get damaged (shared by fuzz tests).

A mutation is a plain tuple `(op, a, b, token)`; `mutate(data, m)` applies it to CSV bytes, taking
`a` and `b` modulo the lines, fields or bytes there are, so every drawn tuple applies to any file.
"""

from __future__ import annotations

from hypothesis import strategies as st

from jsmp.data import schema

# Field values: NaN in every spelling pandas or pyarrow reads (and some neither does), ±Inf,
# out-of-range and malformed numbers, numbers that round oddly to float32.
VALUES = [
    *schema.NA_VALUES, "nan(1)", "-NaN(0x7)", "NaN ", " nan",
    "inf", "-inf", "+INF", "Infinity", "-infinity", "1e39", "-3.5e38", "1e309", "-1e309",
    "99999999999999999999", "9223372036854775808", "-9223372036854775809", "9223372036854775807", "3000000000", "-2147483649",
    "0", "-0", "-0.0", "1.5", "-0.5", "-1", "1.0", "+5", "1e3", " 1.5", "1.5 ", '"1.5"', '"NaN"', '""',
    "1_0", "0x10", "1d5", "abc", "1.2.3", "--1", "1e", ".", "e5", "1.23456789e-30", "1e-50", "4.9e-324", "3.4028235e38",
    "0.1000000014901161193847656", "16777217",
]
STRAY = [b"\x00", b"\xff", b"\xc3", b'"', b"'", b"\r", b"\n", b",", b" ", b"\t", b"\xef\xbb\xbf", b"-", b"e", b".", b"0", b"#"]
OPS = [
    "delete_field", "duplicate_field", "swap_columns", "swap_fields", "replace_field", "replace_field", "replace_field",
    "insert_bytes", "insert_bytes", "truncate", "duplicate_line", "delete_line", "blank_line", "bom", "crlf", "cr_only",
]


@st.composite
def mutation(draw) -> tuple:
    op = draw(st.sampled_from(OPS))
    token = draw(st.sampled_from(STRAY)) if op == "insert_bytes" else draw(st.sampled_from(VALUES)).encode()
    return op, draw(st.integers(0, 1 << 30)), draw(st.integers(0, 1 << 30)), token


def mutations(max_size: int = 3) -> st.SearchStrategy[list[tuple]]:
    return st.lists(mutation(), min_size=1, max_size=max_size)


def mutate(data: bytes, m: tuple) -> bytes:
    """`data` with mutation `m` applied."""
    op, a, b, token = m
    if op == "insert_bytes":
        i = a % (len(data) + 1)
        return data[:i] + token + data[i:]
    if op == "truncate":
        return data[: a % (len(data) + 1)]
    if op == "bom":
        return b"\xef\xbb\xbf" + data
    if op == "crlf":
        return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if op == "cr_only":
        return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r")
    end = data.endswith(b"\n")
    lines = (data[:-1] if end else data).split(b"\n")
    i = a % len(lines)
    if op == "swap_columns":
        rows = [ln.split(b",") for ln in lines]
        j, k = b % len(rows[0]), (b >> 8) % len(rows[0])
        for r in rows:
            if max(j, k) < len(r):
                r[j], r[k] = r[k], r[j]
        lines = [b",".join(r) for r in rows]
    elif op == "duplicate_line":
        lines.insert(i, lines[i])
    elif op == "delete_line":
        del lines[i]
    elif op == "blank_line":
        lines.insert(i + 1, b"")
    else:
        fields = lines[i].split(b",")
        j = b % len(fields)
        if op == "delete_field":
            del fields[j]
        elif op == "duplicate_field":
            fields.insert(j, fields[j])
        elif op == "swap_fields":
            k = (j + 1) % len(fields)
            fields[j], fields[k] = fields[k], fields[j]
        else:  # replace_field
            fields[j] = token
        lines[i] = b",".join(fields)
    return b"\n".join(lines) + (b"\n" if end else b"")
