"""The harness installed as a stranger installs it: a non-editable ``pip install`` of this repository into the venv of a
separate project that has its own ``checks`` and ``reference`` packages, its own Hypothesis profile and unrelated tests.

One venv is built per test run (a few seconds), shared by this file's tests and, under pytest-xdist, by every worker
(a lock in the run's temporary folder): pip builds the wheel from this checkout (with the running environment's
setuptools where it can, else in pip's isolated build environment); numpy, torch, Hypothesis and pytest come from the
running environment (a .pth line), so nothing large is installed twice.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

try:
    import fcntl
except ImportError:  # not on Windows: each worker builds its own
    fcntl = None

ROOT = Path(__file__).resolve().parents[1]

USER_FILES = {
    # the user's own packages, named like the harness's folders
    "checks/__init__.py": "WHO = 'the user project'\n",
    "reference/__init__.py": "WHO = 'the user reference'\n",
    "mylayers.py": """
        import numpy as np
        from cnn_gradcheck import plugin

        def relu_forward(x):
            return np.maximum(x, 0.0)

        def relu_backward(dy, x):
            return dy * (x > 0)

        def relu_backward_wrong(dy, x):
            return 1.5 * dy * (x > 0)

        RELU = plugin(relu_forward, relu_backward, name="my relu")
        WRONG = plugin(relu_forward, relu_backward_wrong, name="my wrong relu")
    """,
    "tests/conftest.py": """
        from hypothesis import settings
        settings.register_profile("mine", max_examples=7)
        settings.load_profile("mine")
    """,
    "tests/test_unrelated.py": """
        import sys
        from hypothesis import given, strategies as st

        SEEN = []

        @given(st.integers())
        def test_property(n):
            SEEN.append(n)

        def test_own_profile_and_packages_untouched():
            assert len(SEEN) == 7, len(SEEN)  # the user's profile: 7 examples, not the harness's
            import checks, reference
            assert checks.WHO == "the user project" and reference.WHO == "the user reference"

        def test_no_heavy_imports():
            assert "torch" not in sys.modules and "numpy" not in sys.modules
            assert not [m for m in sys.modules if m.startswith("cnn_gradcheck.") and m != "cnn_gradcheck.pytest_plugin"]
    """,
    "tests/test_layer.py": """
        import pytest
        from cnn_gradcheck import PluginCheckFailure, check_plugin
        from mylayers import RELU, WRONG

        def test_my_relu():
            report = check_plugin("relu", RELU)
            assert report.cases == 7  # the user's loaded profile decides the count

        def test_my_wrong_relu_is_caught():
            with pytest.raises(PluginCheckFailure, match="dx wrong in my wrong relu"):
                check_plugin("relu", WRONG)
    """,
}


@pytest.fixture(scope="module")
def user_project(tmp_path_factory):
    """The user project with the harness installed (non-editable), built once per run: xdist workers share it."""
    root = tmp_path_factory.getbasetemp()
    if fcntl is not None and os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the folder all workers' temporary folders are in
    project = root / "user_project"
    with open(root / "user_project.lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one worker builds (pip builds in this checkout's build/), the rest wait
        if not (project / ".built").exists():
            _build_user_project(project)
    py = project / ".venv" / "bin" / "python"
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    return project, py, Path(purelib)


def _build_user_project(project: Path) -> None:
    shutil.rmtree(project, ignore_errors=True)  # what a failed build left
    for name, text in USER_FILES.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    venv = project / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # the dependencies (and pip) from the environment running this suite, after the venv's own site-packages: its
    # site-packages folders in the order it reads them (a venv whose packages come from another environment through
    # a .pth file lists that environment's too; .pth files are not read in folders that a .pth line names)
    deps = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages") and os.path.isdir(p)]
    Path(purelib, "_deps.pth").write_text("\n".join(dict.fromkeys([*site.getsitepackages(), *deps])) + "\n")
    command = [py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--no-cache-dir"]
    # the running environment's setuptools and wheel build it where they can (seconds); else pip's isolated build
    install = subprocess.run(command + ["--no-build-isolation", str(ROOT)], capture_output=True, text=True)
    if install.returncode != 0:
        install = subprocess.run(command + [str(ROOT)], capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    (project / ".built").touch()


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CNN_GRADCHECK", "HYPOTHESIS"))}
    env.pop("PYTHONPATH", None)
    return env


def _pytest(project, py, *args):
    return subprocess.run([py, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=project,
                          capture_output=True, text=True, env=_env())


def test_site_packages_receives_one_import_package(user_project):
    project, py, purelib = user_project
    names = sorted(p.name for p in purelib.iterdir() if p.name not in {"_deps.pth", "__pycache__"})
    assert [n for n in names if not n.startswith("cnn_gradcheck")] == []
    assert "cnn_gradcheck" in names and any(n.endswith(".dist-info") for n in names)
    top = subprocess.run([py, "-c", "import cnn_gradcheck, sys; print(cnn_gradcheck.__file__); "
                          "print(sorted(cnn_gradcheck.__all__))"], cwd=project, capture_output=True, text=True,
                         env=_env())
    assert str(purelib) in top.stdout, top.stdout + top.stderr  # the wheel's copy, not this checkout
    assert "check_plugin" in top.stdout


def test_unrelated_tests_keep_their_profile_packages_and_speed(user_project):
    project, py, _ = user_project
    run = _pytest(project, py, "tests/test_unrelated.py")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout


def test_check_plugin_from_the_users_tests(user_project):
    project, py, _ = user_project
    run = _pytest(project, py, "tests/test_layer.py")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


def test_plugin_option_and_console_script(user_project):
    project, py, _ = user_project
    run = _pytest(project, py, "--plugin", "relu=mylayers:RELU", "--plugin", "relu=mylayers:WRONG")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 passed" in run.stdout
    assert "relu: my relu passed 7 generated cases" in run.stdout  # same count as from Python
    assert "cnn-gradcheck replay relu mylayers:WRONG --config" in run.stdout  # a failure says how to re-run it
    assert "Traceback" not in run.stdout
    script = py.parent / "cnn-gradcheck"
    listed = subprocess.run([script, "list"], cwd=project, capture_output=True, text=True, env=_env())
    assert listed.returncode == 0 and "conv2d\n  forward(x, w, b, stride=" in listed.stdout, listed.stderr
    checked = subprocess.run([script, "check", "relu", "mylayers:WRONG", "--max-examples", "5"], cwd=project,
                             capture_output=True, text=True, env=_env())
    assert checked.returncode == 1 and "dx wrong in my wrong relu" in checked.stdout, checked.stdout + checked.stderr
    line = next(l for l in checked.stdout.splitlines() if l.strip().startswith("cnn-gradcheck replay"))
    replayed = subprocess.run(line.strip(), shell=True, cwd=project, capture_output=True, text=True,
                              env={**_env(), "PATH": f"{py.parent}:{os.environ['PATH']}"})
    assert replayed.returncode == 1 and "dx wrong in my wrong relu" in replayed.stdout, replayed.stdout
