"""Grading, step 4: reporting, once a class is recorded.

Each student's feedback (:func:`write_feedback`: nbgrader's feedback pages, then
``feedback/<student>/labN/grading_report.html``, :func:`write_report`, with the judge's verdict per
exercise and the notes) and the class summary (:func:`summary`, always written to
``reports/labN.csv`` by :func:`write_summary`). Everything shown is escaped: notes and verdict
messages carry text from student code.
"""

from __future__ import annotations

import html
from pathlib import Path

from labkit.labs import Lab
from labkit_course.build import nbgrader
from labkit_course.grading.outcome import Outcome


def write_feedback(course: Path, aid: str, lab: Lab, outcomes: list[Outcome], pages: bool = True) -> None:
    """nbgrader's feedback pages (with ``pages``), then every student's :func:`write_report`."""
    for outcome in outcomes if pages else []:  # one by one: a broken notebook costs only its own
        try:  # the course's config sanitizes the pages (labkit_course.sanitize.feedback_hook)
            nbgrader(course, "generate_feedback", aid, "--student", outcome.student, "--force")
        except RuntimeError as exc:
            outcome.notes.append(f"nbgrader could not write the feedback page: {str(exc)[-300:]}")
    for outcome in outcomes:  # after generate_feedback, which replaces feedback/<student>/<lab>/
        write_report(course, outcome, lab)


def write_report(course: Path, outcome: Outcome, lab: Lab) -> None:
    """``feedback/<student>/labN/grading_report.html``: status, the judge's word per exercise, notes."""
    dest = Path(course) / "feedback" / outcome.student / outcome.assignment
    dest.mkdir(parents=True, exist_ok=True)
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{'to be graded by hand' if v is None else f'{v:g}'}</td>"
        f"<td>{outcome.max_scores.get(k, 0):g}</td></tr>"
        for k, v in outcome.scores.items()
    )
    verdicts = (
        "".join(
            f"<li>{'PASS' if v.passed else 'FAIL'}: {html.escape(v.message)}</li>" for v in outcome.verdicts.values()
        )
        or "<li>the exercises could not be judged</li>"
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in outcome.notes) or "<li>none</li>"
    (dest / "grading_report.html").write_text(
        f"<html><body><h1>{html.escape(lab.title)}: grading report for {html.escape(outcome.student)}</h1>"
        f"<p>status: <b>{outcome.status}</b>; autograded score {outcome.auto_score:g}</p>{_why(outcome)}"
        f"<h2>Exercises (hidden tests on random inputs)</h2><ul>{verdicts}</ul>"
        f"<h2>Notes</h2><ul>{notes}</ul><table border=1><tr><th>cell</th><th>score</th><th>max</th></tr>"
        f"{rows}</table></body></html>\n"
    )


def _why(outcome: Outcome) -> str:
    """The report's "Why" section for a flagged or failed submission ("" otherwise)."""
    why = ""
    if outcome.flagged:
        why += (
            "<p>Autograding flagged this submission: its autograded parts score 0 until an instructor reviews it.</p>"
        )
    if outcome.status == "failed":
        why += "<p>The notebook could not be executed or recorded (see the notes); the exercises were still judged.</p>"
        if outcome.notebook_log:
            log = "\n".join(line for line in outcome.notebook_log.splitlines() if "/labkit-" not in line)
            why += f"<h3>Grader log (end)</h3><pre>{html.escape(log[-3000:])}</pre>"
    return f"<h2>Why</h2>{why}" if why else ""


def summary(outcomes: list[Outcome]):
    """One row per student: status, score per cell, autograded total, seconds, notes."""
    import pandas as pd

    rows = []
    for o in sorted(outcomes, key=lambda o: o.student):
        row = {
            "student": o.student,
            "status": o.status,
            **o.scores,
            "auto_total": o.auto_score,
            "seconds": round(o.seconds, 1),
            "judge_seconds": round(o.judge_seconds, 1),
            "notes": " | ".join(o.notes),
        }
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        df = df.set_index("student")
    df.attrs["outcomes"] = outcomes
    return df


def write_summary(course: Path, aid: str, outcomes: list[Outcome]):
    """:func:`summary` of ``outcomes``, written to ``reports/<aid>.csv`` and returned."""
    table = summary(outcomes)
    (course / "reports").mkdir(exist_ok=True)
    table.to_csv(course / "reports" / f"{aid}.csv")
    return table
