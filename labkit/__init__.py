"""labkit: the helper package of the course "How image classifiers see, and fail to see".

Shared machinery: ``models``, ``data``, ``viz``, ``validate``, ``metrics``, ``check``;
course tools: ``course``, ``grading``, ``cli``. One exercise module per lab:
``saliency``, ``adversarial``, ``classviz``, ``noise``, ``robust_features``.
"""
__version__ = "0.1.0"
