"""labkit: the student's package of the course "How image classifiers see, and fail to see".

One exercise module per lab: ``saliency``, ``adversarial``, ``classviz``, ``noise``,
``robust_features``. Helpers: ``models``, ``data``, ``viz``, ``validate``, ``metrics``,
``experiments``, ``labs``; instant self-checks: ``check``. (The instructor's tools are the
separate ``labkit_course`` package, which students never get.)
"""

__version__ = "0.1.0"
