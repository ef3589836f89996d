"""labelloop bench-finish's steps at a small scale against a real Label Studio: the command run as a user runs it,
killed with SIGKILL in the middle of --apply, run again; the file and Label Studio agree after every step
(backend/bench/finish_scale.py; the 10,000-task figures are in docs/learning.md)."""

from __future__ import annotations

import pytest
from labelstudio import needs_ls

from backend.bench import finish_scale
from backend.cli import bench_finish


@needs_ls
@pytest.mark.e2e
def test_a_finish_killed_mid_apply_loses_nothing_and_agrees_with_its_file_when_run_again(label_studio):
    result = finish_scale.run(
        label_studio.url, label_studio.admin.token, tasks=300, labeled=100, target=0.3, kill_at=0.5, progress=False
    )
    steps = result["steps"]
    assert steps["apply_killed"]["killed"] and steps["apply_killed"]["exit"] != 0, steps["apply_killed"]
    for step in ("apply_again", "undo", "apply"):
        assert steps[step]["exit"] == 0 and steps[step]["check"]["ok"], (step, steps[step])
    # Where the kill lands (before, during or after Label Studio made the labels) depends on timing: whatever it left,
    # the run again agrees with its file, and no label set is left (the check).
    assert steps["apply_again"]["check"]["model_labels"] >= steps["apply_killed"]["model_labels_then"]
    assert steps["apply"]["check"]["model_labels"] == result["counts"]["model"] > 0
    assert steps["undo"]["check"]["model_labels"] == 0
    assert steps["apply"]["check"]["people"] == 100 + steps["audit"]["tasks"] + steps["audit_again"]["tasks"]
    assert result["ok"]
    assert "apply, uninterrupted" in finish_scale.report(result) and "agrees" in finish_scale.report(result)


def test_the_command_refuses_what_it_cannot_run(capsys):
    for argv, said in (
        (["--labeled", "500", "--tasks", "400"], "must be below --tasks"),
        (["--ls-url", "http://127.0.0.1:9"], "give both --ls-url and --api-key"),
        (["--target", "1.5"], "--target"),
    ):
        with pytest.raises(SystemExit) as exit:
            bench_finish.main(argv)
        assert exit.value.code == 2 and said in capsys.readouterr().err, argv
