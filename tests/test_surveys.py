"""Surveys as data: the SDSS reference survey every galaxy so far belongs to, other surveys beside it, and a
survey that needs adaptation sent to volunteers first."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import ProtectedError
from django.urls import reverse

from giz_site.exceptions import ApplicationError
from labeling import selectors, services
from labeling.models import ConsensusLabel, Galaxy, Survey
from tests.factories import GalaxyFactory, SurveyFactory
from tests.labeling_fixtures import make_galaxy, make_standards


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def latest_schema_after():
    """Leave the database at the newest migrations, whatever happens: later tests need every column."""
    yield
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("latest_schema_after")
def test_existing_galaxies_and_images_move_to_the_sdss_reference_survey():
    old = migrate([("labeling", "0008_volunteer_model"), ("acquisition", "0004_background_run")])
    galaxy = old.get_model("labeling", "Galaxy").objects.create(pgc=1, ra=10.0, dec=5.0)
    old.get_model("acquisition", "GalaxyImage").objects.create(
        galaxy=galaxy, band="color", format="jpeg", file="x.jpg", source="sdss", width=8, height=8, checksum="0"
    )

    new = migrate([("labeling", "0009_survey"), ("acquisition", "0005_galaxy_image_survey")])
    sdss = new.get_model("labeling", "Survey").objects.get()
    assert (sdss.slug, sdss.is_reference, sdss.source_kind, sdss.bands) == ("sdss", True, "sdss", "gri")
    assert new.get_model("labeling", "Galaxy").objects.get().survey_id == sdss.pk
    assert new.get_model("acquisition", "GalaxyImage").objects.get().survey_id == sdss.pk


@pytest.mark.django_db
class TestSurveys:
    def test_a_galaxy_made_without_a_survey_belongs_to_the_reference_one(self):
        galaxy = Galaxy.objects.create(pgc=77, ra=1.0, dec=2.0)
        assert galaxy.survey == services.reference_survey()
        assert galaxy.survey.slug == "sdss" and Survey.objects.filter(is_reference=True).count() == 1

    def test_the_database_keeps_one_reference_survey_and_surveys_with_galaxies(self):
        GalaxyFactory()
        with pytest.raises(IntegrityError), transaction.atomic():
            SurveyFactory(is_reference=True)
        with pytest.raises(ProtectedError):
            services.reference_survey().delete()

    def test_an_unknown_survey_is_an_error_naming_the_known_ones(self):
        services.reference_survey()  # a transactional test's flush earlier in the run removes the migrated SDSS row
        SurveyFactory(slug="legacy")
        with pytest.raises(ApplicationError) as err:
            services.get_survey("nope")
        assert "legacy" in str(err.value) and "sdss" in str(err.value)
        assert services.get_survey("legacy").slug == "legacy"

    def test_label_counts_per_survey(self):
        legacy = SurveyFactory(slug="legacy")
        for status, survey in [("accepted", legacy), ("accepted", legacy), ("rejected", legacy), ("accepted", None)]:
            galaxy = GalaxyFactory(**({"survey": survey} if survey else {}))
            ConsensusLabel.objects.create(
                galaxy=galaxy, status=status, inclination=60.0 if status == "accepted" else None, n_votes=3
            )
        GalaxyFactory(survey=legacy)
        assert selectors.survey_label_counts() == {"legacy": 2, "sdss": 1}
        assert selectors.survey_label_counts(accepted_only=False) == {"legacy": 3, "sdss": 1}
        rows = {s.slug: (s.galaxies_count, s.labels_count, s.accepted_labels_count) for s in selectors.surveys_list()}
        assert rows == {"sdss": (1, 1, 1), "legacy": (4, 3, 2)}
        assert [label.galaxy.survey_id for label in selectors.survey_labels(survey=legacy)] == [legacy.pk] * 2


@pytest.mark.django_db
class TestAdaptationFirst:
    @pytest.fixture(autouse=True)
    def scene(self, monkeypatch):
        monkeypatch.setattr(services.serving, "GOLD_RATES", ((float("inf"), 0.0),))
        self.standards = make_standards()
        self.legacy = SurveyFactory(slug="legacy")
        self.urgent_sdss = make_galaxy(label_priority=40.0)  # an open alarm and a wide posterior
        self.new_survey = make_galaxy(survey=self.legacy)

    def test_galaxies_of_a_survey_that_needs_adaptation_are_served_first_and_stay_first_after_a_vote(
        self, alice_client, alice, charlie
    ):
        assert services.assignment_next(volunteer=charlie).galaxy == self.urgent_sdss
        services.mark_needs_adaptation(self.legacy, True, "4.3 deg RMS against 3.1 on SDSS")
        self.legacy.refresh_from_db()
        assert self.legacy.needs_adaptation and self.legacy.adaptation_reason.startswith("4.3 deg")

        page = alice_client.get(reverse("label")).context["page_data"]
        assert page["galaxy"]["id"] == self.new_survey.pk
        # A vote recomputes the priority from the posterior: the survey's share stays in it.
        services.assignment_next(volunteer=charlie).delete()
        assignment = services.assignment_next(volunteer=charlie)
        assert assignment.galaxy == self.new_survey
        services.vote_submit(
            volunteer=charlie,
            token=assignment.token,
            inclination=70.5,
            flag="",
            not_sure=False,
            note="",
            left_standard_id=self.standards[70][0].pk,
            right_standard_id=self.standards[71][0].pk,
            seconds_taken=30.0,
        )
        self.new_survey.refresh_from_db()
        assert self.new_survey.label_priority > services.ADAPTATION_PRIORITY > self.urgent_sdss.label_priority

        services.mark_needs_adaptation(self.legacy, False, "adapted")
        self.new_survey.refresh_from_db()
        assert self.new_survey.label_priority < 40.0 and self.new_survey.survey_priority == 0.0

    def test_staff_mark_a_survey_in_the_admin(self, bob_client):
        response = bob_client.post(
            reverse("admin:labeling_survey_changelist"),
            {"action": "mark_needs_adaptation", "_selected_action": [self.legacy.pk]},
        )
        assert response.status_code == 302
        self.new_survey.refresh_from_db()
        assert self.new_survey.survey_priority == services.ADAPTATION_PRIORITY
        listing = bob_client.get(reverse("admin:labeling_survey_changelist"))
        assert b"legacy" in listing.content and listing.status_code == 200
