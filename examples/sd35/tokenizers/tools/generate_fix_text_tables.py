#!/usr/bin/env python3
"""Writes ../fix_text_tables.cpp: the data behind fix_text.cpp, from this Python's standard
library: HTML5 named character references (the unambiguous ones, ending in ';', plus the
upper-cased names ftfy also accepts), html.unescape's treatment of numeric references, the
Windows-1252 code page and the fullwidth/halfwidth folds (NFKC of U+FF01-U+FFEF, and U+3000),
whose unicodedata must be the version of ../unicode_tables.cpp.
Run: python3 tools/generate_fix_text_tables.py > fix_text_tables.cpp"""
import html
import html.entities
import unicodedata

from unicode_version import check_version, header


def u32(text):
    return 'U"' + "".join(f"\\U{ord(c):08X}" for c in text) + '"'


def named_references():
    table = {}
    for name, text in html.entities.html5.items():
        if not name.endswith(";"):
            continue
        table[name[:-1]] = text
        upper = name.upper()
        if name == name.lower() and html.unescape("&" + upper) == "&" + upper:
            table[upper[:-1]] = text.upper()
    return sorted(table.items())


def windows_1252():
    out = []
    for byte in range(0x80, 0xA0):
        try:
            out.append(ord(bytes([byte]).decode("cp1252")))
        except UnicodeDecodeError:
            out.append(byte)  # undefined in Windows-1252: the C1 control, as browsers do
    return out


def width_folds():
    folds = {0x3000: " "}
    for cp in range(0xFF01, 0xFFF0):
        folded = unicodedata.normalize("NFKC", chr(cp))
        if folded != chr(cp):
            folds[cp] = folded
    return sorted(folds.items())


check_version()
print(header("generate_fix_text_tables.py"))
print('#include "sd35/tokenizers/fix_text_tables.hpp"\n')
print("namespace star::sd35::fix_text_tables {\nnamespace {\n")
print("const named_reference named_table[] = {")
for name, text in named_references():
    print(f'    {{"{name}", {u32(text)}}},')
print("};\n")
print("const numeric_reference invalid_numeric_table[] = {")
for number, text in sorted(html._invalid_charrefs.items()):
    print(f"    {{0x{number:X}, {u32(text)}}},")
print("};\n")
print("const char32_t dropped_numeric_table[] = {")
print("    " + ", ".join(f"0x{cp:X}" for cp in sorted(html._invalid_codepoints)) + ",")
print("};\n")
print("const char32_t windows_1252_table[] = {")
print("    " + ", ".join(f"0x{cp:X}" for cp in windows_1252()) + ",")
print("};\n")
print("const width_fold width_table[] = {")
for cp, text in width_folds():
    print(f"    {{0x{cp:X}, {u32(text)}}},")
print("};\n\n}  // namespace\n")
print("std::span<const named_reference> named_references() { return named_table; }")
print("std::span<const numeric_reference> invalid_numeric_references() "
      "{ return invalid_numeric_table; }")
print("std::span<const char32_t> dropped_numeric_references() { return dropped_numeric_table; }")
print("char32_t windows_1252(unsigned char byte) {\n"
      "  return byte >= 0x80 && byte < 0xA0 ? windows_1252_table[byte - 0x80] : byte;\n}")
print("std::span<const width_fold> width_folds() { return width_table; }")
print("\n}  // namespace star::sd35::fix_text_tables")
