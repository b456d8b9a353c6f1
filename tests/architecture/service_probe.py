"""Run only by test_services_required.py, in a pytest subprocess: three ways a test skips."""

import pytest

from tests.conftest import require_service


def test_needs_a_service_that_is_not_there():
    require_service("127.0.0.1", 1, "a service on port 1")  # nothing listens on port 1


def test_skips_without_the_helper():
    pytest.skip("skipped by hand")


@pytest.mark.optional_extra
def test_needs_an_optional_extra():
    pytest.skip("the optional extra is not installed")
