"""Every background run shares one model (giz_site.models.BackgroundRun): one status vocabulary, migrated."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [
    ("labeling", "0006_catalogue"),
    ("acquisition", "0003_galaxy_color_image"),
    ("inference", "0005_galaxy_prediction_figures"),
]
AFTER = [
    ("labeling", "0007_background_run"),
    ("acquisition", "0004_background_run"),
    ("inference", "0006_background_run"),
]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def latest_schema_after():
    """Leave the database at the newest migrations, whatever happens: later tests need every column."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("latest_schema_after")
def test_stored_runs_move_from_done_to_succeeded_and_finished_ones_stop_being_live():
    old = migrate(BEFORE)
    old.get_model("labeling", "ConsensusRun").objects.create(status="done", live=None, total=2, done=2)
    old.get_model("labeling", "CatalogExport").objects.create(format="csv", status="done")
    old.get_model("labeling", "CatalogExport").objects.create(format="csv", status="running")
    old.get_model("acquisition", "AcquisitionJob").objects.create(status="done", total=3, succeeded=2, failed=1)
    old.get_model("inference", "InferenceJob").objects.create(kind="catalog", status="failed", error="x")

    new = migrate(AFTER)
    run = new.get_model("labeling", "ConsensusRun").objects.get()
    assert (run.status, run.created_at) == ("succeeded", run.started_at)
    exports = new.get_model("labeling", "CatalogExport").objects.order_by("pk")
    assert [(e.status, e.live) for e in exports] == [("succeeded", None), ("running", True)]
    job = new.get_model("acquisition", "AcquisitionJob").objects.get()
    assert (job.status, job.live, job.done, job.failed) == ("succeeded", None, 2, 1)
    assert new.get_model("inference", "InferenceJob").objects.get().live is None

    # And back: the old vocabulary returns.
    old = migrate(BEFORE)
    assert old.get_model("acquisition", "AcquisitionJob").objects.get().status == "done"
    migrate(AFTER)
