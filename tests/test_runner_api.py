"""The Python API tells a newcomer what went wrong and what to do: ``cluster=`` checked at
construction, ``result()`` on a failed run says why, hints match the command line's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import chainlib as cl
from tests.conftest import Gates, gated_chain, wait_until


def save_chain(inputs: Path, out: Path) -> tuple[cl.Chain, cl.NodeHandle]:
    chain = cl.Chain("thumbs")
    src = chain.add("image.load_folder", folder=inputs, recursive=True)
    small = chain.add("image.resize", image=src["image"], width=32, height=32)
    chain.add("image.save", image=small, folder=out, name=src["name"], subfolder=src["subfolder"])
    return chain, chain.add("image.contact_sheet", images=small)


@pytest.mark.parametrize("bad", [2, object(), ["tcp://x:1"], b"tcp://x:1"])
def test_cluster_of_a_wrong_type_is_a_type_error_at_construction(bad: object) -> None:
    with pytest.raises(TypeError, match=r"cluster must be a distributed\.Client, or an address"):
        cl.Runner(gated_chain(1), cluster=bad)


@pytest.mark.parametrize("bad", [1.5, "2", True, None])
def test_workers_of_a_wrong_type_is_a_type_error_at_construction(bad: object) -> None:
    # 1.5 used to start and fail the run with "'float' object cannot be interpreted as an
    # integer"; "2" raised a bare "'<' not supported"; True ran as one worker
    with pytest.raises(TypeError, match=r"workers must be a whole number \(int\), got "):
        cl.Runner(gated_chain(1), workers=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, 257, 10**6])
def test_workers_out_of_range_is_a_value_error(bad: int) -> None:
    # 10**6 started a million threads; the command line has always stopped at 256
    with pytest.raises(ValueError, match=r"workers must be from 1 to 256, got "):
        cl.Runner(gated_chain(1), workers=bad)


@pytest.mark.parametrize("bad", ["chain.json", None, {"nodes": []}])
def test_a_chain_that_is_not_a_chain_is_a_type_error(bad: object) -> None:
    # "chain.json" raised AttributeError: 'str' object has no attribute 'nodes'
    with pytest.raises(TypeError, match=r"chain must be a chainlib\.Chain .*got "):
        cl.Runner(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "scheduler:8786", "localhost"])
def test_cluster_string_that_is_no_address(bad: str) -> None:
    with pytest.raises(ValueError, match=r"'tcp://host:8786'.*'local:N'"):
        cl.Runner(gated_chain(1), cluster=bad)


def test_result_before_during_and_for_per_item_nodes(gates: Gates) -> None:
    chain = gated_chain(2)
    collect = chain.add("core.collect", values=cl.OutputRef("gated"))
    run = cl.Runner(chain)
    with pytest.raises(LookupError, match=r"nothing has run yet \(start\(\) the run"):
        run.result(collect)
    run.start()
    gates.wait_entered()
    with pytest.raises(LookupError, match=r"yet: the run is running \(wait\(\) for its end\)"):
        run.result(collect)
    with pytest.raises(LookupError, match="per-item nodes keep none"):
        run.result("gated")
    with pytest.raises(KeyError, match="no node 'nope'"):
        run.result("nope")
    gates.release.set()
    assert run.wait(10).state == "completed"
    assert run.result(collect) == [0, 1]


def run_to_end(chain: cl.Chain, **kwargs: object) -> cl.Runner:
    run = cl.Runner(chain, workers=2, on_error="skip", **kwargs)  # type: ignore[arg-type]
    run.start()
    run.wait(60)
    return run


def test_second_run_into_existing_outputs_says_why_and_what_to_do(
    inputs: Path, tmp_path: Path
) -> None:
    """The README tour without overwrite=True, run twice: the newcomer's first hour."""
    out = tmp_path / "out"
    chain, sheet = save_chain(inputs, out)
    first = run_to_end(chain)
    assert first.status().state == "completed" and first.hints() == []

    again = run_to_end(chain)
    st = again.status()
    assert st.failed == st.total and "already exists" in st.failures[0].message
    # with a collector, resuming would skip every item and leave the sheet empty: not suggested
    assert again.hints() == ["outputs exist from an earlier run: overwrite=True on node 'save' "
                             "replaces them"]
    with pytest.raises(LookupError) as info:
        again.result(sheet)
    message = str(info.value)
    assert message.startswith("no result for contact_sheet.image: the run failed (node ")
    assert f"hint: {again.hints()[0]}" in message
    assert "hint: outputs exist from an earlier run" in again._repr_html_()

    chain.set("save", "overwrite", True)  # what the hint says
    third = run_to_end(chain)
    assert third.status().state == "completed" and third.status().failed == 0
    assert third.result(sheet).ndim == 3


def test_without_collectors_the_hint_offers_resume_and_resume_works(
    inputs: Path, tmp_path: Path
) -> None:
    chain, _ = save_chain(inputs, tmp_path / "out")
    del chain.nodes["contact_sheet"]
    run_to_end(chain)
    (hint,) = run_to_end(chain).hints()
    assert hint == ("outputs exist from an earlier run: Runner(chain, resume=True) skips the "
                    "items already finished, or overwrite=True on node 'save' replaces them")
    resumed = run_to_end(chain, resume=True).status()
    assert (resumed.state, resumed.failed, resumed.skipped) == ("completed", 0, resumed.total)


def test_stopped_run_hints_resume_only_when_it_can(gates: Gates) -> None:
    no_files = cl.Runner(gated_chain(3))
    no_files.start()
    gates.wait_entered()
    no_files.stop()
    assert no_files.wait(10).state == "stopped"
    assert no_files.hints() == []  # nothing written, no manifest: resume would be refused
    with pytest.raises(ValueError, match="resume=True needs"):
        cl.Runner(gated_chain(3), resume=True)


def test_close_stops_a_run_and_is_idempotent(gates: Gates) -> None:
    run = cl.Runner(gated_chain(3))
    run.start()
    gates.wait_entered()
    run.close()
    assert run.status().state == "stopped" and run.status().reason == "runner closed"
    run.close()


def test_runner_card(gates: Gates) -> None:
    run = cl.Runner(gated_chain(2))
    assert 'data-state="idle"' in run._repr_html_()
    run.start()
    gates.wait_entered()
    wait_until(lambda: "working on: gated" in run._repr_html_(), 5, "the card shows the node")
    gates.release.set()
    run.wait(10)
    assert re.search(r"2 of 2 done", run._repr_html_())


@pytest.mark.dask
def test_cluster_address_local_n_connects_reports_the_dashboard_and_closes(
    inputs: Path, tmp_path: Path
) -> None:
    chain, _ = save_chain(inputs, tmp_path / "out")
    run = cl.Runner(chain, cluster="local:1")
    try:
        client = run.cluster
        assert client.status == "running"
        link = run.status().dashboard  # served with bokeh, which the dask extra brings
        assert link is not None and link.startswith("http://") and link == client.dashboard_link
        assert f'href="{link}"' in run._repr_html_()
        run.start()
        st = run.wait(120)
        assert st.state == "completed" and st.dashboard == link
        assert run.status().to_dict()["dashboard"] == link
    finally:
        run.close()
    assert client.status == "closed"
