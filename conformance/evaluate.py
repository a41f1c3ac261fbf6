"""Running one case on one adapter and judging it: case → adapter → Result.

This is the only place an adapter is called. Whatever the adapter does
(returns, raises Unsupported, raises anything else) ends as one Result.
"""

from __future__ import annotations

import time
import traceback

from .adapter import Adapter
from .cases import Case
from .compare import compare
from .diagnosis import diagnose
from .errors import Unsupported
from .results import Result


def _error_message(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if len(text) > 1:
        first += " …"
    return f"{type(exc).__name__}: {first}{where}"[:2000]


def _diagnosis(case: Case, produced: list[dict]) -> dict:
    try:
        return diagnose(case, produced)
    except Exception as exc:  # a bug in a variant must not cost the result
        return {"summary": f"unexplained (the diagnosis failed: {_error_message(exc)})", "matches": []}


def evaluate(case: Case, adapter: Adapter, diagnose_divergences: bool = True) -> Result:
    """Run ``case`` through ``adapter``, compare every expected output, diagnose a divergence."""
    result = Result(case=case.id, adapter=adapter.name, status="pass", api=adapter.api)
    start = time.perf_counter()
    try:
        produced = adapter.run(case)
    except Unsupported as exc:
        result.status, result.message = "unsupported", str(exc)
    except Exception as exc:  # the framework raised: an `error` result, the run goes on
        result.status, result.message = "error", _error_message(exc)
    else:
        result.outputs, result.status, result.message = judge(case, produced)
        if result.status == "diverge" and diagnose_divergences:
            result.diagnosis = _diagnosis(case, produced)
    result.notes = list(adapter.notes)
    result.duration_s = round(time.perf_counter() - start, 6)
    return result


def judge(case: Case, produced: list[dict]) -> tuple[dict[str, dict], str, str]:
    """Compare produced outputs with the case's expected ones → (outputs, status, message)."""
    if len(produced) != len(case.steps):
        return {}, "error", f"adapter returned {len(produced)} steps, the case has {len(case.steps)}"
    outputs, diverged, missing = {}, [], []
    for i, (step, got) in enumerate(zip(case.steps, produced)):
        for name, exp in step.expected.items():
            key = case.output_key(i, name)
            actual = got.get(name)
            cmp = compare(key, exp.values, exp.dtype, None if actual is None else actual.values,
                          None if actual is None else actual.dtype, exp.tolerance)
            outputs[key] = cmp.to_json()
            if cmp.status == "diverge":
                diverged.append(f"{key}: {cmp.message}")
            elif cmp.status == "not-produced":
                missing.append(key)
    if diverged:
        return outputs, "diverge", "; ".join(diverged)
    if missing and len(missing) == len(outputs):
        return outputs, "unsupported", f"produces none of the expected outputs ({', '.join(missing)})"
    note = f"not compared (the adapter does not expose them): {', '.join(missing)}" if missing else ""
    return outputs, "pass", note
