# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Quick start: alignment with error bars on the bundled data
#
# Nine language models answered 32 World Values Survey items in four prompt languages (Rystrøm et al.
# 2025). We ask how close each model's answers are to the human answers of its prompt language, and
# how sure we can be of the ranking of models. Every number comes with an interval: items are a sample
# of the questions one could have asked, so they are resampled.

# %%
import matplotlib.pyplot as plt

import robustalign.plots as rp
from robustalign.datasets import load_multicultural_alignment
from robustalign.scoring import alignment

data = load_multicultural_alignment()
data.responses

# %% [markdown]
# Nothing is dropped silently: rows without a human reference are counted with their reason.

# %%
data.responses.exclusions.to_frame()

# %% [markdown]
# ## Alignment per model and language
#
# `alignment()` returns a `BootstrapResult`; `to_frame()` gives tidy estimates with intervals.

# %%
res = alignment(data.responses, data.reference_language, metric="spearman", against="language",
                n_resamples=1000, rng=0)
res.to_frame().head()

# %%
rp.plot_alignment_forest(res, xlabel="Spearman alignment")
plt.show()

# %% [markdown]
# ## Which model is closest? Ranks with rank intervals
#
# A leaderboard hides how often the order would change with other items. Rank intervals and the
# probability of rank 1 say it directly.

# %%
ranks = res.ranks(within="group")
ranks.sort_values(["group", "rank"]).groupby("group").head(3)

# %%
rp.plot_rank_caterpillar(res)
plt.show()

# %%
rp.plot_flip_heatmap(res, group="en")
plt.show()

# %% [markdown]
# ## The whole audit in one call
#
# `run_example_audit()` is what `robustalign audit --example` runs: alignment, stability across prompt
# language, extrapolability across survey blocks, claims over every specification, and the steering
# experiment. Its verdicts come first, in words.

# %%
from robustalign.report import run_example_audit

report = run_example_audit(rng=0, n_resamples=300, n_permutations=300)
print(report.summary()[:3000])

# %%
report.verdicts["verdict"].value_counts()
