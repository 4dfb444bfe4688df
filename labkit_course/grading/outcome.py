"""What grading one submission found: the record every step of grading adds to.

Step 2 (:mod:`~labkit_course.grading.running`) fills in the judge's verdicts, flags and notes;
step 3 (:mod:`~labkit_course.grading.recording`) the status and, read back from the gradebook,
the scores; step 4 (:mod:`~labkit_course.grading.reporting`) reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Outcome:
    """What grading one submission found."""

    student: str
    assignment: str
    status: str = "graded"  # graded | failed (needs a look: the notebook did not run) | flagged (review)
    flagged: bool = False  # needs review: autograded cells score 0, whatever the status became after
    seconds: float = 0.0
    scores: dict = field(default_factory=dict)  # grade_id -> auto score in the gradebook (None: by hand)
    max_scores: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    verdicts: dict = field(default_factory=dict)  # exercise -> labkit_course.judge.Verdict
    judge_seconds: float = 0.0
    notebook_log: str = ""

    @property
    def auto_score(self) -> float:
        return sum(v for v in self.scores.values() if v is not None)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def flag(self, text: str) -> None:
        """Hold the submission for review (its autograded cells score 0), saying why. A later
        failure changes the status to ``failed``, never the hold."""
        self.flagged = True
        if self.status == "graded":
            self.status = "flagged"
        self.note(text)
