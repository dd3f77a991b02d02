"""The apps import one way, labeling <- acquisition <- inference, and the trainer calls nothing back up (the
contracts are in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APPS = ("labeling", "acquisition", "inference", "giz_site")
# In a child process: import-linter's console output must not mix with pytest's captured streams.
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"


def test_the_apps_import_one_way():
    result = subprocess.run([sys.executable, "-c", LINT], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_task_is_named_and_time_limited():
    from giz_site.celery import app

    app.loader.import_default_modules()
    ours = {name: task for name, task in app.tasks.items() if name.split(".")[0] in APPS}
    assert {"labeling.tasks.recompute_consensus", "inference.tasks.predict_missing"} <= set(ours)
    for name, task in ours.items():
        assert name.startswith(f"{task.__module__}."), name  # named where it is defined
        assert task.soft_time_limit and task.time_limit and task.soft_time_limit < task.time_limit, name
