"""Checks CDMs against the CCSDS NDM/XML 1.0 CDM schema, as the `ccsds-ndm` package carries it.

No package on PyPI ships the schema file itself (`ndmxml-1.0-cdm-1.0.xsd`); `ccsds-ndm` (pinned in
tests/requirements.txt) ships the dataclasses xsdata generated from it, one field per schema element in the
schema's sequence order, with `required`, `min_occurs`/`max_occurs`, `pattern`, enumerations and the `units`
attributes. This script walks a CDM's XML along those classes and reports every element that is unknown, out of
order, missing while required, repeated beyond its bound, or whose text or unit breaks its type; then parses it with
xsdata's own parser, strictly. A KVN CDM is read by ccsds-ndm's KVN reader, written as NDM/XML by it, and checked
the same way (its reader also checks the KVN's keyword order).

Usage: python validate_cdm.py FILE...   Prints `ok FILE` for each valid file; exits 1 with the problems otherwise.
"""

import dataclasses
import re
import sys
import typing
from enum import Enum

from lxml import etree
from xsdata.formats.dataclass.parsers import XmlParser
from xsdata.formats.dataclass.parsers.config import ParserConfig

from ccsds_ndm.models.ndmxml1.ndmxml_1_0_master import Cdm
from ccsds_ndm.ndm_kvn_io import NdmKvnIo
from ccsds_ndm.ndm_xml_io import NdmXmlIo


def unwrap(tp):
    """The class behind `None | X` or `list[X]`, and whether it was a list."""
    origin = typing.get_origin(tp)
    if origin is list:
        return typing.get_args(tp)[0], True
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return unwrap(args[0])
    return tp, False


def check_text(path, tp, text, meta, problems):
    pattern = meta.get("pattern")
    if pattern and not re.fullmatch(pattern, text):
        problems.append(f"{path}: {text!r} does not match the schema's pattern {pattern}")
    if isinstance(tp, type) and issubclass(tp, Enum):
        if text not in {e.value for e in tp}:
            problems.append(f"{path}: {text!r} is not one of {[e.value for e in tp]}")
    elif tp is float or tp is int:
        try:
            tp(text)
        except ValueError:
            problems.append(f"{path}: {text!r} is not a {tp.__name__}")


def walk(element, cls, path, problems):
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)

    def kind(f):
        # xsdata's convention: a field without a declared type is an element if its class is complex, else the text.
        declared = f.metadata.get("type")
        if declared:
            return declared
        tp, _ = unwrap(hints[f.name])
        return "Element" if dataclasses.is_dataclass(tp) else "Text"

    elements = [f for f in fields if kind(f) == "Element"]
    by_name = {f.metadata.get("name", f.name): (i, f) for i, f in enumerate(elements)}
    attributes = [f for f in fields if kind(f) == "Attribute"]
    text_fields = [f for f in fields if kind(f) == "Text"]

    for attr in attributes:
        name = attr.metadata.get("name", attr.name)
        value = element.get(name)
        tp, _ = unwrap(hints[attr.name])
        if value is None:
            if attr.metadata.get("required"):
                problems.append(f"{path}: required attribute {name} missing")
            continue
        if not attr.init and attr.default is not dataclasses.MISSING and value != attr.default:
            problems.append(f"{path}: attribute {name}={value!r}, the schema fixes {attr.default!r}")
        check_text(f"{path}/@{name}", tp, value, attr.metadata, problems)
    known_attributes = {a.metadata.get("name", a.name) for a in attributes}
    for name in element.attrib:
        if not name.startswith("{") and name not in known_attributes:
            problems.append(f"{path}: unknown attribute {name}")

    if text_fields:
        tp, _ = unwrap(hints[text_fields[0].name])
        check_text(path, tp, (element.text or "").strip(), text_fields[0].metadata, problems)
        return

    counts = {}
    last_index = -1
    for child in element:
        if not isinstance(child.tag, str):
            continue  # an XML comment
        if child.tag not in by_name:
            problems.append(f"{path}: unknown element {child.tag}")
            continue
        index, field = by_name[child.tag]
        if index < last_index:
            problems.append(f"{path}: {child.tag} is out of the schema's order")
        last_index = index
        counts[child.tag] = counts.get(child.tag, 0) + 1
        tp, _ = unwrap(hints[field.name])
        child_path = f"{path}/{child.tag}"
        if dataclasses.is_dataclass(tp):
            walk(child, tp, child_path, problems)
        else:
            check_text(child_path, tp, (child.text or "").strip(), field.metadata, problems)
    for name, (_, field) in by_name.items():
        n = counts.get(name, 0)
        _, is_list = unwrap(hints[field.name])
        low = field.metadata.get("min_occurs", 1 if field.metadata.get("required") else 0)
        high = field.metadata.get("max_occurs", None if is_list else 1)
        if n < low:
            problems.append(f"{path}: {name} occurs {n} times, the schema requires at least {low}")
        if high is not None and n > high:
            problems.append(f"{path}: {name} occurs {n} times, the schema allows at most {high}")


def validate_xml(xml: str):
    problems = []
    root = etree.fromstring(xml.encode("utf-8"), parser=etree.XMLParser(recover=False))
    if root.tag != "cdm":
        return [f"root element is {root.tag}, not cdm"]
    walk(root, Cdm, "cdm", problems)
    config = ParserConfig(fail_on_unknown_properties=True, fail_on_unknown_attributes=True, fail_on_converter_warnings=True)
    try:
        XmlParser(config=config).from_string(xml, Cdm)
    except Exception as e:  # xsdata raises several types; any is a failure here
        problems.append(f"xsdata's strict parser refused it: {e}")
    return problems


def main(paths):
    failed = False
    for path in paths:
        text = open(path, encoding="utf-8").read()
        if text.lstrip().startswith("<"):
            problems = validate_xml(text)
        else:
            try:
                xml = NdmXmlIo().to_string(NdmKvnIo().from_string(text))
                problems = validate_xml(xml)
            except Exception as e:
                problems = [f"ccsds-ndm's KVN reader refused it: {e}"]
        if problems:
            failed = True
            print(f"INVALID {path}")
            for problem in problems:
                print(f"  {problem}")
        else:
            print(f"ok {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
