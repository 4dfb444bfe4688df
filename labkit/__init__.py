"""labkit: the student's package of the course "How image classifiers see, and fail to see".

One exercise module per lab, as the lab registry ``labs.LABS`` lists them (``saliency`` for Lab 1,
...). Helpers: ``models``, ``data``, ``viz``, ``validate``, ``metrics``, ``experiments``; instant
self-checks: ``check``. (The instructor's tools are the separate ``labkit_course`` package, which
students never get.)
"""

__version__ = "0.1.0"
