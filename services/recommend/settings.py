"""Recommend settings, from CADENZA_RECOMMEND_* environment variables (and QDRANT_URL)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from cadenza.kit.settings import ServerSettings


class RecommendSettings(ServerSettings):
    """The recommend service's settings (CADENZA_RECOMMEND_*)."""

    model_config = SettingsConfigDict(env_prefix="CADENZA_RECOMMEND_")

    port: int = Field(default=50053, ge=0, le=65535)
    metrics_port: int = Field(default=9093, ge=-1, le=65535)
    # This service's own data (event log, model collections); only this process opens it.
    data_dir: str = ".data/recommend"
    # The retrieval service: catalog lookups and content similarity.
    retrieval_address: str = "127.0.0.1:50052"
    # A Qdrant server for the model collections instead of the embedded store.
    qdrant_url: str = Field(default="", validation_alias=AliasChoices(
        "QDRANT_URL", "CADENZA_RECOMMEND_QDRANT_URL"))
    qdrant_api_key: str = Field(default="", validation_alias=AliasChoices(
        "QDRANT_API_KEY", "CADENZA_RECOMMEND_QDRANT_API_KEY"))
    # Event timestamps may run this far ahead of the server clock (client skew).
    max_clock_skew_s: float = Field(default=300.0, ge=0)
    # Retrain the collaborative model this often when new events arrived; 0 = never.
    retrain_interval_s: float = Field(default=3600.0, ge=0)
    # Users sampled for each run's held-out quality figure (cadenza_recommend_model_quality).
    # It costs one more fit per run (about 2x the run time); 0 = skip it.
    holdout_users: int = Field(default=500, ge=0)
    # Collaborative algorithm that scheduled runs and TrainModel without one use.
    default_algorithm: str = "ensemble"
    # Serve the collaborative model's item rows and factors from memory (about 100 MB at
    # Last.fm scale with the ensemble) instead of a store read per request.
    model_in_memory: bool = True
    # Keep a copy of the catalogue's vectors for the content signal instead of an example
    # search in retrieval per request; it is copied again when retrieval's revision
    # changes (checked this often, seconds) and at every publish.
    content_in_memory: bool = True
    content_refresh_s: float = Field(default=30.0, gt=0)
    # Recent lists kept and served again while the request, the user's engagements, the
    # model version and the catalogue copy's revision are all unchanged; 0 = none.
    cached_lists: int = Field(default=20_000, ge=0)
    # After a publish or a catalogue change, the default lists of at most this many
    # active users (engagements held in memory, most recent first) are computed ahead,
    # one between serving calls, so their next call is a cache hit; 0 = none.
    warm_lists: int = Field(default=20_000, ge=0)
    # How often the warmer checks the model version and the catalogue revision, and the
    # most of the process's time a warm round may take.
    warm_check_s: float = Field(default=5.0, gt=0)
    warm_share: float = Field(default=0.5, gt=0, le=1)
    # Also compute a user's default list again right after their new events are stored,
    # when they asked for a list lately, so the call after a like is a cache hit when it
    # comes a few tens of ms later (paced by warm_share only in a bulk import; only while
    # warm_lists > 0).
    refresh_after_events: bool = True
    # Users whose engagements are kept in memory after a read (dropped at their next
    # event), so a call for a user with nothing new skips the event store; 0 = none.
    cached_histories: int = Field(default=20_000, ge=0)
