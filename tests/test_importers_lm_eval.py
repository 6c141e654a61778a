"""lm-evaluation-harness importer, tested on samples files that the harness itself writes in the test run.

Two prompt templates are defined as two harness tasks (YAML, local JSON documents) over 3 survey items
x 2 countries x 2 option orders. A registered harness model returns known log-likelihoods (the log of a
known option distribution per item, country and template), so the importer must give back exactly those
distributions in canonical order, whatever order the options were shown in. Results and samples are
saved by the harness's own ``EvaluationTracker``, the same calls its command line makes.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from robustalign import SchemaError, make_reference
from robustalign.importers import from_lm_eval, read_lm_eval

LABELS = ["Very important", "Rather important", "Not very important", "Not at all important"]
ITEMS = {"Q1": "How important is work in your life?", "Q2": "How important is family in your life?",
         "Q3": "How important is religion in your life?"}
COUNTRIES = ["none", "Japan"]
TEMPLATES = {
    "survey_plain": "Question: {{question}}\nAnswer:",
    "survey_persona": "{% if country != 'none' %}Answer as a person from {{country}}. {% endif %}Q: {{question}}\nA:",
}
MODEL = "survey-bot-1"


def truth(item: str, country: str, task: str) -> np.ndarray:
    """The model's distribution over canonical options 1..4 (differs by item, country and template)."""
    w = np.array([1.0, 2.0, 3.0, 4.0]) ** (1 + int(item[1]) % 3)
    w = np.roll(w, COUNTRIES.index(country) + 2 * list(TEMPLATES).index(task))
    return w / w.sum()


def _write_tasks(d):
    docs = []
    for item, q in ITEMS.items():
        for country in COUNTRIES:
            for order in ("canonical", "reversed"):
                choices = list(LABELS) if order == "canonical" else LABELS[::-1]
                docs.append({"qid": item, "question": q, "country": country, "order_id": order, "choices": choices})
    (d / "docs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in docs), encoding="utf-8")
    for name, text in TEMPLATES.items():
        (d / f"{name}.yaml").write_text(
            f"task: {name}\n"
            "dataset_path: json\n"
            f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(d / 'docs.jsonl'))}\n"
            f"  cache_dir: {json.dumps(str(d / 'hf_cache'))}\n"
            "test_split: test\n"
            "output_type: multiple_choice\n"
            f"doc_to_text: {json.dumps(text)}\n"
            'doc_to_choice: "{{choices}}"\n'
            "doc_to_target: 0\n"
            "metric_list:\n  - metric: acc\n",
            encoding="utf-8",
        )
    return docs


