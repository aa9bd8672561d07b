"""`make bench` (bench/run.py): every bench's figures end up in one table and in latest.json, a failing bench
is reported rather than dropped and fails the run, goals are checked, quick mode reaches the benches."""

from __future__ import annotations

import json
import textwrap

from bench import run


def _script(tmp_path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text("from bench.report import figure, quick\n" + textwrap.dedent(body))
    return str(path)


def test_figures_from_every_bench_land_in_one_table_and_latest_json(tmp_path, capsys):
    benches = [
        run.Bench("fast", _script(tmp_path, "fast", """
            figure("fast.rate_per_s", 12.5, "msg/s", ">= 10")
            figure("fast.ratio_vs_ceiling", 0.25, "ratio", ">= 0.5")
            figure("fast.note", 3, "things")
        """)),
        run.Bench("broken", _script(tmp_path, "broken", """
            figure("broken.before_failing", 1.0, "s", "<= 30 s")
            raise SystemExit(3)
        """)),
    ]
    out = tmp_path / "latest.json"

    code = run.main([], benches=benches, results=out, prepare=lambda: None)

    assert code == 1  # one bench failed: the run fails
    table = capsys.readouterr().out
    assert "broken" in table and "FAILED" in table and "exit 3" in table
    result = json.loads(out.read_text())
    assert result["mode"] == "full" and result["cores"] >= 1 and result["git_revision"]
    assert result["benches"]["broken"]["exit"] == 3 and result["benches"]["fast"]["exit"] == 0
    figures = result["figures"]
    assert set(figures) == {"fast.rate_per_s", "fast.ratio_vs_ceiling", "fast.note", "broken.before_failing"}
    assert figures["fast.rate_per_s"] == {"value": 12.5, "unit": "msg/s", "goal": ">= 10", "met": True,
                                          "bench": "fast"}
    assert figures["fast.ratio_vs_ceiling"]["met"] is False
    assert figures["fast.note"]["met"] is None  # no goal
    assert figures["broken.before_failing"]["met"] is True  # kept although its bench failed


def test_quick_mode_reaches_the_bench_and_picks_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_QUICK", "1")
    monkeypatch.delenv("BENCH_SIZE", raising=False)
    benches = [
        run.Bench("sized", _script(tmp_path, "sized", """
            import os
            figure("sized.quick", int(quick()), "bool")
            figure("sized.size", int(os.environ["BENCH_SIZE"]), "items")
        """), quick_env={"BENCH_SIZE": "7"}),
        run.Bench("other", _script(tmp_path, "other", "raise SystemExit(1)\n")),
    ]
    out = tmp_path / "latest.json"

    assert run.main(["sized"], benches=benches, results=out, prepare=lambda: None) == 0

    result = json.loads(out.read_text())
    assert result["mode"] == "quick" and list(result["benches"]) == ["sized"]
    assert result["figures"]["sized.quick"]["value"] == 1
    assert result["figures"]["sized.size"]["value"] == 7


def test_goals_are_read_from_their_leading_comparison():
    assert run.goal_met(20.0, "<= 20 ms") is True
    assert run.goal_met(20.1, "<= 20 ms") is False
    assert run.goal_met(0, "= 0") is True
    assert run.goal_met(1_500, ">= 1,000 sockets/s") is True
    assert run.goal_met(None, ">= 1") is None
    assert run.goal_met(5, "half the closed-loop max") is None


def test_a_bench_that_overruns_is_interrupted_so_it_can_clean_up(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "TIMEOUT_SECONDS", 2)
    benches = [run.Bench("slow", _script(tmp_path, "slow", """
        import time
        try:
            time.sleep(60)
        finally:  # where a bench stops its servers and drops its scratch database
            figure("slow.cleaned_up", 1, "bool")
    """))]
    out = tmp_path / "latest.json"

    assert run.main([], benches=benches, results=out, prepare=lambda: None) == 1

    result = json.loads(out.read_text())
    assert result["benches"]["slow"]["exit"] == "timeout after 2 s"
    assert result["figures"]["slow.cleaned_up"]["value"] == 1


def _turn_script(tmp_path, name: str, *, setup: str = "", measured: str = "", after: str = "") -> str:
    """A bench that logs (monotonic clock, bench, event) lines to events.log around bench.turns.measuring()."""
    log = tmp_path / "events.log"
    body = f"""
        import time
        from bench.turns import measuring

        def event(what):
            with open({str(log)!r}, "a") as out:
                out.write(f"{{time.monotonic()}} {name} {{what}}\\n")

        event("setup-start")
{textwrap.indent(textwrap.dedent(setup), " " * 8)}
        event("ready")
        with measuring():
            event("measure-start")
{textwrap.indent(textwrap.dedent(measured), " " * 12)}
            figure("{name}.measured", 1, "bool")
            event("measure-end")
        event("clean-up")
{textwrap.indent(textwrap.dedent(after), " " * 8)}
    """
    return _script(tmp_path, name, body)


def _events(tmp_path) -> list[tuple[float, str, str]]:
    rows = [line.split() for line in (tmp_path / "events.log").read_text().splitlines()]
    return sorted((float(t), bench, what) for t, bench, what in rows)


def test_quick_mode_sets_up_side_by_side_and_measures_one_bench_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_QUICK", "1")
    benches = [
        run.Bench("slowsetup", _turn_script(tmp_path, "slowsetup", setup="time.sleep(1.0)", measured="time.sleep(0.3)",
                                            after='figure("slowsetup.cleaned_up", 1, "bool")')),
        run.Bench("fastsetup", _turn_script(tmp_path, "fastsetup", measured="time.sleep(0.3)")),
        run.Bench("third", _turn_script(tmp_path, "third", setup="time.sleep(0.2)", measured="time.sleep(0.3)")),
    ]
    out = tmp_path / "latest.json"

    assert run.main([], benches=benches, results=out, prepare=lambda: None) == 0

    events = _events(tmp_path)
    order = [(bench, what) for _, bench, what in events]
    # the set-ups ran side by side: the first bench's long set-up did not hold up the others' ...
    assert order.index(("fastsetup", "ready")) < order.index(("slowsetup", "ready"))
    # ... nobody measured before everyone was ready, the measured phases never overlapped, in the list's order ...
    last_ready = max(i for i, e in enumerate(order) if e[1] == "ready")
    measured = [e for e in order if e[1].startswith("measure")]
    assert order.index(measured[0]) > last_ready
    assert measured == [(b, w) for b in ("slowsetup", "fastsetup", "third") for w in ("measure-start", "measure-end")]
    # ... and nobody cleaned up before the last bench had measured.
    assert min(i for i, e in enumerate(order) if e[1] == "clean-up") > order.index(("third", "measure-end"))
    result = json.loads(out.read_text())
    assert result["mode"] == "quick"
    assert set(result["figures"]) == {"slowsetup.measured", "slowsetup.cleaned_up", "fastsetup.measured",
                                      "third.measured"}
    assert all(b["exit"] == 0 and b["setup_seconds"] is not None for b in result["benches"].values())


def test_quick_mode_a_bench_failing_in_set_up_does_not_hold_up_the_others(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_QUICK", "1")
    benches = [
        run.Bench("broken", _turn_script(tmp_path, "broken", setup="raise SystemExit(4)")),
        run.Bench("fine", _turn_script(tmp_path, "fine")),
        run.Bench("plain", _script(tmp_path, "plain", 'figure("plain.value", 2, "things")\n')),  # no turn at all
    ]
    out = tmp_path / "latest.json"

    assert run.main([], benches=benches, results=out, prepare=lambda: None) == 1

    result = json.loads(out.read_text())
    assert result["benches"]["broken"]["exit"] == 4 and result["benches"]["broken"]["measured_seconds"] is None
    assert result["benches"]["fine"]["exit"] == 0 and result["benches"]["plain"]["exit"] == 0
    assert set(result["figures"]) == {"fine.measured", "plain.value"}


def test_quick_mode_a_bench_that_overruns_its_turn_is_interrupted_and_the_next_one_still_measures(
        tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_QUICK", "1")
    monkeypatch.setattr(run, "TIMEOUT_SECONDS", 2)
    benches = [
        run.Bench("stuck", _turn_script(tmp_path, "stuck", measured="time.sleep(60)")),
        run.Bench("next", _turn_script(tmp_path, "next")),
    ]
    out = tmp_path / "latest.json"

    assert run.main([], benches=benches, results=out, prepare=lambda: None) == 1

    result = json.loads(out.read_text())
    assert str(result["benches"]["stuck"]["exit"]).startswith("timeout after 2 s")
    assert result["benches"]["next"]["exit"] == 0 and "next.measured" in result["figures"]
