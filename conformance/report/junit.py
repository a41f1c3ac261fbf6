"""JUnit XML: one <testcase> per (case, adapter); diverge → failure, error → error,
unsupported and skipped → skipped."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from ..results import RunRecord


def render_junit(record: RunRecord) -> str:
    suites = ET.Element("testsuites", name="conformance")
    by_adapter: dict[str, list] = {}
    for r in record.results:
        by_adapter.setdefault(r.adapter, []).append(r)
    for adapter, results in by_adapter.items():
        counts = {s: sum(r.status == s for r in results) for s in ("diverge", "error", "unsupported", "skipped")}
        suite = ET.SubElement(suites, "testsuite", name=adapter, tests=str(len(results)),
                              failures=str(counts["diverge"]), errors=str(counts["error"]),
                              skipped=str(counts["unsupported"] + counts["skipped"]))
        for r in results:
            tc = ET.SubElement(suite, "testcase", classname=adapter, name=r.case, time=f"{r.duration_s:.6f}")
            if r.status == "diverge":
                ET.SubElement(tc, "failure", message=r.message[:500], type="diverge").text = _details(r)
            elif r.status == "error":
                ET.SubElement(tc, "error", message=r.message[:500], type="error").text = r.message
            elif r.status in ("unsupported", "skipped"):
                ET.SubElement(tc, "skipped", message=f"{r.status}: {r.message}"[:500])
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _details(r) -> str:
    lines = []
    for name, o in r.outputs.items():
        if o.get("status") == "diverge":
            lines.append(f"{name}: max_abs_error={o.get('max_abs_error')} max_rel_error={o.get('max_rel_error')} "
                         f"max_ulp={o.get('max_ulp')} mismatches={o.get('mismatches')} {o.get('message', '')}")
    return "\n".join(lines)
