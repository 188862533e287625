"""A quicker reading of the XML answers of EC2 and ELB: the same dictionaries as botocore's parser,
built by a plan made once per shape instead of botocore's walk, which looks up every member's
handler, XML name and namespace again for every element.

A steady check at 5,000 ALBs parses 28 pages (19,000 rules, 5,000 load balancers), and botocore's
walk was about three quarters of its CPU. Only the shapes whose members are all plain (strings,
numbers, booleans, timestamps, non-flattened lists, nested structures of the same) get a plan;
any other shape, every error answer and the answer's envelope (result wrapper, request id,
ResponseMetadata) stay botocore's. tests/aws/test_parsing.py holds the two equal on every answer
the monitor reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.parsers import PROTOCOL_PARSERS, EC2QueryParser, QueryParser, ResponseParserFactory

Plan = Callable[[Any], Any]  # an XML element -> its value
_SCALARS = {"string", "character", "integer", "long", "boolean", "timestamp"}


def _text(node: Any) -> str:
    text = node.text
    return "" if text is None else text  # <foo></foo> is "", as botocore reads it


def _bool(node: Any) -> bool:
    return _text(node) == "true"


def _int(node: Any) -> int:
    return int(_text(node))


class _Plans:
    """The plans of one parser, by shape (None: botocore's walk for that shape). By the shape
    object, not its name: services that share a protocol (ELB and IAM) have shapes of one name.
    botocore keeps each shape object for the client's life, so the table stops growing; it holds
    the shape, so that its id is never another's."""

    def __init__(self, timestamp: Callable[[str], Any]) -> None:
        self._timestamp = timestamp
        self._plans: dict[int, tuple[Any, Plan | None]] = {}

    def of(self, shape: Any) -> Plan | None:
        known = self._plans.get(id(shape))
        if known is None:
            self._plans[id(shape)] = (shape, None)  # a recursive shape is left to botocore
            known = self._plans[id(shape)] = (shape, self._make(shape))
        return known[1]

    def _make(self, shape: Any) -> Plan | None:
        kind = shape.type_name
        if kind in _SCALARS:
            if kind in ("integer", "long"):
                return _int
            if kind == "boolean":
                return _bool
            if kind == "timestamp":
                timestamp = self._timestamp
                return lambda node: timestamp(_text(node))
            return _text
        if kind == "list":
            if shape.serialization.get("flattened"):
                return None
            item = self.of(shape.member)
            if item is None:
                return None
            return lambda node: [item(child) for child in node]
        if kind == "structure":
            return self._structure(shape)
        return None  # maps, blobs, floats, documents: botocore's

    def _structure(self, shape: Any) -> Plan | None:
        if shape.metadata.get("exception") or shape.is_tagged_union:
            return None
        members: dict[str, tuple[str, Plan]] = {}
        for name, member in shape.members.items():
            serialization = member.serialization
            if serialization.get("location") or serialization.get("xmlAttribute") or serialization.get("eventheader"):
                return None
            plan = self.of(member)
            if plan is None:
                return None
            members[serialization.get("name", name)] = (name, plan)

        def parse(node: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            seen = members.get
            for child in node:
                tag = child.tag
                found = seen(tag[tag.rfind("}") + 1:])
                if found is not None:
                    if found[0] in out:
                        raise _Repeated
                    out[found[0]] = found[1](child)
            return out
        return parse


class _Repeated(Exception):
    """A member element came twice: botocore aggregates those its own way; let it."""


def _planned(base: type) -> type:
    class Planned(base):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._plans = _Plans(self._timestamp_parser)

        def _handle_structure(self, shape: Any, node: Any) -> Any:
            plan = None if isinstance(node, list) else self._plans.of(shape)
            if plan is not None:
                try:
                    return plan(node)
                except _Repeated:
                    pass
            return super()._handle_structure(shape, node)

    Planned.__name__ = Planned.__qualname__ = f"Planned{base.__name__}"
    return Planned


_PLANNED = {"ec2": _planned(EC2QueryParser), "query": _planned(QueryParser)}


def planned(protocol: str, shape: Any) -> bool:
    """Whether answers of `shape` are read by a plan (not botocore's walk) under this protocol."""
    parser = _PLANNED[protocol]()
    return parser._plans.of(shape) is not None


class PlannedParserFactory(ResponseParserFactory):
    """botocore's parser factory, with planned parsers for the EC2 and query (ELB, IAM) protocols.
    botocore asks for a parser for every answer: one planned parser per protocol is kept, so its
    plans are made once (these parsers keep no state of an answer, and threads may share one)."""

    def __init__(self) -> None:
        super().__init__()
        self._parsers: dict[str, Any] = {}

    def set_parser_defaults(self, **kwargs: Any) -> None:
        super().set_parser_defaults(**kwargs)
        self._parsers = {}

    def create_parser(self, protocol_name: str) -> Any:
        planned_cls = _PLANNED.get(protocol_name)
        if planned_cls is None:
            return PROTOCOL_PARSERS[protocol_name](**self._defaults)  # as botocore does: one an answer
        parser = self._parsers.get(protocol_name)
        if parser is None:
            parser = self._parsers[protocol_name] = planned_cls(**self._defaults)
        return parser
