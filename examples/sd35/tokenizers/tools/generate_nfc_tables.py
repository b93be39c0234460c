#!/usr/bin/env python3
"""Writes ../unicode_nfc_tables.cpp, the data of Unicode NFC (unicode_nfc.hpp), from this
Python's unicodedata, which must be the version of ../unicode_tables.cpp:
- the full canonical decomposition (NFD) of every code point it changes, Hangul syllables
  excepted (they decompose algorithmically), as slices of one flat code point pool;
- the canonical combining class, as runs of consecutive code points of one non-zero class;
- the primary composites: (first, second) -> composite for every two-code-point canonical
  decomposition whose composite NFC keeps (no composition exclusion, no non-starter
  decomposition).
Run: python3 tools/generate_nfc_tables.py > unicode_nfc_tables.cpp"""
import unicodedata

from unicode_version import check_version, header

MAX = 0x110000
HANGUL_SYLLABLES = range(0xAC00, 0xD7A4)
SURROGATES = range(0xD800, 0xE000)
WIDTH = 100


def decompositions():
    out = []
    for cp in range(MAX):
        if cp in HANGUL_SYLLABLES or cp in SURROGATES:
            continue
        nfd = unicodedata.normalize("NFD", chr(cp))
        if nfd != chr(cp):
            assert not any(ord(c) in HANGUL_SYLLABLES for c in nfd)
            out.append((cp, [ord(c) for c in nfd]))
    return out


def combining_class_runs():
    runs = []
    for cp in range(MAX):
        ccc = unicodedata.combining(chr(cp))
        if ccc == 0:
            continue
        if runs and runs[-1][1] == cp - 1 and runs[-1][2] == ccc:
            runs[-1] = (runs[-1][0], cp, ccc)
        else:
            runs.append((cp, cp, ccc))
    return runs


def primary_composites():
    out = []
    for cp in range(MAX):
        if cp in SURROGATES:
            continue
        parts = unicodedata.decomposition(chr(cp)).split()
        if len(parts) == 2 and not parts[0].startswith("<") and \
                unicodedata.normalize("NFC", chr(cp)) == chr(cp):
            out.append((int(parts[0], 16), int(parts[1], 16), cp))
    return sorted(out)


def emit(declaration, rows):
    print(f"{declaration}[] = {{")
    line = ""
    for row in rows:
        if line and len(line) + 1 + len(row) > WIDTH:
            print(line)
            line = ""
        line = f"{line} {row}" if line else f"    {row}"
    print(f"{line}\n}};\n")


check_version()
decomposed = decompositions()
pool, entries = [], []
for cp, parts in decomposed:
    entries.append(f"{{0x{cp:X}, {len(pool)}, {len(parts)}}},")
    pool.extend(parts)
assert len(pool) < 1 << 16

print(header("generate_nfc_tables.py"))
print('#include "sd35/tokenizers/unicode_nfc.hpp"\n')
print("namespace star::sd35::unicode {\nnamespace {\n")
emit("const char32_t pool", [f"0x{cp:X}," for cp in pool])
emit("const canonical_decomposition decompositions", entries)
emit("const combining_class_run class_runs",
     [f"{{0x{f:X}, 0x{l:X}, {ccc}}}," for f, l, ccc in combining_class_runs()])
emit("const composition_pair composites",
     [f"{{0x{a:X}, 0x{b:X}, 0x{c:X}}}," for a, b, c in primary_composites()])
print("}  // namespace\n")
print("std::span<const char32_t> decomposition_pool() { return pool; }")
print("std::span<const canonical_decomposition> canonical_decompositions() "
      "{ return decompositions; }")
print("std::span<const combining_class_run> combining_class_runs() { return class_runs; }")
print("std::span<const composition_pair> primary_composites() { return composites; }")
print("\n}  // namespace star::sd35::unicode")
