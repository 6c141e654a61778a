"""Inspect importer, tested on logs that inspect_ai itself writes in the test run.

A small survey task (3 items x 3 personas, 4-point scale, 3 epochs) runs on inspect_ai's offline mock
model with a custom output function, so every answer is known: the mock records each prompt it was
shown (the choices in the order shown) and the letter it answered. Choices are shuffled both ways
Inspect offers (dataset ``shuffle_choices`` and the deprecated ``multiple_choice(shuffle=True)``), and
logs are written in both formats (``.eval`` and ``.json``).
"""

from __future__ import annotations

import re
from collections import Counter

import pandas as pd
import pytest

from robustalign import SchemaError, make_reference, make_responses
from robustalign.importers import from_inspect, read_inspect

ITEMS = {
    "Q1": "How important is work in your life?",
    "Q2": "How important is family in your life?",
    "Q3": "How important is religion in your life?",
}
LABELS = ["Very important", "Rather important", "Not very important", "Not at all important"]
PERSONAS = ["none", "Japan", "Brazil"]
EPOCHS = 3
REFUSES = ("Q3", "Brazil")  # bot-a declines this one
REFUSAL = "I'm sorry, I cannot share a personal opinion."


def truth(item: str, persona: str) -> str:
    """The canonical code bot-a chooses: differs by item and persona."""
    return str(1 + (int(item[1]) + 2 * PERSONAS.index(persona)) % 4)


def _prompt_fields(text: str):
    persona = re.search(r"Answer as a person from (\w+)\.", text)
    item = next(k for k, q in ITEMS.items() if q in text)
    shown = re.findall(r"^([A-Z])\) (.+)$", text, re.M)
    return item, persona.group(1) if persona else "none", [t for _, t in shown]


def _mock(name: str, calls: list):
    from inspect_ai.model import ModelOutput, ModelUsage, get_model

    def answer(messages, tools, tool_choice, config):
        item, persona, shown = _prompt_fields(messages[-1].text)
        if name == "bot-a" and (item, persona) == REFUSES:
            text, letter = REFUSAL, None
        elif name == "bot-a":  # answers by content: the truth, wherever it is shown
            letter = "ABCD"[shown.index(LABELS[int(truth(item, persona)) - 1])]
            text = f"ANSWER: {letter}"
        else:  # bot-b answers by position: always the first option shown
            letter, text = "A", "ANSWER: A"
        calls.append({"model": f"mockllm/{name}", "item": item, "persona": persona, "shown": shown, "letter": letter})
        out = ModelOutput.from_content(model=name, content=text)
        out.usage = ModelUsage(input_tokens=20, output_tokens=3, total_tokens=23)  # no tokenizer download
        return out

    return get_model(f"mockllm/{name}", custom_outputs=answer)


def _samples(items=ITEMS, personas=PERSONAS):
    from inspect_ai.dataset import Sample

    return [
        Sample(
            input=("" if p == "none" else f"Answer as a person from {p}. ") + ITEMS[item],
            choices=list(LABELS),
            target="A",
            id=f"{item}-{p}",
            metadata={"item": item, "persona": p, "fmt": "letter", "wave": 7, "tags": ["wvs", "values"]},
        )
        for item in items
        for p in personas
    ]


def _survey(shuffle: str, name: str, epochs: int = EPOCHS):
    from inspect_ai import Task
    from inspect_ai.dataset import MemoryDataset
    from inspect_ai.scorer import choice
    from inspect_ai.solver import multiple_choice

    ds = MemoryDataset(_samples())
    if shuffle == "dataset":
        ds.shuffle_choices(seed=11)
    return Task(dataset=ds, solver=multiple_choice(shuffle=shuffle == "solver"), scorer=choice(), epochs=epochs,
                name=name)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    from inspect_ai import eval as inspect_eval

    d = tmp_path_factory.mktemp("inspect_logs")
    calls_ds, calls_solver = [], []
    ds_logs = inspect_eval(
        _survey("dataset", "survey"), model=[_mock("bot-a", calls_ds), _mock("bot-b", calls_ds)],
        log_dir=str(d / "dataset"), log_format="eval", display="none",
    )
    solver_logs = inspect_eval(
        _survey("solver", "survey_solver_shuffle"), model=_mock("bot-a", calls_solver),
        log_dir=str(d / "solver"), log_format="json", display="none",
    )
    assert all(lg.status == "success" for lg in [*ds_logs, *solver_logs])
    return {"dir": d, "dataset": [lg.location for lg in ds_logs], "solver": [lg.location for lg in solver_logs],
            "calls_dataset": calls_ds, "calls_solver": calls_solver}


@pytest.fixture(scope="module")
def reference():
    shares = pd.DataFrame(
        [{"item": i, "group": g, "option": str(k + 1), "share": 0.25} for i in ITEMS for g in ("Japan", "Brazil")
         for k in range(4)]
    )
    scales = pd.DataFrame({"item": list(ITEMS), "options": "1|2|3|4", "labels": "|".join(LABELS), "ordinal": True})
    return make_reference(shares, scales)