def _register_model():
    from lm_eval.api.model import LM
    from lm_eval.api.registry import MODEL_REGISTRY, register_model

    if "survey-fixed" in MODEL_REGISTRY:
        return

    @register_model("survey-fixed")
    class SurveyFixed(LM):
        """Log-likelihood of each option = log of the known distribution `truth`."""

        def __init__(self, pretrained: str = MODEL, **kwargs):
            super().__init__()

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            out = []
            for r in requests:
                ctx, cont = r.arguments
                item = next(k for k, q in ITEMS.items() if q in ctx)
                country = "Japan" if "from Japan" in ctx else "none"
                task = "survey_plain" if ctx.startswith("Question:") else "survey_persona"
                p = truth(item, country, task)[LABELS.index(cont.strip())]
                out.append((math.log(p), False))
            return out

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError

        def generate_until(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run both templates through the harness and save results and samples as its command line does."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        from lm_eval import simple_evaluate
        from lm_eval.loggers import EvaluationTracker
        from lm_eval.tasks import TaskManager

        d = tmp_path_factory.mktemp("lm_eval")
        docs = _write_tasks(d)
        _register_model()
        tracker = EvaluationTracker(output_path=str(d / "out"))
        results = simple_evaluate(
            model="survey-fixed", model_args=f"pretrained={MODEL}", tasks=list(TEMPLATES),
            task_manager=TaskManager(include_path=str(d), include_defaults=False),
            log_samples=True, evaluation_tracker=tracker, bootstrap_iters=0,
        )
        samples = results.pop("samples")
        tracker.save_results_aggregated(results=results, samples=samples)
        for name in results["configs"]:
            tracker.save_results_samples(task_name=name, samples=samples[name])
    files = sorted((d / "out").rglob("samples_*.jsonl"))
    assert len(files) == 2
    return {"out": d / "out", "files": files, "docs": docs}


@pytest.fixture(scope="module")
def reference():
    shares = pd.DataFrame([{"item": i, "group": "Japan", "option": str(k + 1), "share": 0.25}
                           for i in ITEMS for k in range(4)])
    scales = pd.DataFrame({"item": list(ITEMS), "options": "1|2|3|4", "labels": "|".join(LABELS), "ordinal": True})
    return make_reference(shares, scales)


def test_harness_probabilities_round_trip_in_canonical_order(run, reference):
    resp = from_lm_eval(run["out"], reference, item_field="qid", factor_fields=["country", "order_id"])
    d = resp.data
    assert resp.kind == "prob"
    assert len(d) == len(TEMPLATES) * len(run["docs"])
    assert set(resp.factors) == {"task", "country", "order_id", "option_order"}
    assert set(d["model"]) == {MODEL}  # read from the harness's results file
    assert set(d["task"]) == set(TEMPLATES)  # the prompt variants
    # the option order shown is recorded; reversed documents show 4|3|2|1
    assert (d.loc[d["order_id"] == "reversed", "option_order"] == "4|3|2|1").all()
    assert (d.loc[d["order_id"] == "canonical", "option_order"] == "1|2|3|4").all()
    # every distribution comes back exactly, in canonical order, whatever order it was shown in
    got = d[["prob_1", "prob_2", "prob_3", "prob_4"]].to_numpy()
    # (the plain template does not mention the country, so the model cannot answer by it)
    seen = np.where(d["task"] == "survey_persona", d["country"], "none")
    want = np.array([truth(i, c, t) for i, c, t in zip(d["item"], seen, d["task"])])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    # the distributions differ across templates, so pooling them would have been wrong
    assert not np.allclose(truth("Q1", "none", "survey_plain"), truth("Q1", "none", "survey_persona"))


def test_prompt_variants_are_never_pooled_silently(run, reference):
    """Without the `country` field, two documents of one item, task and order differ only in their prompt."""
    with pytest.raises(SchemaError, match=r"under different prompts .*'Answer as a person from Japan.*factor_fields"):
        read_lm_eval(run["files"], reference, item_field="qid", factor_fields=["order_id"])
    # the plain template ignores `country`: same prompt twice -> a repeated prompt, not a variant
    plain = [f for f in run["files"] if "survey_plain" in f.name]
    with pytest.raises(SchemaError, match=r"repeat the same prompt"):
        read_lm_eval(plain, reference, item_field="qid", factor_fields=["order_id"])


def test_stringified_responses_are_parsed_only_as_data(run, reference, tmp_path):
    """Older harness versions wrote `filtered_resps` as one Python-repr string."""
    src = next(f for f in run["files"] if "survey_persona" in f.name)
    lines = [json.loads(x) for x in src.read_text(encoding="utf-8").splitlines()]
    for rec in lines:
        rec["filtered_resps"] = repr([(float(lp), g == "True") for lp, g in rec["filtered_resps"]])
    old = tmp_path / src.name
    old.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    a = read_lm_eval(src, reference, item_field="qid", factor_fields=["country", "order_id"], model="m")
    b = read_lm_eval(old, reference, item_field="qid", factor_fields=["country", "order_id"], model="m")
    pd.testing.assert_frame_equal(a, b)

    lines[0]["filtered_resps"] = "[(__import__('os').getpid(), False)]"
    old.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    with pytest.raises(SchemaError, match=r"line 1 \(doc_id 0\): field `filtered_resps`: expected a list .*data only"):
        read_lm_eval(old, reference, item_field="qid", factor_fields=["country", "order_id"], model="m")


def test_errors_name_the_file_record_field_and_fix(run, reference, tmp_path):
    f = run["files"][0]
    with pytest.raises(SchemaError, match=r"line 1 \(doc_id 0\): `doc` has no scalar field 'question_id'"):
        read_lm_eval(f, reference, item_field="question_id")
    lonely = tmp_path / f.name
    lonely.write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(SchemaError, match=r"no results_<date>.json beside it.*Pass `model=`"):
        read_lm_eval(lonely, reference, item_field="qid")
    other = tmp_path / "docs.jsonl"
    other.write_text("{}\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"not an lm-eval samples file"):
        read_lm_eval(other, reference)
    rec = json.loads(f.read_text(encoding="utf-8").splitlines()[0])
    rec["filtered_resps"] = rec["filtered_resps"][:2]
    bad = tmp_path / "samples_x_2024-01-01T00-00-00.000001.jsonl"
    bad.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"one \[log-likelihood, is_greedy\] pair per option \(4 options\)"):
        read_lm_eval(bad, reference, item_field="qid", model="m")
