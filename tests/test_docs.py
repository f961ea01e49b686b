"""The Markdown files' relative links resolve, and the README's commands match CI's."""

from __future__ import annotations

import re

from tools.check_links import ROOT, anchors, broken_links, markdown_files, slug


def test_every_relative_link_resolves():
    problems = [p for path in markdown_files() for p in broken_links(path)]
    assert problems == []


def test_the_checker_finds_missing_files_and_headings(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## Speed and accuracy (`--flip`)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#speed-and-accuracy---flip) [gone](missing.md)\n"
        "[bad anchor](other.md#nothing) [web](https://example.org/x.md)\n"
        "`[in code](missing-too.md)`\n```\n[fenced](missing-three.md)\n```\n"
    )
    problems = broken_links(page, root=tmp_path)
    assert len(problems) == 2
    assert "(missing.md) no such file" in problems[0]
    assert "no heading #nothing" in problems[1]


def test_github_anchors():
    assert slug("What was tried, and what it did to dev J&F") == (
        "what-was-tried-and-what-it-did-to-dev-jf"
    )
    assert slug("The network's size follows the objects") == "the-networks-size-follows-the-objects"
    assert "what-to-expect" in anchors(ROOT / "README.md")


def test_readme_test_command_is_the_one_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == "python -m pytest -q"
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert blocks[1].endswith("&& " + ci)  # the README's second command: set-up + tests
    assert blocks[0].startswith("pip install torch==2.14.1 torchvision==0.29.1 && pip install .")
