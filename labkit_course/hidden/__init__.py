"""Hidden tests, one module per lab: ``EXERCISES`` and one ``name(rng) -> list[Case]`` per exercise."""
