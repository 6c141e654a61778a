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
# # Auditing a published claim end to end
#
# Rystrøm et al. (2025) told gemma-2-27b-it that its respondents come from a country and compared
# steering toward countries that speak the prompt language (*congruent*) with steering toward
# countries that do not (*incongruent*), using the Spearman correlation between the model's and the
# humans' pro-scores. The claim to audit: **congruent steering aligns the model better than
# incongruent steering.** We test it per prompt language, with a paired item bootstrap and sign flips
# within item, and then audit a "model A is closer than model B" claim over every specification.

# %%
import matplotlib.pyplot as plt

import robustalign.plots as rp
from robustalign.claims import assess_steerability, audit_claim
from robustalign.claims.multiverse import Claim
from robustalign.datasets import load_multicultural_alignment

data = load_multicultural_alignment()
data.steering

# %% [markdown]
# ## The published comparison, with intervals
#
# The published analysis used the steering file's own ground truth; here the contract form against
# the country table is used (see the loader's docstring for the difference).

# %%
cmp = assess_steerability(data.steering, data.reference_country, baseline=None, by=["model", "language"],
                          metric="spearman", compare=("congruent", "congruent", "incongruent"),
                          n_resamples=1000, n_permutations=1000, rng=0)
print(cmp.summary())

# %%
cmp.to_frame()[["language", "quantity", "estimate", "conf_low", "conf_high", "p_value", "p_adjusted"]]

# %%
rp.plot_steering_gains(cmp)
plt.show()

# %% [markdown]
# The difference is clear in one language and inconclusive in the others; each inconclusive line
# states how many items would be needed to detect the observed difference at 80% power.

# %% [markdown]
# ## A "closer" claim over every specification
#
# "gpt-4o is closer to English-speaking respondents than gemma-2-27b-it" rests on one prompt language,
# one metric and one way of averaging. `audit_claim` evaluates it under all of them and tests it
# jointly.

# %%
claim = Claim.closer("gpt-4o", than="gemma-2-27b-it", group="en")
audit = audit_claim(data.responses, data.reference_language, claim, n_resamples=1000, n_permutations=1000, rng=0)
print(audit.summary())

# %%
rp.plot_specification_curve(audit)
plt.show()

# %%
audit.to_frame().sort_values("estimate").head()
