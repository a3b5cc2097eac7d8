"""The README's reference parts match the code: the settings table is generated from `Settings`
and complete (every setting, its default and a meaning), every request field is documented, and
the sample result shows the fields a result has."""

from __future__ import annotations

import json
import re
from pathlib import Path

from app.schemas import SolveRequest, SolveResult
from app.settings import Settings
from app.settings_doc import BEGIN, END, markdown_table, replace_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_says_what_it_means() -> None:
    assert [name for name, field in Settings.model_fields.items() if not field.description] == []


def test_readme_table_is_the_generated_one() -> None:
    text = README.read_text()
    assert BEGIN in text and END in text, "README lost its settings table markers"
    assert replace_table(text) == text, "run: python -m app.settings_doc --write README.md"
    for name in Settings.model_fields:
        assert f"`TRM_{name.upper()}`" in markdown_table()


def test_readme_documents_every_request_field() -> None:
    table = README.read_text().split("Request fields", 1)[1].split("\n\n", 2)[1]
    documented = set(re.findall(r"^\| `(\w+)` \|", table, flags=re.M))
    assert documented == set(SolveRequest.model_fields)


def test_readme_sample_result_is_a_current_result() -> None:
    text = README.read_text()
    sample = text.split("```json\n", 1)[1].split("```", 1)[0]
    complete = re.sub(r"\[\[4, 8, 3, 9, 2, 1, 6, 5, 7\], …\]", "[]", sample).replace("slv_…",
                                                                                   "slv_x")
    result = json.loads(complete)
    assert set(result) == set(SolveResult.model_fields) - {"answer", "answer_grid", "conflicts",
                                                          "trajectory", "search", "path",
                                                          "path_complete", "path_length",
                                                          "shortest_length", "verifies", "output"}
    assert result["status"] == "solved" and not result["unverified"]
