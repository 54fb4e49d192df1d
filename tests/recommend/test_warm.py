"""ListWarmer's pacing, over a stand-in recommender whose lists cost nothing."""

from __future__ import annotations

from services.recommend.warm import BULK_USERS, ListWarmer


class _EveryoneAsked:
    """Every user asked for a list lately; lists are never cached (no catalogue copy)."""

    def __init__(self) -> None:
        self.computed: list[str] = []

    def asked_lately(self, user_id: str) -> bool:
        return True

    def list_state(self) -> None:
        return None

    async def recommend(self, user_id: str, ahead: bool = False) -> None:
        assert ahead
        self.computed.append(user_id)


async def test_a_few_refreshes_go_at_once_and_a_bulk_import_is_paced() -> None:
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    lists = _EveryoneAsked()
    warmer = ListWarmer(lists, None, lambda user: user,  # type: ignore[arg-type]
                        max_users=1000, check_s=3600.0, share=0.5, pause=pause)
    warmer.touched({f"u{i}" for i in range(5)})
    assert await warmer.refresh() == 5
    assert pauses == []  # listeners liking tracks: each list at once
    warmer.touched({f"u{i}" for i in range(BULK_USERS + 50)})
    assert await warmer.refresh() == BULK_USERS + 50
    # Paced while more than BULK_USERS waited, then at once again.
    assert len(pauses) == 50 and all(p >= 0 for p in pauses)
    assert len(lists.computed) == BULK_USERS + 55


async def test_the_queue_keeps_the_latest_users_up_to_the_bound() -> None:
    lists = _EveryoneAsked()
    warmer = ListWarmer(lists, None, lambda user: user,  # type: ignore[arg-type]
                        max_users=3, check_s=3600.0)
    for user in ("a", "b", "c", "a", "d"):
        warmer.touched({user})
    assert await warmer.refresh() == 3
    assert lists.computed == ["c", "a", "d"]  # b, the oldest touched, was dropped
