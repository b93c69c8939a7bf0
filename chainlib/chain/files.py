"""Versioned JSON chain files.

```json
{"format": "chainlib.chain", "version": 1, "name": "resize photos",
 "nodes": [
   {"id": "load_folder", "type": "image.load_folder", "inputs": {"folder": {"value": "photos"}}},
   {"id": "resize", "type": "image.resize",
    "inputs": {"image": {"link": {"node": "load_folder", "output": "image"}},
               "width": {"value": 256}}}]}
```
Every input is either ``{"value": <JSON constant>}`` or ``{"link": {"node": ID, "output": NAME}}``
(``output`` may be omitted for a node with a single output). Errors name the JSON path.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ChainError
from .graph import ID_RE, INVALID_ID, Graph, NodeInstance, OutputRef, paused_gc

FORMAT = "chainlib.chain"
VERSION = 1
MAX_FILE_BYTES = 128 * 2**20
"""The largest chain file read (128 MB: about 1.3 million nodes)."""
MAX_DEPTH = 64
"""The deepest nesting of lists and objects in a constant value (``--set`` values included)."""


def chain_to_dict(chain: Graph) -> dict[str, Any]:
    nodes = []
    for nid, inst in chain.nodes.items():
        inputs: dict[str, Any] = {}
        for name, value in inst.inputs.items():
            if isinstance(value, OutputRef):
                link = {"node": value.node}
                if value.output is not None:
                    link["output"] = value.output
                inputs[name] = {"link": link}
            else:
                _check_json(value, node=nid, input=name)
                inputs[name] = {"value": value}
        nodes.append({"id": nid, "type": inst.type, "inputs": inputs})
    return {"format": FORMAT, "version": VERSION, "name": chain.name, "nodes": nodes}


def _check_json(value: Any, *, node: str, input: str) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if math.isfinite(value):
            return
    elif isinstance(value, list):
        for v in value:
            _check_json(v, node=node, input=input)
        return
    elif isinstance(value, dict) and all(isinstance(k, str) for k in value):
        for v in value.values():
            _check_json(v, node=node, input=input)
        return
    raise ChainError(
        f"constant {type(value).__name__} {value!r:.60} cannot be stored in a chain file",
        node=node, input=input,
    )


def value_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value`` nests lists/tuples/dicts (0 for a scalar), counted level by level
    without recursion; stops counting past ``limit``."""
    depth = 0
    level = [value]
    while depth <= limit:
        containers = [v for v in level if isinstance(v, (list, tuple, dict))]
        if not containers:
            break
        depth += 1
        level = [c for v in containers for c in (v.values() if isinstance(v, dict) else v)]
    return depth


def check_depth(value: Any, *, node: str, input: str, where: str | None = None) -> None:
    """``ChainError`` if a constant nests deeper than :data:`MAX_DEPTH`."""
    if isinstance(value, (list, tuple, dict)) and value_depth(value) > MAX_DEPTH:
        raise ChainError(f"constant nested more than {MAX_DEPTH} levels deep", node=node,
                         input=input, where=where)


