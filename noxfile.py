"""Sessions: ``nox -s conformance`` (every framework, one merged report) and
``nox -s tests`` (the harness's own tests, adapters against real frameworks,
then the regression gate: every adapter on the bundled cases, merged and
compared with the committed ``baselines/bundled.json``).
``nox -s update-baseline`` rewrites that baseline after a deliberate change.

Each framework group has its own virtualenv with pinned versions; each adapter
then runs in its own worker process inside it (Keras fixes its backend per
process). PyTorch environments are made with pip (nox's default virtualenv
backend): pip finds the local CPU wheel of torch 2.13.0.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

KERAS = "keras==3.15.1"
#: environment → (pinned packages, adapters that run in it)
ENVIRONMENTS: dict[str, tuple[list[str], list[str]]] = {
    "numpy": ([], ["numpy"]),
    "tensorflow": (["tensorflow==2.21.0", "tf_keras==2.21.0", KERAS],
                   ["tf.nn", "tf.nn.fused", "tf_keras", "tf_keras.fused", "keras-tensorflow"]),
    "torch": (["torch==2.13.0", KERAS], ["torch.functional", "torch.nn", "keras-torch"]),
    "jax": (["jax==0.10.2", "jaxlib==0.10.2", "flax==0.12.8", KERAS],
            ["jax.numpy", "flax.linen", "flax.nnx", "keras-jax", "keras-numpy"]),
}
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
REPORTS = Path("reports")
BASELINE = Path("baselines") / "bundled.json"
GATE_RUN = "gate"  # reports/gate/: the run the `tests` session gates


def install(session: nox.Session, env: str) -> None:
    packages, _ = ENVIRONMENTS[env]
    session.install("-e", ".[test]", *packages)


@nox.session
def tests(session: nox.Session) -> None:
    """The harness's own tests: the core here, then each framework's adapter tests in its environment."""
    install(session, "numpy")
    session.install("playwright>=1.40")  # drives the system Chromium in tests/browser (no browser download)
    session.run("pytest", *(session.posargs or ["tests"]), env=ENV)
    if not session.posargs:
        shutil.rmtree(REPORTS / GATE_RUN, ignore_errors=True)
        run_part(session, "numpy", GATE_RUN)
        for env in ENVIRONMENTS:
            if env != "numpy":
                session.notify(f"tests-{env}")
        session.notify("gate", posargs=[GATE_RUN])


def run_part(session: nox.Session, env: str, run_id: str) -> None:
    """The bundled cases on ``env``'s adapters → reports/<run_id>/parts/<env>.json."""
    args = [a for name in ENVIRONMENTS[env][1] for a in ("--adapter", name)]
    session.run("conformance", "run", *args, "--results", str(REPORTS / run_id / "parts" / f"{env}.json"),
                env=ENV, success_codes=[0, 1])


def _adapter_tests(env: str):
    @nox.session(name=f"tests-{env}")
    def session_(session: nox.Session) -> None:
        install(session, env)
        session.run("pytest", "tests/adapters", *session.posargs, env=ENV)
        if not session.posargs:  # this environment's part of the gated run
            run_part(session, env, GATE_RUN)

    session_.__doc__ = f"Adapter tests against the real frameworks of the {env} environment."
    return session_


def _adapter_run(env: str):
    @nox.session(name=f"conformance-{env}")
    def session_(session: nox.Session) -> None:
        install(session, env)
        run_part(session, env, session.posargs[0] if session.posargs else datetime.now().strftime("%Y%m%d-%H%M%S"))

    session_.__doc__ = f"Run the bundled cases on the {env} adapters; writes reports/<run>/parts/{env}.json."
    return session_


for _env in ENVIRONMENTS:
    if _env != "numpy":  # the `tests` session itself covers the numpy environment
        globals()[f"tests_{_env}"] = _adapter_tests(_env)
    globals()[f"conformance_{_env}"] = _adapter_run(_env)


@nox.session
def conformance(session: nox.Session) -> None:
    """Every framework on the bundled cases, merged into reports/<run>/ (and reports/latest)."""
    run_id = session.posargs[0] if session.posargs else datetime.now().strftime("%Y%m%d-%H%M%S")
    for env in ENVIRONMENTS:
        session.notify(f"conformance-{env}", posargs=[run_id])
    session.notify("merge", posargs=[run_id])


def _merge(session: nox.Session, run_id: str, *extra: str, success_codes=(0, 1)) -> None:
    parts = sorted(str(p) for p in (REPORTS / run_id / "parts").glob("*.json"))
    if not parts:
        session.error(f"no results under {REPORTS / run_id / 'parts'}")
    adapters = [a for _, names in ENVIRONMENTS.values() for name in names for a in ("--adapter", name)]
    session.run("conformance", "report", *parts, "--report-dir", str(REPORTS), "--run-id", run_id,
                *adapters, *extra, env=ENV, success_codes=list(success_codes))


@nox.session
def merge(session: nox.Session) -> None:
    """Merge reports/<run>/parts/*.json into one report (``nox -s merge -- RUN_ID``)."""
    install(session, "numpy")
    run_id = session.posargs[0]
    _merge(session, run_id)
    session.run("conformance", "matrix", str(REPORTS / run_id / "results.json"),
                "-o", str(REPORTS / run_id / "semantics-matrix.md"), env=ENV)


@nox.session
def gate(session: nox.Session) -> None:
    """Merge a run's parts and gate them against baselines/bundled.json (``nox -s gate -- RUN_ID [--update-baseline]``)."""
    install(session, "numpy")
    run_id, *extra = session.posargs or [GATE_RUN]
    _merge(session, run_id, "--baseline", str(BASELINE), *extra, success_codes=(0,))


@nox.session(name="update-baseline")
def update_baseline(session: nox.Session) -> None:
    """Run every environment on the bundled cases and rewrite baselines/bundled.json (after a deliberate change)."""
    run_id = "baseline-" + datetime.now().strftime("%Y%m%d-%H%M%S")
    for env in ENVIRONMENTS:
        session.notify(f"conformance-{env}", posargs=[run_id])
    session.notify("gate", posargs=[run_id, "--update-baseline"])
