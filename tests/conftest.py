"""Shared fixtures: the personas every test reuses.

alice is a volunteer, bob is staff, charlie is another volunteer (an outsider to alice's data).
"""

import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob", is_staff=True, is_superuser=True)


@pytest.fixture
def charlie(db):
    return UserFactory(username="charlie")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(client, bob):
    client.force_login(bob)
    return client


@pytest.fixture
def api_client():
    return APIClient()
