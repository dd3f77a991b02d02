"""factory_boy factories for the platform's data."""

import factory
from django.contrib.auth import get_user_model

from labeling.models import Galaxy, StandardGalaxy, Vote


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"volunteer{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")

    @factory.post_generation
    def password(user, create, extracted, **kwargs):
        user.set_password(extracted or "correct-horse-battery")
        if create:
            user.save(update_fields=["password"])


class GalaxyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Galaxy

    pgc = factory.Sequence(lambda n: 1_000_000 + n)
    name = factory.LazyAttribute(lambda g: f"PGC{g.pgc}")
    ra = factory.Sequence(lambda n: (n * 7.3) % 360)
    dec = factory.Sequence(lambda n: ((n * 3.1) % 120) - 60)
    d25_arcmin = 1.2
    position_angle = 30.0
    axial_ratio = 0.5
    state = Galaxy.State.READY


class StandardGalaxyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StandardGalaxy

    galaxy = factory.SubFactory(GalaxyFactory, source=Galaxy.Source.SYNTHETIC)
    inclination = 60.0
    inclination_source = "synthetic truth"


class VoteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Vote

    volunteer = factory.SubFactory(UserFactory)
    galaxy = factory.SubFactory(GalaxyFactory)
    inclination = 60.0
