"""Set-up: the conda file pins what pyproject pins, and notebook 00's checks work."""

from __future__ import annotations

import re
import tomllib

import pytest

from irec import environment
from irec.data import DatasetMissingError
from irec.paths import REPO


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = re.fullmatch(r"\s*-?\s*\"?([A-Za-z0-9_.\-]+)==([^\"\s,]+)\"?,?\s*", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_environment_yml_pins_exactly_the_versions_of_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = _pins(project["dependencies"] + project["optional-dependencies"]["dev"])
    conda = _pins((REPO / "environment.yml").read_text().splitlines())
    assert wanted and conda == wanted


def test_every_dependency_is_pinned_to_one_version():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][^,;<>]*", requirement), requirement


def test_torch_is_pinned_to_the_local_cpu_wheel_version():
    assert '"torch==2.13.0"' in (REPO / "pyproject.toml").read_text()


def test_the_environment_report_names_device_commit_and_versions():
    report = environment.report()
    assert report["device"] and report["git_commit"]
    assert report["versions"]["torch"].startswith("2.13.0")
    assert report["versions"]["constriction"] == "0.5.0"


def test_the_smoke_profile_finds_its_datasets_in_the_shared_data(shared_data):
    assert environment.check_required(environment.required_datasets("smoke")) == ["kodak", "cifar10"]


def test_a_missing_required_dataset_names_the_folder_to_fill_and_the_url(shared_data, monkeypatch):
    monkeypatch.setenv("IREC_OFFLINE", "1")
    with pytest.raises(DatasetMissingError, match=r"imagenet32.*fill .*from http://image-net.org/small"):
        environment.check_required(("imagenet32",))


def test_an_unknown_profile_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        environment.required_datasets("fast")


def test_the_coder_round_trip_of_notebook_00_is_exact():
    result = environment.coder_roundtrip(seed=1)
    assert result["exact"] and result["file_bits"] > 0.9 * result["kl_bits (ideal)"]


def test_a_declared_commit_is_reported_as_declared_and_otherwise_gits_own(monkeypatch):
    from irec import provenance

    monkeypatch.delenv("IREC_GIT_COMMIT", raising=False)
    own = provenance.git_commit.__wrapped__()
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?|unknown", own)
    monkeypatch.setenv("IREC_GIT_COMMIT", "abc1234")
    assert provenance.git_commit.__wrapped__() == "abc1234 (declared)"


def test_the_package_metadata_uses_the_license_expression_setuptools_does_not_warn_about():
    # a TOML table (license = { text = "MIT" }) makes setuptools >= 77 warn "project.license as a TOML table is
    # deprecated" on every install; the SPDX string needs setuptools >= 77 to build
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "MIT"
    assert "setuptools>=77" in pyproject["build-system"]["requires"]
    assert not any(c.startswith("License ::") for c in pyproject["project"].get("classifiers", []))
