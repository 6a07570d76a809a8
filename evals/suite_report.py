"""Reporting a suite run: per-case progress lines on stderr, a rich table, and JUnit XML for CI systems.

JUnit XML is written with xml.etree (no dependency).
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from interestlens.evals.suite_cases import AssertionResult, SuiteReport, suite_name


def case_status(results: Sequence[AssertionResult]) -> str:
    """One word for a case: error > FAIL > skip (every assertion skipped) > ok."""
    statuses = {r.status for r in results}
    if "error" in statuses:
        return "error"
    if "fail" in statuses:
        return "FAIL"
    if statuses == {"skip"}:
        return "skip"
    return "ok"


def print_progress(line: str, end: str = "\n") -> None:
    sys.stderr.write(line + end)
    sys.stderr.flush()


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: str) -> str:
    """XML 1.0 cannot carry most control characters even escaped; case ids and details may hold user text."""
    return _XML_ILLEGAL.sub("\ufffd", text)


def junit_xml(report: SuiteReport) -> ET.Element:
    """JUnit XML for CI systems: one <testsuite> named after the suite, one <testcase> per case (classname = the
    suite's name), a <failure> listing the failed checks, an <error> where the stage could not run, <skipped> for
    a case that needs a capable LLM. Assertions skipped inside a passing case are listed in its <system-out>."""
    name = suite_name(report.suite)
    by_case: dict[str, list[AssertionResult]] = {c: [] for c in report.case_seconds}
    for r in report.results:
        by_case.setdefault(r.case_id, []).append(r)
    status = {c: case_status(rs) for c, rs in by_case.items()}
    root = ET.Element("testsuites", name=_x(f"interestlens eval suite {name}"))
    suite = ET.SubElement(
        root,
        "testsuite",
        name=_x(name),
        tests=str(len(by_case)),
        failures=str(sum(s == "FAIL" for s in status.values())),
        errors=str(sum(s == "error" for s in status.values())),
        skipped=str(sum(s == "skip" for s in status.values())),
        time=f"{report.seconds:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="llm", value=_x(report.llm))
    for key, value in report.stats.items():
        ET.SubElement(props, "property", name=key, value=str(value))
    for case_id, rs in by_case.items():
        seconds = report.case_seconds.get(case_id, 0.0)
        tc = ET.SubElement(suite, "testcase", classname=_x(name), name=_x(case_id), time=f"{seconds:.3f}")
        details = _x("\n".join(f"{r.status}: {r.assertion}: {r.detail}" for r in rs))
        failed = [r for r in rs if r.status == "fail"]
        errors = [r for r in rs if r.status == "error"]
        if errors:
            message = "; ".join(f"{r.assertion}: {r.detail}" for r in errors)[:1000]
            el = ET.SubElement(tc, "error", message=_x(message))
            el.text = details
        elif failed:
            message = "failed: " + ", ".join(r.assertion for r in failed)
            el = ET.SubElement(tc, "failure", message=_x(message), type="AssertionFailure")
            el.text = details
        elif status[case_id] == "skip":
            ET.SubElement(tc, "skipped", message=_x("; ".join(r.detail for r in rs)[:1000]))
        if rs and not errors and not failed:
            ET.SubElement(tc, "system-out").text = details
    return root


def write_junit(report: SuiteReport, path: str | Path) -> None:
    tree = ET.ElementTree(junit_xml(report))
    ET.indent(tree)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def print_report(report: SuiteReport) -> None:
    from rich.console import Console
    from rich.table import Table

    colours = {"pass": "green", "fail": "red", "skip": "yellow", "error": "magenta"}
    table = Table(title=f"{report.suite} (llm: {report.llm})")
    for col in ("case", "assertion", "status", "detail"):
        table.add_column(col, overflow="fold")
    for r in report.results:
        table.add_row(r.case_id, r.assertion, f"[{colours[r.status]}]{r.status}[/]", r.detail)
    Console().print(table)
    c = report.counts()
    Console().print(
        f"pass {c['pass']}  fail {c['fail']}  skip {c['skip']}  error {c['error']}  "
        f"(llm calls {report.stats.get('llm_calls', 0)}, invalid outputs "
        f"{report.stats.get('invalid_outputs', 0)}, fallbacks {report.stats.get('fallbacks', 0)})"
    )
