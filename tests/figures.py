"""Figures the reliability suites report (printed at the end of the test run and quoted in
README.md's "Reliability" section)."""

FIGURES = {}


def count(name: str, n: int = 1) -> None:
    FIGURES[name] = FIGURES.get(name, 0) + n