def _expected(calls) -> Counter:
    """What the mock was shown and answered, in canonical codes (from the prompts, not from the log)."""
    code = {lab: str(k + 1) for k, lab in enumerate(LABELS)}
    return Counter(
        (c["model"], c["item"], c["persona"], "|".join(code[t] for t in c["shown"]),
         code[c["shown"]["ABCD".index(c["letter"])]])
        for c in calls if c["letter"] is not None
    )


def _got(resp) -> Counter:
    d = resp.data
    return Counter(zip(d["model"], d["item"], d["persona"], d["option_order"], d["option"]))


def test_dataset_shuffle_eval_log_round_trips_every_answer_and_factor(logs, reference):
    resp = from_inspect(logs["dataset"], reference, item_field="item")
    d = resp.data
    # every answer the mock gave comes back as the canonical option, with the order it was shown
    assert _got(resp) == _expected(logs["calls_dataset"])
    assert (d["status"] == "valid").all()
    # bot-a answered by content: the truth, whatever the shuffled order
    a = d[d["model"] == "mockllm/bot-a"]
    assert (a["option"] == [truth(i, p) for i, p in zip(a["item"], a["persona"])]).all()
    # bot-b answered position 1: the first option shown
    b = d[d["model"] == "mockllm/bot-b"]
    assert (b["option"] == b["option_order"].str.split("|").str[0]).all()
    # choices really were shuffled, differently across items
    assert (d["option_order"] != "1|2|3|4").any() and d["option_order"].nunique() > 1
    # design factors: metadata (scalars only), epochs as `sample`; the list-valued field is skipped and named
    # `persona` names a role-played respondent (README, data contract): it keys the cells, not a factor
    assert set(resp.factors) == {"fmt", "wave", "sample", "option_order"} and "persona" in d
    assert set(d["persona"]) == set(PERSONAS) and set(d["fmt"]) == {"letter"} and set(d["wave"]) == {7}
    cells = d.groupby(["model", "item", "persona"])["sample"].apply(lambda s: sorted(s))
    assert all(v == [1, 2, 3] for k, v in cells.items() if (k[1], k[2]) != REFUSES or k[0].endswith("bot-b"))
    # bot-a's refusals have no answer letter: dropped and counted, not silent
    ex = resp.exclusions.to_frame()
    row = ex[ex["reason"].str.contains("no answer letter")]
    assert row["n_rows"].sum() == EPOCHS and row["action"].eq("dropped").all()
    assert len(d) == 2 * len(ITEMS) * len(PERSONAS) * EPOCHS - EPOCHS


def test_solver_shuffle_json_log_recovers_the_order_shown(logs, reference):
    """multiple_choice(shuffle=True) logs the unshuffled choices; the shown order is in the scorer's explanation."""
    resp = from_inspect(logs["solver"], reference, item_field="item")
    d = resp.data
    assert _got(resp) == _expected(logs["calls_solver"])
    assert (d["option"] == [truth(i, p) for i, p in zip(d["item"], d["persona"])]).all()
    # a new order per epoch: the shown order varies within an item x persona
    assert (d.groupby(["item", "persona"])["option_order"].nunique() > 1).any()


def test_raw_text_mode_keeps_refusals_with_their_status(logs, reference):
    bot_a = [p for p in logs["dataset"] if read_inspect(p, item_field="item").loc[0, "model"] == "mockllm/bot-a"]
    resp = from_inspect(bot_a, reference, item_field="item", answer="raw_text")
    d = resp.data
    assert len(d) == len(ITEMS) * len(PERSONAS) * EPOCHS
    refused = (d["item"] == REFUSES[0]) & (d["persona"] == REFUSES[1])
    assert (d.loc[refused, "status"] == "refusal").all()
    assert (d.loc[~refused, "status"] == "valid").all()
    assert (d.loc[~refused, "option"] == [truth(i, p) for i, p in zip(d.loc[~refused, "item"], d.loc[~refused, "persona"])]).all()
    with pytest.raises(SchemaError, match=r"rewrote the completion.*answer='score'"):
        read_inspect(logs["solver"], reference, item_field="item", answer="raw_text")


def test_folder_of_logs_adds_the_task_that_differs(logs, reference):
    resp = from_inspect(logs["dir"], reference, item_field="item")
    assert "task" in resp.factors
    assert resp.data.groupby("task")["model"].nunique().to_dict() == {"survey": 2, "survey_solver_shuffle": 1}
    assert _got(resp) == _expected(logs["calls_dataset"] + logs["calls_solver"])


