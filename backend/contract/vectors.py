"""Canonical-JSON test vectors: worked cases every implementation of the signing rule must match.

A phone computes ``content_sha256`` itself before the resident signs, so its canonical JSON has to
agree with the server's byte for byte, including where languages usually differ (exponents,
``-0``, integers past 2^53, the sort order of keys outside the Basic Multilingual Plane). Each case
keeps its input as raw JSON *text*, so that ``18.0`` and ``18`` stay distinct, and the canonical
text written out by hand from RFC 8785: the Python and TypeScript tests check their code against
these, never against each other. ``refused`` cases must raise an error instead.
"""

import hashlib
import json
from pathlib import Path

import msgspec

__all__ = ("CASES", "REFUSED", "VECTORS_FILE", "Refused", "Vector", "document", "write")

VECTORS_FILE = Path("vectors") / "canonical_json.json"


class Vector(msgspec.Struct, frozen=True):
    name: str
    """What the case is about."""
    input: str
    """The content as JSON text, exactly as a phone or server would receive it."""
    canonical: str
    """The canonical JSON text; its UTF-8 bytes are what a signature covers."""


class Refused(msgspec.Struct, frozen=True):
    name: str
    input: str
    """JSON text that parses but cannot be signed: the implementation must raise."""


CASES: tuple[Vector, ...] = (
    Vector(
        "chinese text",
        '{"resident_name":"张伟","address":"南京街 12 号 3 单元 502 室"}',
        '{"address":"南京街 12 号 3 单元 502 室","resident_name":"张伟"}',
    ),
    Vector("chinese written as escapes", '{"name":"\\u5f20\\u4f1f"}', '{"name":"张伟"}'),
    Vector("emoji, basic and astral plane", '{"note":"修好了 👍🏻🔥 ☃ ✓"}', '{"note":"修好了 👍🏻🔥 ☃ ✓"}'),
    Vector("astral emoji written as a surrogate pair escape", '["\\ud83d\\ude00"]', '["😀"]'),
    Vector("integral floats are integers", "[18.0, 18, -18.0, 0.0, 1.0e2]", "[18,18,-18,0,100]"),
    Vector("negative zero is zero", "[-0.0, -0]", "[0,0]"),
    Vector(
        "large integral doubles are written in full",
        "[1e16, 1e20, 123456789012345680000]",
        "[10000000000000000,100000000000000000000,123456789012345680000]",
    ),
    Vector(
        "the largest safe integer and past it",
        "[9007199254740991, 9007199254740992, 9007199254740993]",
        "[9007199254740991,9007199254740992,9007199254740992]",
    ),
    Vector(
        "a very large integer becomes its double", "[12345678901234567890123]", "[1.2345678901234568e+22]"
    ),
    Vector(
        "fractions, shortest form",
        "[0.1, 1.5, -18.25, 0.30000000000000004, 3.3333333333333335]",
        "[0.1,1.5,-18.25,0.30000000000000004,3.3333333333333335]",
    ),
    Vector(
        "small exponents",
        "[1e-7, 1.5e-7, 0.000001, 0.0000012, 1.23e-18]",
        "[1e-7,1.5e-7,0.000001,0.0000012,1.23e-18]",
    ),
    Vector(
        "large exponents", "[1e21, 2.5e25, 1.7976931348623157e308]", "[1e+21,2.5e+25,1.7976931348623157e+308]"
    ),
    Vector(
        "the smallest doubles",
        "[5e-324, -5e-324, 2.2250738585072014e-308]",
        "[5e-324,-5e-324,2.2250738585072014e-308]",
    ),
    Vector(
        "meter readings",
        '{"reading_before":12345.600,"reading_after":12345.6e0}',
        '{"reading_after":12345.6,"reading_before":12345.6}',
    ),
    Vector(
        "times are strings, kept as sent",
        '{"completed_at":"2026-12-07T00:31:02.500Z","arrived_at":"2026-12-07T08:30:40+08:00"}',
        '{"arrived_at":"2026-12-07T08:30:40+08:00","completed_at":"2026-12-07T00:31:02.500Z"}',
    ),
    Vector(
        "nesting",
        '{"b":[{"z":1,"a":{"y":[],"x":{}}},[[]]],"a":null,"c":true,"d":false}',
        '{"a":null,"b":[{"a":{"x":{},"y":[]},"z":1},[[]]],"c":true,"d":false}',
    ),
    Vector("whitespace is dropped", ' { "a" : [ 1 , 2 ] ,\n\t"b" : { } } ', '{"a":[1,2],"b":{}}'),
    Vector(
        "keys: ascii order, case and prefixes",
        '{"b":1,"a":2,"B":3,"aa":4,"":5,"a ":6}',
        '{"":5,"B":3,"a":2,"a ":6,"aa":4,"b":1}',
    ),
    Vector(
        "keys: UTF-16 order puts astral characters before U+E000..U+FFFF",
        '{"\\ufb01":1,"😀":2,"\\ue000":3,"é":4,"a":5,"张":6,"\\uffff":7}',
        '{"a":5,"é":4,"张":6,"😀":2,"\ue000":3,"ﬁ":1,"\uffff":7}',
    ),
    Vector(
        "keys: sorted inside nested objects too",
        '[{"𝄞":{"\\uff21":1,"𝒜":2}},{"z":0,"y":0}]',
        '[{"𝄞":{"𝒜":2,"Ａ":1}},{"y":0,"z":0}]',
    ),
    Vector(
        "escapes: quote, backslash, slash",
        r'["say \"hi\"", "C:\\dir", "a\/b"]',
        r'["say \"hi\"","C:\\dir","a/b"]',
    ),
    Vector("escapes: short forms of control characters", r'["\b\f\n\r\t"]', r'["\b\f\n\r\t"]'),
    Vector(
        "escapes: other control characters as lower-case \\u00xx",
        r'["\u0000\u0001\u001f\u001F"]',
        r'["\u0000\u0001\u001f\u001f"]',
    ),
    Vector(
        "no escapes: DEL, line and paragraph separators, BOM",
        r'["\u007f\u2028\u2029\ufeff"]',
        '["\x7f\u2028\u2029\ufeff"]',
    ),
    Vector("top-level values", '"张伟"', '"张伟"'),
    Vector(
        "a receipt",
        '{"work_order_id":"0193a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d","order_ref":"WO-20261207-0001",'
        '"technician_name":"维修工 张伟","staff_number":"T0301","resident_name":"李秀英",'
        '"address":"南京街 12 号 3 单元 502 室","arrived_at":"2026-12-07T08:30:40+08:00",'
        '"completed_at":"2026-12-07T09:12:00+08:00","found":"卫生间暖气片接口滴水 🔧",'
        '"done":"更换密封垫，试压 0.6 MPa 30 分钟无渗漏","result":"fixed","satisfaction":5,'
        '"parts_used":["密封垫 DN20","生料带"]}',
        '{"address":"南京街 12 号 3 单元 502 室","arrived_at":"2026-12-07T08:30:40+08:00",'
        '"completed_at":"2026-12-07T09:12:00+08:00","done":"更换密封垫，试压 0.6 MPa 30 分钟无渗漏",'
        '"found":"卫生间暖气片接口滴水 🔧","order_ref":"WO-20261207-0001",'
        '"parts_used":["密封垫 DN20","生料带"],"resident_name":"李秀英","result":"fixed",'
        '"satisfaction":5,"staff_number":"T0301","technician_name":"维修工 张伟",'
        '"work_order_id":"0193a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d"}',
    ),
)

REFUSED: tuple[Refused, ...] = (
    Refused("a lone high surrogate", r'{"note":"half an emoji \ud83d"}'),
    Refused("a lone low surrogate", r'["\ude00"]'),
    Refused("a number too large for a double", "[1e400]"),
)


def document() -> dict[str, object]:
    """The vectors file's content; each SHA-256 is over the hand-written canonical text."""
    return {
        "about": (
            "Canonical JSON (RFC 8785) of signed document content. For each case, parse `input`,"
            " canonicalise it, and compare with `canonical`; `sha256` is the lower-case hex SHA-256"
            " of the UTF-8 bytes of `canonical`. Every `refused` input must raise an error."
        ),
        "cases": [
            {
                "name": case.name,
                "input": case.input,
                "canonical": case.canonical,
                "sha256": hashlib.sha256(case.canonical.encode()).hexdigest(),
            }
            for case in CASES
        ],
        "refused": [{"name": case.name, "input": case.input} for case in REFUSED],
    }


def write(root: Path) -> list[Path]:
    """Write the vectors under ``root`` (the ``mobile_contract`` directory); returns the files written."""
    path = root / VECTORS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document(), ensure_ascii=False, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")
    return [path]
