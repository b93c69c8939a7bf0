"""Chain files: versioned JSON, exact round trips, errors that say what and where, ``--set``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import chainlib as cl
from chainlib.chain.files import FORMAT, VERSION
from chainlib.cli import apply_overrides, parse_override, parse_value

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def sample_chain() -> cl.Chain:
    chain = cl.Chain("round trip")
    src = chain.add("image.load_folder", folder="photos/", pattern="*.jpg", recursive=True)
    small = chain.add("image.resize", image=src["image"], width=256, height=256, mode="fill")
    blurred = chain.add("image.gaussian_blur", image=small, radius=1.5)
    chain.add("image.save", image=blurred, folder="out/", name=src["name"],
              subfolder=src["subfolder"], format="jpeg", quality=85, template="{name}_{index:04d}")
    sheet = chain.add("image.contact_sheet", images=small, columns=3, background="#102030")
    chain.add("image.save", id="sheet_out", image=sheet, folder="out/", name="sheet")
    chain.add("core.constant", id="misc", value={"a": [1, 2.5, None, True, "x"], "b": {}})
    return chain


def write(tmp_path: Path, data: Any, name: str = "chain.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def good_dict() -> dict[str, Any]:
    return sample_chain().to_dict()


# -- round trips -------------------------------------------------------------------------------


def test_save_load_save_is_byte_identical(tmp_path: Path) -> None:
    chain = sample_chain()
    chain.validate()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    chain.save(a)
    loaded = cl.Chain.load(a)
    loaded.save(b)
    assert a.read_bytes() == b.read_bytes()
    assert loaded.to_dict() == chain.to_dict()
    assert loaded.name == "round trip"
    assert loaded.fingerprint() == chain.fingerprint()
    loaded.validate()


def test_file_layout_is_versioned_and_explicit(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    sample_chain().save(path)
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT == "chainlib.chain"
    assert data["version"] == VERSION == 1
    nodes = {n["id"]: n for n in data["nodes"]}
    assert nodes["resize"]["type"] == "image.resize"
    assert nodes["resize"]["inputs"]["width"] == {"value": 256}
    assert nodes["resize"]["inputs"]["image"] == {
        "link": {"node": "load_folder", "output": "image"}}
    # a bare handle (single output) is stored without an output name, and loads back the same
    assert nodes["gaussian_blur"]["inputs"]["image"] == {"link": {"node": "resize"}}
    assert [n["id"] for n in data["nodes"]] == list(sample_chain().nodes)


def test_loaded_links_and_constants_are_equal(tmp_path: Path) -> None:
    chain = sample_chain()
    chain.save(tmp_path / "c.json")
    loaded = cl.Chain.load(tmp_path / "c.json")
    for nid, inst in chain.nodes.items():
        assert loaded.nodes[nid].type == inst.type
        assert loaded.nodes[nid].inputs == inst.inputs


def test_from_dict_round_trip_and_fingerprint_ignores_name() -> None:
    d = good_dict()
    again = cl.Chain.from_dict(d)
    assert again.to_dict() == d
    renamed = cl.Chain.from_dict({**d, "name": "other"})
    assert renamed.fingerprint() == again.fingerprint()
    changed = cl.Chain.from_dict(d)
    changed.set("resize", "width", 128)
    assert changed.fingerprint() != again.fingerprint()


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("old")
    sample_chain().save(path)
    assert json.loads(path.read_text())["format"] == FORMAT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_examples_load_validate_and_round_trip(example: Path, tmp_path: Path) -> None:
    chain = cl.Chain.load(example)
    chain.validate()
    chain.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == example.read_bytes()


def test_resize_folder_example_is_meant_for_overrides() -> None:
    chain = cl.Chain.load(EXAMPLES / "resize_folder.json")
    apply_overrides(chain, ["load_folder.folder=/data/in", "save.folder=/data/out"])
    chain.validate()
    assert chain.nodes["load_folder"].inputs["folder"] == "/data/in"
    assert chain.nodes["save"].inputs["folder"] == "/data/out"


# -- malformed files: a ChainError that says what and where -------------------------------------


def expect_error(tmp_path: Path, data: Any, *fragments: str) -> cl.ChainError:
    path = write(tmp_path, data)
    with pytest.raises(cl.ChainError) as info:
        cl.Chain.load(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert str(path) in message
    return info.value


def test_not_json(tmp_path: Path) -> None:
    err = expect_error(tmp_path, "this is not json", "invalid JSON", "line 1")
    assert err.where == str(tmp_path / "chain.json")


def test_truncated_json(tmp_path: Path) -> None:
    text = json.dumps(good_dict(), indent=2)
    expect_error(tmp_path, text[: len(text) // 2], "invalid JSON", "line ")


def test_empty_file(tmp_path: Path) -> None:
    expect_error(tmp_path, "", "invalid JSON")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "chain.json"
    path.write_bytes(b'{"format": "\xff\xfe"}')
    with pytest.raises(cl.ChainError, match="UTF-8"):
        cl.Chain.load(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(cl.ChainError, match="cannot read chain file") as info:
        cl.Chain.load(tmp_path / "nope.json")
    assert "nope.json" in str(info.value)
    with pytest.raises(cl.ChainError, match="cannot read chain file"):
        cl.Chain.load(tmp_path)


def test_top_level_not_an_object(tmp_path: Path) -> None:
    expect_error(tmp_path, [1, 2], "$", "expected a JSON object", "list")


@pytest.mark.parametrize("fmt", [None, "chainner", 1])
def test_wrong_format_marker(tmp_path: Path, fmt: Any) -> None:
    d = good_dict()
    if fmt is None:
        del d["format"]
    else:
        d["format"] = fmt
    err = expect_error(tmp_path, d, "$.format", "not a chainlib chain file")
    assert err.where is not None and err.where.endswith("$.format")


@pytest.mark.parametrize("version", [2, 0, "1", None, 1.5, True])
def test_wrong_version(tmp_path: Path, version: Any) -> None:
    d = good_dict()
    d["version"] = version
    expect_error(tmp_path, d, "$.version", "unsupported chain file version")


def test_missing_version(tmp_path: Path) -> None:
    d = good_dict()
    del d["version"]
    expect_error(tmp_path, d, "$.version")


def test_name_not_a_string(tmp_path: Path) -> None:
    expect_error(tmp_path, {**good_dict(), "name": 5}, "$.name", "expected a string")


@pytest.mark.parametrize("nodes", [None, {"a": 1}, "nodes", 3])
def test_nodes_not_a_list(tmp_path: Path, nodes: Any) -> None:
    d = good_dict()
    d["nodes"] = nodes
    expect_error(tmp_path, d, "$.nodes", "expected a list of nodes")


@pytest.mark.parametrize("node", [1, "resize", None, ["id", "type"]])
def test_node_not_an_object(tmp_path: Path, node: Any) -> None:
    d = good_dict()
    d["nodes"][2] = node
    expect_error(tmp_path, d, "$.nodes[2]", "expected a node object")


@pytest.mark.parametrize("nid", [None, "", 7])
def test_missing_or_bad_id(tmp_path: Path, nid: Any) -> None:
    d = good_dict()
    if nid is None:
        del d["nodes"][1]["id"]
    else:
        d["nodes"][1]["id"] = nid
    expect_error(tmp_path, d, "$.nodes[1].id", "node id")


def test_invalid_id_characters(tmp_path: Path) -> None:
    d = good_dict()
    d["nodes"][1]["id"] = "re size"
    expect_error(tmp_path, d, "$.nodes[1].id", "'re size'", "invalid node id")


def test_duplicate_id(tmp_path: Path) -> None:
    d = good_dict()
    d["nodes"][1]["id"] = d["nodes"][0]["id"]
    expect_error(tmp_path, d, "$.nodes[1].id", "duplicate node id", "'load_folder'")


@pytest.mark.parametrize("ntype", [None, "", ["image.resize"]])
def test_missing_or_bad_type(tmp_path: Path, ntype: Any) -> None:
    d = good_dict()
    if ntype is None:
        del d["nodes"][1]["type"]
    else:
        d["nodes"][1]["type"] = ntype
    expect_error(tmp_path, d, "$.nodes[1].type", "node 'resize'", "node type id")


def test_inputs_not_an_object(tmp_path: Path) -> None:
    d = good_dict()
    d["nodes"][1]["inputs"] = [["width", 3]]
    expect_error(tmp_path, d, "$.nodes[1].inputs", "node 'resize'", "expected an object")


@pytest.mark.parametrize("spec", [
    256,                                   # a bare constant
    None,
    [256],
    {},                                    # neither value nor link
    {"val": 256},                          # a typo
    {"value": 256, "link": {"node": "load_folder"}},  # both
    {"value": 256, "extra": 1},
])
def test_bad_input_shape(tmp_path: Path, spec: Any) -> None:
    d = good_dict()
    d["nodes"][1]["inputs"]["width"] = spec
    err = expect_error(tmp_path, d, "$.nodes[1].inputs.width", "node 'resize'", "input 'width'",
                       '{"value": ...}')
    assert (err.node, err.input) == ("resize", "width")


@pytest.mark.parametrize("link", [
    "load_folder",                          # link to a non-dict
    ["load_folder", "image"],
    None,
    {"output": "image"},                    # no node
    {"node": 3, "output": "image"},
    {"node": "load_folder", "output": 3},
    {"node": "load_folder", "output": None},
])
def test_bad_link(tmp_path: Path, link: Any) -> None:
    d = good_dict()
    d["nodes"][1]["inputs"]["image"] = {"link": link}
    err = expect_error(tmp_path, d, "$.nodes[1].inputs.image.link", "node 'resize'",
                       "input 'image'")
    assert (err.node, err.input) == ("resize", "image")


def test_errors_are_chain_errors_never_key_errors(tmp_path: Path) -> None:
    """Every structural mutation of a good file raises ChainError (or loads), nothing else."""
    base = good_dict()
    variants: list[Any] = []
    for key in list(base):
        variants.append({k: v for k, v in base.items() if k != key})
    for i, node in enumerate(base["nodes"]):
        for key in list(node):
            d = json.loads(json.dumps(base))
            del d["nodes"][i][key]
            variants.append(d)
        for name in node["inputs"]:
            bads: list[dict[str, Any]] = [
                {"link": {}}, {"value": {"link": 1}}, {"link": {"node": "nope"}}]
            for bad in bads:
                d = json.loads(json.dumps(base))
                d["nodes"][i]["inputs"][name] = bad
                variants.append(d)
    for n, data in enumerate(variants):
        path = write(tmp_path, data, f"v{n}.json")
        try:
            chain = cl.Chain.load(path)
            chain.validate()
        except cl.ChainError as exc:
            assert str(exc)
            assert exc.where is not None or exc.node is not None, str(exc)


# -- validation names the node (and input) -----------------------------------------------------


def test_unknown_node_type_caught_by_validate_with_node_id(tmp_path: Path) -> None:
    d = good_dict()
    d["nodes"][2]["type"] = "image.no_such_node"
    chain = cl.Chain.load(write(tmp_path, d))  # loading is structural; validate knows the types
    with pytest.raises(cl.ChainError, match=r"unknown node type 'image\.no_such_node'") as info:
        chain.validate()
    assert info.value.node == "gaussian_blur"
    assert "gaussian_blur" in str(info.value)


def test_link_to_unknown_node_named_by_validate(tmp_path: Path) -> None:
    d = good_dict()
    d["nodes"][1]["inputs"]["image"] = {"link": {"node": "ghost", "output": "image"}}
    chain = cl.Chain.load(write(tmp_path, d))
    with pytest.raises(cl.ChainError, match="ghost") as info:
        chain.validate()
    assert (info.value.node, info.value.input) == ("resize", "image")


def test_wrong_constant_type_named_by_validate(tmp_path: Path) -> None:
    d = good_dict()
    d["nodes"][1]["inputs"]["width"] = {"value": "wide"}
    chain = cl.Chain.load(write(tmp_path, d))
    with pytest.raises(cl.ChainError, match="expected int") as info:
        chain.validate()
    assert (info.value.node, info.value.input) == ("resize", "width")


def test_unknown_input_named_by_validate(tmp_path: Path) -> None:
    d = good_dict()
    d["nodes"][1]["inputs"]["widht"] = {"value": 3}
    chain = cl.Chain.load(write(tmp_path, d))
    with pytest.raises(cl.ChainError, match="unknown input") as info:
        chain.validate()
    assert (info.value.node, info.value.input) == ("resize", "widht")


# -- saving what JSON cannot hold --------------------------------------------------------------


@pytest.mark.parametrize("value", [
    float("nan"), float("inf"), b"bytes", (1, 2), {1: "a"}, {3.5}, object(), [1, float("nan")],
    {"a": {"b": object()}},
])
def test_non_json_constant_on_save(tmp_path: Path, value: Any) -> None:
    chain = cl.Chain()
    chain.add("core.constant", id="const", value=value)
    target = tmp_path / "c.json"
    with pytest.raises(cl.ChainError, match="cannot be stored in a chain file") as info:
        chain.save(target)
    assert (info.value.node, info.value.input) == ("const", "value")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


# -- --set overrides ---------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "value"), [
    ("256", 256),
    ("-1.5", -1.5),
    ("true", True),
    ("false", False),
    ("null", None),
    ("[1, 2]", [1, 2]),
    ('{"a": 1}', {"a": 1}),
    ('"256"', "256"),
    ('"true"', "true"),
    ("photos/in", "photos/in"),
    ("hello world", "hello world"),
    ("", ""),
    ("True", "True"),
    ("NaN", "NaN"),
    ("Infinity", "Infinity"),
    ("[1, 2", "[1, 2"),
    ("C:\\photos", "C:\\photos"),
])
def test_parse_value(raw: str, value: Any) -> None:
    got = parse_value(raw)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("text", "expected"), [
    ("resize.width=256", ("resize", "width", 256)),
    ("save.folder=out/x=y", ("save", "folder", "out/x=y")),
    ("save.name=a.b", ("save", "name", "a.b")),
    ("save.folder=", ("save", "folder", "")),
])
def test_parse_override(text: str, expected: tuple[str, str, Any]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["resize", "resize.width", "resize=3", ".width=3", "resize.=3",
                                  "=3", ""])
def test_parse_override_rejects_malformed(text: str) -> None:
    with pytest.raises(cl.ChainError, match=r"NODE\.INPUT=VALUE"):
        parse_override(text)


def test_apply_overrides() -> None:
    chain = sample_chain()
    apply_overrides(chain, ["resize.width=100", "resize.mode=fit", 'save.name="n"',
                            "load_folder.recursive=false"])
    assert chain.nodes["resize"].inputs["width"] == 100
    assert chain.nodes["resize"].inputs["mode"] == "fit"
    assert chain.nodes["save"].inputs["name"] == "n"  # a link replaced by a constant
    assert chain.nodes["load_folder"].inputs["recursive"] is False
    chain.validate()


def test_apply_overrides_unknown_node_or_input() -> None:
    chain = sample_chain()
    with pytest.raises(cl.ChainError, match="no node 'resise'") as info:
        apply_overrides(chain, ["resise.width=3"])
    assert info.value.node == "resise"
    assert "resize" in str(info.value)  # lists the nodes there are
    with pytest.raises(cl.ChainError, match="has no input 'widht'") as info:
        apply_overrides(chain, ["resize.widht=3"])
    assert (info.value.node, info.value.input) == ("resize", "widht")
    assert "width" in str(info.value)


def test_override_with_wrong_type_is_caught_by_validate() -> None:
    chain = apply_overrides(sample_chain(), ["resize.width=wide"])
    with pytest.raises(cl.ChainError) as info:
        chain.validate()
    assert (info.value.node, info.value.input) == ("resize", "width")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_rejected_on_load(tmp_path: Path, constant: str) -> None:
    path = tmp_path / "nan.json"
    path.write_text('{"format": "chainlib.chain", "version": 1, "nodes": [{"id": "a", '
                    '"type": "core.constant", "inputs": {"value": {"value": ' + constant + '}}}]}')
    with pytest.raises(cl.ChainError, match=f"{constant.lstrip('-')} is not a JSON number"):
        cl.Chain.load(path)
