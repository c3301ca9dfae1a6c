"""Optional-package skips say what is missing and turn into failures under strict mode."""

import pytest

from tests import optional

MISSING = "mask2former_test_no_such_package"


def test_ci_distributions_read_from_pyproject():
    names = optional.ci_distributions()
    # From the test extra and the hard dependencies; this project itself is not listed.
    assert {"transformers", "accelerate", "pytest", "torch"} <= names
    assert "mask2former" not in names


def test_missing_package_skips_with_its_name(monkeypatch):
    monkeypatch.delenv(optional.STRICT_VARIABLE, raising=False)
    with pytest.raises(pytest.skip.Exception, match=MISSING):
        optional.require_package(MISSING)


def test_strict_fails_only_for_what_ci_installs(monkeypatch):
    monkeypatch.setenv(optional.STRICT_VARIABLE, "1")
    # A package CI does not install keeps skipping.
    with pytest.raises(pytest.skip.Exception, match=MISSING):
        optional.require_package(MISSING)
    # One that CI installs fails, naming the package and the variable.
    with pytest.raises(pytest.fail.Exception, match=f"'transformers'.*{optional.STRICT_VARIABLE}"):
        optional.require_package(MISSING, distribution="transformers")


def test_present_package_is_returned():
    assert optional.require_package("json").__name__ == "json"