def test_task_arguments_that_differ_become_factors(tmp_path, reference):
    """`inspect eval survey.py -T template=...`: registered tasks record their arguments in the log."""
    from inspect_ai import Task, task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import MemoryDataset
    from inspect_ai.scorer import choice
    from inspect_ai.solver import multiple_choice

    @task
    def survey_template(template: str = "plain", version: int = 2):
        tmpl = "{question}\n\n{choices}\n\nANSWER: $LETTER" if template == "plain" else None
        return Task(dataset=MemoryDataset(_samples(["Q1", "Q2"], ["none"])), solver=multiple_choice(template=tmpl),
                    scorer=choice())

    calls = []
    out = inspect_eval([survey_template(template="plain"), survey_template(template="default")],
                       model=_mock("bot-a", calls), log_dir=str(tmp_path), display="none")
    resp = from_inspect([lg.location for lg in out], reference, item_field="item")
    # `template` differs between the logs and is a factor; `version` (same in both) is not
    assert "template" in resp.factors and "version" not in resp.factors and "task" not in resp.factors
    assert sorted(resp.data["template"].unique()) == ["default", "plain"]
    assert _got(resp) == _expected(calls)


def test_raw_table_without_reference_uses_texts_as_codes(logs):
    df = read_inspect(logs["dataset"][0], item_field="item")
    assert list(df.columns[:2]) == ["model", "item"] and "answer_position" in df
    assert set(df["option_order"].str.split("|").explode()) == set(LABELS)
    assert df.attrs["skipped_metadata"] == ["tags"]
    assert df.attrs["source"]["tool"] == "inspect_ai"
    # the raw table feeds make_responses directly, with scales whose codes are the texts
    sc = pd.DataFrame({"item": list(ITEMS), "options": "|".join(LABELS), "ordinal": True})
    from robustalign.schema import make_scales

    resp = make_responses(df, scales=make_scales(sc))
    assert resp.kind == "choice" and (resp.data["status"] == "valid").all()


def test_errors_name_the_file_sample_field_and_fix(logs, reference):
    with pytest.raises(SchemaError, match=r"\.eval: sample '.*' epoch \d: metadata has no scalar field 'question_id'.*item_field="):
        read_inspect(logs["dataset"][0], item_field="question_id")
    with pytest.raises(SchemaError, match=r"metadata field 'country' is missing.*factor_fields"):
        read_inspect(logs["dataset"][0], item_field="item", factor_fields=["persona", "country"])
    with pytest.raises(SchemaError, match=r"hold lists or dicts"):
        read_inspect(logs["dataset"][0], item_field="item", factor_fields=["tags"])
    bad = make_reference(
        pd.DataFrame([{"item": i, "group": "Japan", "option": str(k + 1), "share": 0.25} for i in ITEMS for k in range(4)]),
        pd.DataFrame({"item": list(ITEMS), "options": "1|2|3|4", "labels": "A lot|Some|Little|None", "ordinal": True}),
    )
    with pytest.raises(SchemaError, match=r"option text 'Very important' of item 'Q\d' matches no label"):
        read_inspect(logs["dataset"][0], bad, item_field="item")
    with pytest.raises(SchemaError, match=r"file not found"):
        read_inspect(logs["dir"] / "missing.eval")
    with pytest.raises(SchemaError, match=r"pass the reference"):
        from_inspect(logs["dataset"][0], item_field="item")


def test_readme_three_lines_take_an_inspect_log_to_an_audit_report(tmp_path, capsys):
    """Runs the README's code block as written, on a GOQA-style file and an Inspect log made here.

    The prompts are built from the GOQA questions (ids kept in metadata), each in two option orders
    crossed with the personas, so the audit can separate order from persona; bot-b answers by position.
    """
    from collections import defaultdict
    from pathlib import Path

    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.scorer import choice
    from inspect_ai.solver import multiple_choice

    from robustalign.importers import read_goqa_questions

    goqa = tmp_path / "global_opinions.csv"
    pd.DataFrame([
        {"question": q, "options": repr(LABELS), "source": "WVS",
         "selections": repr(defaultdict(list, {"Japan": [0.1, 0.2, 0.3, 0.4], "Brazil": [0.4, 0.3, 0.2, 0.1]}))}
        for q in ITEMS.values()
    ]).to_csv(goqa, index=False)
    qs = read_goqa_questions(goqa)
    samples = [
        Sample(input=("" if p == "none" else f"Answer as a person from {p}. ") + q.question,
               choices=list(q.options) if order == "asc" else q.options[::-1], target="A",
               id=f"{q.item}-{p}-{order}", metadata={"question_id": q.item, "persona": p})
        for q in qs.itertuples() for p in PERSONAS[:2] for order in ("asc", "desc")
    ]
    calls = []
    inspect_eval(Task(dataset=MemoryDataset(samples), solver=multiple_choice(), scorer=choice(), epochs=2,
                      name="goqa_survey"),
                 model=[_mock("bot-a", calls), _mock("bot-b", calls)], log_dir=str(tmp_path / "logs"),
                 display="none")

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Importing from evaluation tools", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert code.count("\n") == 6  # two imports, a blank line, the three lines
    code = code.replace('"global_opinions.csv"', repr(str(goqa))).replace('"logs/"', repr(str(tmp_path / "logs")))
    exec(compile(code, "README.md", "exec"), {"ordered_items": list(qs["item"])})
    report = capsys.readouterr().out
    # bot-b picks whatever is shown first: the audit finds it unstable across option orders
    assert "mockllm/bot-b / option_order: not stable" in report
    assert "mockllm/bot-a / option_order: stable" in report
