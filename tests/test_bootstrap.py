"""tools/bootstrap.sh's stamp: an environment shared through IREC_VENV follows the checkout that uses it.

Building an environment takes minutes, so these tests only ask the script what it would do (``--stamp``,
``--plan``) for two throw-away checkouts (the script and pyproject.toml copied) and a fake environment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from irec.paths import REPO

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("sha256sum") is None,
                                reason="needs bash and sha256sum")


def _checkout(folder):
    (folder / "tools").mkdir(parents=True)
    shutil.copy2(REPO / "tools" / "bootstrap.sh", folder / "tools" / "bootstrap.sh")
    shutil.copy2(REPO / "pyproject.toml", folder / "pyproject.toml")
    return folder


def _ask(checkout, venv, flag):
    env = {**os.environ, "IREC_VENV": str(venv)}
    done = subprocess.run(["bash", str(checkout / "tools" / "bootstrap.sh"), flag], env=env, capture_output=True,
                          text=True, timeout=30, check=True)
    return done.stdout.strip()


@pytest.fixture
def shared(tmp_path):
    """Two checkouts and a (fake) environment both use."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text("#!/bin/sh\nexit 0\n")
    python.chmod(0o755)
    return _checkout(tmp_path / "first"), _checkout(tmp_path / "second"), venv


def test_the_stamp_is_the_pyproject_hash_and_the_checkout(shared):
    first, second, venv = shared
    digest = hashlib.sha256((first / "pyproject.toml").read_bytes()).hexdigest()[:16]
    assert _ask(first, venv, "--stamp") == f"{digest} {first.resolve()}"
    assert _ask(second, venv, "--stamp") == f"{digest} {second.resolve()}"


def test_a_shared_environment_is_repointed_at_the_checkout_that_uses_it_and_rebuilt_when_the_pins_change(shared):
    first, second, venv = shared
    stamp = venv / ".irec-stamp"
    assert _ask(first, venv, "--plan") == "build"  # no stamp yet
    stamp.write_text(_ask(first, venv, "--stamp") + "\n")  # as a build from the first checkout leaves it
    assert _ask(first, venv, "--plan") == "ok"
    assert _ask(second, venv, "--plan") == "reinstall"  # the editable install points at the first checkout
    shutil.rmtree(first)  # ... even after it is gone
    assert _ask(second, venv, "--plan") == "reinstall"
    stamp.write_text(_ask(second, venv, "--stamp") + "\n")
    assert _ask(second, venv, "--plan") == "ok"
    with (second / "pyproject.toml").open("a") as f:
        f.write("\n# another pin\n")
    assert _ask(second, venv, "--plan") == "build"


def test_a_stamp_of_the_older_kind_the_hash_alone_reinstalls_this_checkout(shared):
    first, _, venv = shared
    (venv / ".irec-stamp").write_text(_ask(first, venv, "--stamp").split()[0] + "\n")
    assert _ask(first, venv, "--plan") == "reinstall"


def test_the_stamp_and_plan_flags_change_nothing(shared):
    first, _, venv = shared
    before = sorted(p.name for p in venv.rglob("*"))
    _ask(first, venv, "--stamp"), _ask(first, venv, "--plan")
    assert sorted(p.name for p in venv.rglob("*")) == before
