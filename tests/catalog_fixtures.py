"""A small published catalogue: galaxies with every kind of consensus, an ensemble prediction, and none at all."""

import datetime as dt

import pytest
from django.utils import timezone

from inference.models import EnsemblePrediction, ModelVersion
from labeling.models import ConsensusLabel, Galaxy, Vote
from tests.factories import GalaxyFactory, VoteFactory


def _consensus(galaxy, status, inclination=None, uncertainty=None, n_votes=3):
    return ConsensusLabel.objects.create(
        galaxy=galaxy, status=status, inclination=inclination, uncertainty=uncertainty, n_votes=n_votes
    )


@pytest.fixture
def catalogue(db):
    """pgc 10: accepted 62.5 +- 2.5 from 5 votes, ensemble 61 +- 1.5 from models m1+m2 (SDSS, b/a 0.5);
    pgc 11: face-on; pgc 12: rejected, mostly "not_spiral"; pgc 13: nothing yet (synthetic, no b/a).
    All near RA 150, Dec 2, within 0.3 deg of each other; pgc 14 is far away (RA 10, Dec -40)."""
    m1 = ModelVersion.objects.create(name="m1", architecture="vgg_a", file="models/m1.keras")
    m2 = ModelVersion.objects.create(name="m2", architecture="vgg_b", file="models/m2.keras")
    g10 = GalaxyFactory(pgc=10, name="NGC 3000", ra=150.0, dec=2.0, axial_ratio=0.5)
    g11 = GalaxyFactory(pgc=11, name="UGC 5", ra=150.1, dec=2.1)
    g12 = GalaxyFactory(pgc=12, name="", ra=150.2, dec=1.9)
    g13 = GalaxyFactory(pgc=13, name="Synth 13", ra=150.0, dec=2.2, axial_ratio=None, source=Galaxy.Source.SYNTHETIC)
    GalaxyFactory(pgc=14, name="Far away", ra=10.0, dec=-40.0)
    _consensus(g10, ConsensusLabel.Status.ACCEPTED, 62.5, 2.5, n_votes=5)
    _consensus(g11, ConsensusLabel.Status.FACE_ON)
    _consensus(g12, ConsensusLabel.Status.REJECTED)
    for flag in ["not_spiral", "not_spiral", "bad_image"]:
        VoteFactory(galaxy=g12, inclination=None, flag=flag)
    members = {m1.name: 60.0, m2.name: 62.0}
    old = EnsemblePrediction.objects.create(galaxy=g10, median=50, mean=50, spread=9, n_models=2, members=members)
    EnsemblePrediction.objects.filter(id=old.id).update(created_at=timezone.now() - dt.timedelta(days=3))
    EnsemblePrediction.objects.create(
        galaxy=g10, median=61.0, mean=61.0, spread=1.5, rejection_likelihood=0.1, n_models=2, members=members
    )
    assert Vote.objects.filter(galaxy=g12).count() == 3
    return {"models": (m1, m2), "galaxies": (g10, g11, g12, g13)}
