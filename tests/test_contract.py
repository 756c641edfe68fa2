"""The lab contract (expected.json) is typed and versioned: round trips, strict reads, clear errors."""

from __future__ import annotations

import dataclasses
import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from clabgen import codec
from clabgen.contract import SCHEMA, LabContract, RouteSpec
from clabgen.errors import ClabgenError
from clabgen.planned import Route, StaticRoute

from .conftest import LABS, lab_dirs, run_clabgen


@pytest.mark.parametrize("lab", lab_dirs(), ids=lambda p: p.name)
def test_every_checked_in_contract_round_trips(lab: Path) -> None:
    text = (lab / "expected.json").read_text()
    contract = LabContract.from_json(text)
    assert contract.to_json() == text
    assert all(n.config is None or (lab / n.config).is_file() for n in contract.nodes)


def _edited(tmp_path: Path, change: dict[str, object]) -> Path:
    lab = tmp_path / "lab"
    lab.mkdir()
    for f in (LABS / "ipip").iterdir():
        if f.is_file():
            (lab / f.name).write_bytes(f.read_bytes())
    (lab / "startup-conf").mkdir()
    data = json.loads((lab / "expected.json").read_text())
    data.update(change)
    (lab / "expected.json").write_text(json.dumps(data))
    return lab


def test_a_lab_rendered_by_another_version_is_refused_with_the_fix(tmp_path: Path) -> None:
    lab = _edited(tmp_path, {"schema": 1, "generator": "clabgen 0.1.0"})
    result = run_clabgen("verify", str(lab))
    assert result.returncode == 2
    assert f"{lab}/expected.json: schema: rendered by clabgen 0.1.0 (lab contract schema 1)" in result.stderr
    assert f"reads schema {SCHEMA}" in result.stderr and "render the lab again: clabgen render intent.yml" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_hand_edited_contract_names_the_field(tmp_path: Path) -> None:
    data = json.loads((LABS / "ipip" / "expected.json").read_text())
    data["nodes"][0]["routes"][0]["metric"] = "20"
    with pytest.raises(ClabgenError, match=r"x.json: nodes\[0\]\.routes\[0\]\.metric: expected an integer, got a string"):
        LabContract.from_json(json.dumps(data), "x.json")
    data = json.loads((LABS / "ipip" / "expected.json").read_text())
    data["tunnels"][0]["colour"] = "red"
    with pytest.raises(ClabgenError, match=r"tunnels\[0\]\.colour: unknown field"):
        LabContract.from_json(json.dumps(data), "x.json")
    with pytest.raises(ClabgenError, match="not valid JSON"):
        LabContract.from_json("{", "x.json")


def test_codec_checks_shapes() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Pair:
        a: tuple[int, int]
        b: dict[str, str | None]

    assert codec.from_data(Pair, {"a": [1, 2], "b": {"x": None}}) == Pair((1, 2), {"x": None})
    with pytest.raises(codec.CodecError, match=r"^a: expected 2 items, got 3"):
        codec.from_data(Pair, {"a": [1, 2, 3], "b": {}})
    with pytest.raises(codec.CodecError, match=r"^b\.x: expected a string, got an integer"):
        codec.from_data(Pair, {"a": [1, 2], "b": {"x": 3}})
    with pytest.raises(codec.CodecError, match=r"^b: missing"):
        codec.from_data(Pair, {"a": [1, 2]})
    with pytest.raises(codec.CodecError, match=r"^a\[0\]: expected an integer, got a boolean"):
        codec.from_data(Pair, {"a": [True, 2], "b": {}})


def test_to_json_is_json_dumps_of_the_data() -> None:
    """The one-pass emitter writes json.dumps(indent=2)'s text for every kind of field: leaf-only
    records (one format each), records holding lists or records, mixed lists, odd names."""
    from dataclasses import dataclass, field

    class Name(str):
        pass

    @dataclass(frozen=True)
    class Leaf:
        s: str | None
        n: int | None
        b: bool = True
        f: float = 1.5
        pct: str = field(default="%s", metadata={"json": "100%"})
        empty: tuple[int, ...] = ()

    @dataclass(frozen=True)
    class Tree:
        leaves: tuple[Leaf, ...]
        mixed: tuple[object, ...]
        named: Name
        nested: Leaf | None = None

    tree = Tree((Leaf("a\"é", None), Leaf(None, 3, False, 2.0, "x"), Leaf(Name("sub"), 0, empty=(1, 2))),
                (Leaf("x", 1), 7, "s", [], {"k": Leaf("y", 2)}), Name("n"), Leaf("z", -1))
    assert codec.to_json(tree) == json.dumps(codec.to_data(tree), indent=2)


ROUTE = {"dst": "10.1.2.0/24", "dev": "tun0", "via": "172.16.0.2", "proto": "static", "scope": "universe",
         "src": None, "metric": 20, "nexthops": (), "cost": None, "as_path": None}


@pytest.mark.parametrize(("cls", "values"), [
    (Route, ROUTE), (RouteSpec, ROUTE),
    (StaticRoute, {"prefix": IPv4Network("10.1.2.0/24"), "next_hop": IPv4Address("172.16.0.2"), "dev": "tun0"})])
def test_made_is_the_dataclass_built_by_its_init(cls: type, values: dict[str, object]) -> None:
    """codec.made builds routes without the frozen __init__; it must give the same object: the
    routes' fields as they are today (a field added to Route must be added where routes are made)."""
    assert set(values) == {f.name for f in dataclasses.fields(cls)}
    fast = codec.made(cls, values)
    assert fast == cls(**values) and hash(fast) == hash(cls(**values)) and type(fast) is cls
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.dev = "x"


@pytest.mark.parametrize("lab", lab_dirs(), ids=lambda p: p.name)
def test_planned_routes_are_written_as_the_contracts_routes(lab: Path) -> None:
    """expected.json writes the plan's routes as they are (codec.write_as): the same text as the
    contract of RouteSpecs, with equal-cost next hops, OSPF costs and BGP AS paths (labs with each
    are among the checked-in ones)."""
    from clabgen import expected, intent, plan
    p = plan.build(intent.read_lab(lab / "intent.yml"))
    slow = expected.contract(p, "intent.yml")
    assert all(type(r) is RouteSpec for n in slow.nodes for r in n.routes)
    assert expected.expected_json(p, "intent.yml") == slow.to_json() == json.dumps(codec.to_data(slow), indent=2) + "\n"


def test_write_as_needs_every_field_of_the_record_written() -> None:
    from clabgen.contract import NextHopSpec
    from clabgen.planned import NextHop
    with pytest.raises(TypeError, match="NextHop cannot be written as RouteSpec: no field dst, proto"):
        codec.write_as(NextHop, RouteSpec)
    assert codec.to_json(NextHop("10.0.0.1", "eth1")) == codec.to_json(NextHopSpec("10.0.0.1", "eth1"))
