"""Held-out quality of a training run: Recall@10 and nDCG@10 of the algorithm as configured.

Before a run publishes, a bounded random sample of users (at most MAX_USERS among those
with MIN_ITEMS or more liked tracks) hides a random fifth of their liked tracks; the same
algorithm is fitted on everything else and ranks the whole catalog for each sampled
user, their remaining tracks excluded (offline_eval's metrics, binary relevance).

Cost: one more fit on nearly the same data, so a run takes about twice as long; ranking
the sampled users is small next to it (a few hundred sparse rows). The figure describes
the algorithm on today's data, not the published model itself, which saw the hidden
tracks too: the usual price of an honest hold-out.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from services.recommend import fitting
from services.recommend.collaborative import PER_MEMBER, evidence, normalised_top
from services.recommend.events import Engagement
from services.recommend.model import ALS, PublishedModel
from services.recommend.offline_eval import evaluate, top_n

MAX_USERS = 500
MIN_ITEMS = 5
HELD_OUT_FRACTION = 0.2
TOP_N = 10
SEED = 2011


def holdout_quality(engagements: list[Engagement], algorithm: str,
                    max_users: int = MAX_USERS) -> dict[str, float]:
    """{"recall_at_10", "ndcg_at_10", "users"}; empty when no user has enough history."""
    train, test = _split(engagements, max_users)
    if not test:
        return {}
    model = fitting.fit(train, algorithm, "holdout")
    ranked = _rank(model, train, sorted(test))
    scores = evaluate(ranked, test, len(model.manifest.track_ids), k=TOP_N)
    return {"recall_at_10": scores.recall, "ndcg_at_10": scores.ndcg,
            "users": float(scores.users)}


def _split(engagements: list[Engagement],
           max_users: int) -> tuple[list[Engagement], dict[str, set[str]]]:
    liked: dict[str, list[str]] = defaultdict(list)
    for e in engagements:
        if e.value > 0 and not e.disliked:
            liked[e.user_id].append(e.track_id)
    eligible = sorted(u for u, tracks in liked.items() if len(tracks) >= MIN_ITEMS)
    rng = np.random.default_rng(SEED)
    if len(eligible) > max_users:
        eligible = sorted(rng.choice(eligible, max_users, replace=False).tolist())
    test: dict[str, set[str]] = {}
    for user in eligible:
        tracks = sorted(liked[user])
        held = max(1, round(len(tracks) * HELD_OUT_FRACTION))
        test[user] = {tracks[i] for i in rng.permutation(len(tracks))[:held]}
    train = [e for e in engagements if e.track_id not in test.get(e.user_id, ())]
    return train, test


def _rank(model: PublishedModel, train: list[Engagement],
          users: list[str]) -> dict[str, list[str]]:
    """Each user's top N the way collaborative.py combines members (its own function):
    every member's scores over its best (top PER_MEMBER kept), weighted."""
    manifest = model.manifest
    index = {t: i for i, t in enumerate(manifest.track_ids)}
    user_row = {u: i for i, u in enumerate(model.user_ids)}
    history: dict[str, list[Engagement]] = defaultdict(list)
    for e in train:
        history[e.user_id].append(e)
    ranked = {}
    for user in users:
        seen = [index[e.track_id] for e in history[user]]
        positives = [e for e in history[user] if e.value > 0 and not e.disliked]
        total = np.zeros(len(index))
        for member, weight in manifest.members.items():
            if member == ALS:
                assert model.user_factors is not None and model.item_factors is not None
                scores = model.item_factors @ model.user_factors[user_row[user]]
            else:
                scores = np.zeros(len(index))
                rows = model.neighbours.get(member)
                if rows is not None:
                    for e in positives:
                        row = rows.getrow(index[e.track_id])
                        scores[row.indices] += row.data * evidence(member, e.value)
            total += weight * normalised_top(scores, set(seen), PER_MEMBER)
        ranked[user] = [manifest.track_ids[i] for i in top_n(total, seen, TOP_N)
                        if total[i] > 0]
    return ranked

