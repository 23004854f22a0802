"""The ../shared/data gate: a bare clone skips the real-data tests with a reason; CI's variable makes them fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, require: bool) -> subprocess.CompletedProcess[str]:
    project = tmp_path / "clone"  # no "shared" folder beside it
    (project / "tests").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "conftest.py", project / "tests" / "conftest.py")
    (project / "tests" / "test_real.py").write_text("def test_reads_real_data(shared_data):\n    assert False\n")
    env = {k: v for k, v in os.environ.items() if k != "BOTKIT_REQUIRE_SHARED_DATA"}
    if require:
        env["BOTKIT_REQUIRE_SHARED_DATA"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)


def test_missing_shared_data_skips_with_a_visible_reason(tmp_path: Path) -> None:
    r = _run(tmp_path, require=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 skipped" in r.stdout and "real recorded data not found" in r.stdout


def test_ci_variable_turns_missing_shared_data_into_a_failure(tmp_path: Path) -> None:
    r = _run(tmp_path, require=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 error" in r.stdout and "BOTKIT_REQUIRE_SHARED_DATA=1 makes it mandatory" in r.stdout


def test_ci_script_sets_the_variable_and_runs_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert "BOTKIT_REQUIRE_SHARED_DATA=1" in script and "python3 dev.py test" in script
    assert "python3 dev.py test" in (ROOT / "README.md").read_text()
