"""The instructor's side of the course: never shipped to students, never importable by their code.

* :mod:`labkit_course.repo`: where the reference lives (``solutions/``) and how to load it;
* :mod:`labkit_course.sync`: student files generated from ``solutions/``;
* :mod:`labkit_course.notebooks`: run notebooks headless, measuring time and memory;
* :mod:`labkit_course.build`: an nbgrader course from the repository;
* :mod:`labkit_course.sandbox`: bubblewrap and resource limits for student code;
* :mod:`labkit_course.judge` and :mod:`labkit_course.hidden`: the trusted judge and its hidden tests;
* :mod:`labkit_course.grading`: autograde a class, in parallel, without losing a grade;
* :mod:`labkit_course.gradescope`: the same judge as a Gradescope autograder;
* :mod:`labkit_course.cli`: the ``labkit-course`` command.
"""
