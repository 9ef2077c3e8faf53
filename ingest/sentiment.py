"""Headline sentiment: the VADER compound score, computed once at ingest and stored with the article."""

from __future__ import annotations

from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def sentiment_text(title: str, summary: str | None) -> str:
    """The text that is scored: the title, then the summary on its own line when there is one."""
    title = title.strip()
    summary = (summary or "").strip()
    return f"{title}\n{summary}" if summary else title


def score(title: str, summary: str | None = None) -> float:
    """VADER compound score in [-1, 1] (rounded to 4 decimals by VADER) of the title and summary.

    Deterministic and offline: the lexicon ships with the vaderSentiment package."""
    value = float(_analyzer().polarity_scores(sentiment_text(title, summary))["compound"])
    return max(-1.0, min(1.0, value))
