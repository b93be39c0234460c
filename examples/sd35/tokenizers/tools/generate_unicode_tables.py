#!/usr/bin/env python3
"""Writes ../unicode_tables.cpp: the Unicode letter (L*) and number (N*) classes as code point
ranges and Python's str.lower() as (first, last, delta, stride) runs, from this Python's
unicodedata. Run: python3 tools/generate_unicode_tables.py > unicode_tables.cpp"""
import unicodedata

from unicode_version import header

MAX = 0x110000


def ranges(predicate):
    out, start = [], None
    for cp in range(MAX + 1):
        inside = cp < MAX and predicate(cp)
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            out.append((start, cp - 1))
            start = None
    return out


def category(prefix):
    return lambda cp: unicodedata.category(chr(cp)).startswith(prefix)


def lower_runs():
    pairs = [(cp, ord(chr(cp).lower())) for cp in range(MAX)
             if len(chr(cp).lower()) == 1 and ord(chr(cp).lower()) != cp]
    runs = []
    for cp, low in pairs:
        delta = low - cp
        if runs:
            first, last, d, stride = runs[-1]
            if d == delta and (stride == 0 and cp - last in (1, 2) or cp - last == stride):
                runs[-1] = (first, cp, d, cp - last)
                continue
        runs.append((cp, cp, delta, 0))
    return [(f, l, d, s if s else 1) for f, l, d, s in runs]


def emit_ranges(name, items):
    print(f"const code_point_range {name}[] = {{")
    for first, last in items:
        print(f"    {{0x{first:X}, 0x{last:X}}},")
    print("};")


print(header("generate_unicode_tables.py"))
print('#include "sd35/tokenizers/unicode.hpp"\n')
print("namespace star::sd35::unicode {\nnamespace {\n")
emit_ranges("letter_ranges", ranges(category("L")))
print()
emit_ranges("number_ranges", ranges(category("N")))
print()
print("const lower_run lower_runs[] = {")
for first, last, delta, stride in lower_runs():
    print(f"    {{0x{first:X}, 0x{last:X}, {delta}, {stride}}},")
print("};\n\n}  // namespace\n")
print("std::span<const code_point_range> letters() { return letter_ranges; }")
print("std::span<const code_point_range> numbers() { return number_ranges; }")
print("std::span<const lower_run> lowercase_runs() { return lower_runs; }")
print("\n}  // namespace star::sd35::unicode")
