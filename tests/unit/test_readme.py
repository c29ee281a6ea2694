"""README's two commands are the ones CI runs, so a newcomer's set-up cannot drift from CI's."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def code_after(text: str, heading: str) -> str:
    block = text.split(heading, 1)[1].split("```sh\n", 1)[1]
    return block.split("```", 1)[0].strip()


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    setup = code_after(readme, "**Set up**")
    tests = code_after(readme, "**Run the tests**")
    assert setup in ci.splitlines()
    assert tests in ci.splitlines()