def parse(data: Any, *, source: str = "<dict>") -> tuple[str, dict[str, NodeInstance]]:
    """A chain file's content as ``(name, nodes)``; errors name the JSON path."""
    def fail(where: str, message: str, **kw: Any) -> ChainError:
        return ChainError(message, where=f"{source}:{where}", **kw)

    if not isinstance(data, Mapping):
        raise fail("$", f"expected a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise fail("$.format", f"not a chainlib chain file (format is {data.get('format')!r}, "
                               f"expected {FORMAT!r})")
    version = data.get("version")
    if type(version) is not int or version != VERSION:  # not true, not 1.0
        raise fail("$.version", f"unsupported chain file version {version!r} "
                                f"(this chainlib reads version {VERSION})")
    name = data.get("name", "chain")
    if not isinstance(name, str):
        raise fail("$.name", "expected a string")
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        raise fail("$.nodes", "expected a list of nodes")
    parsed_nodes: dict[str, NodeInstance] = {}
    # this loop runs once per node (B8): JSON paths are formatted only for an error, exact dicts
    # are recognised before any ABC check, and the id pattern is matched inline
    id_ok = ID_RE.match
    for i, raw in enumerate(nodes):
        if type(raw) is not dict and not isinstance(raw, Mapping):
            raise fail(f"$.nodes[{i}]", "expected a node object")
        nid, ntype, inputs = raw.get("id"), raw.get("type"), raw.get("inputs", {})
        if not isinstance(nid, str) or not nid:
            raise fail(f"$.nodes[{i}].id", "expected a non-empty string node id")
        if not isinstance(ntype, str) or not ntype:
            raise fail(f"$.nodes[{i}].type", "expected a node type id string", node=nid)
        if type(inputs) is not dict and not isinstance(inputs, Mapping):
            raise fail(f"$.nodes[{i}].inputs", "expected an object of inputs", node=nid)
        if nid in parsed_nodes:
            raise fail(f"$.nodes[{i}].id", "duplicate node id", node=nid)
        parsed: dict[str, Any] = {}
        for key, spec in inputs.items():
            if (type(spec) is not dict and not isinstance(spec, Mapping)) or len(spec) != 1:
                raise _bad_input(fail, i, key, nid)
            if "value" in spec:
                value = spec["value"]
                if isinstance(value, (list, dict)):
                    check_depth(value, node=nid, input=key,
                                where=f"{source}:$.nodes[{i}].inputs.{key}")
                parsed[key] = value
                continue
            if "link" not in spec:
                raise _bad_input(fail, i, key, nid)
            link = spec["link"]
            if type(link) is not dict and not isinstance(link, Mapping):
                raise _bad_link(fail, i, key, nid)
            target, output = link.get("node"), link.get("output")
            if not isinstance(target, str) or (not isinstance(output, str) if output is not None
                                               else "output" in link):  # null is no name
                raise _bad_link(fail, i, key, nid)
            parsed[key] = OutputRef(target, output)
        if not id_ok(nid):
            raise fail(f"$.nodes[{i}].id", INVALID_ID, node=nid)
        parsed_nodes[nid] = NodeInstance(nid, ntype, parsed)
    return name, parsed_nodes


def _bad_input(fail: Callable[..., ChainError], i: int, key: str, nid: str) -> ChainError:
    return fail(f"$.nodes[{i}].inputs.{key}", 'expected {"value": ...} or {"link": '
                '{"node": ..., "output": ...}}', node=nid, input=key)


def _bad_link(fail: Callable[..., ChainError], i: int, key: str, nid: str) -> ChainError:
    return fail(f"$.nodes[{i}].inputs.{key}.link", 'expected {"node": ID, "output": NAME}',
                node=nid, input=key)


def save(chain: Graph, path: str | Path) -> None:
    text = json.dumps(chain_to_dict(chain), indent=2) + "\n"
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_text(path: str | Path) -> str:
    """A chain file's text: a regular file (checked on the open file, so not a FIFO or
    ``/dev/zero``) of at most :data:`MAX_FILE_BYTES`, in UTF-8. ``ChainError`` otherwise."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ChainError("not a regular file (a chain file is a JSON file)", where=str(p))
            if st.st_size > MAX_FILE_BYTES:
                raise ChainError(f"chain file too large ({st.st_size / 2**20:.0f} MB; the limit is "
                                 f"{MAX_FILE_BYTES // 2**20} MB)", where=str(p))
            data = f.read(MAX_FILE_BYTES + 1)  # the file may grow after the fstat
    except OSError as exc:
        raise ChainError(f"cannot read chain file: {exc.strerror or exc}", where=str(p)) from None
    if len(data) > MAX_FILE_BYTES:
        raise ChainError(f"chain file too large (over the limit of {MAX_FILE_BYTES // 2**20} MB)",
                         where=str(p))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ChainError(f"chain file is not UTF-8 text ({exc.reason})", where=str(p)) from None


def load(path: str | Path) -> tuple[str, dict[str, NodeInstance]]:
    """Read a chain file as ``(name, nodes)``; errors name the file and JSON path."""
    p = Path(path)
    text = read_text(p)
    with paused_gc():
        return _load_text(p, text)


def _load_text(p: Path, text: str) -> tuple[str, dict[str, NodeInstance]]:
    try:
        data = json.loads(text, parse_constant=reject_constant)
    except RecursionError:
        raise ChainError("invalid JSON: nested too deeply", where=str(p)) from None
    except json.JSONDecodeError as exc:
        raise ChainError(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                         where=str(p)) from None
    except ValueError as exc:  # NaN / Infinity: not JSON, and never written by save()
        raise ChainError(f"invalid JSON: {exc}", where=str(p)) from None
    return parse(data, source=str(p))


def reject_constant(name: str) -> Any:
    """``parse_constant`` for ``json.loads``: NaN and Infinity are not JSON (and never saved)."""
    raise ValueError(f"{name} is not a JSON number")


def fingerprint(chain: Graph) -> str:
    d = chain_to_dict(chain)
    d.pop("name", None)
    blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
