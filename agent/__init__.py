"""interestlens.agent: the typed core (models, settings, stages) and the `InterestAgent` entry object."""

from interestlens.agent.config import Settings
from interestlens.agent.models import (
    Candidate,
    EvidenceSpan,
    Explanation,
    Intent,
    Interaction,
    InterestProfile,
    Item,
    ObserveResult,
    Polarity,
    Recommendation,
    RecommendationResult,
    SourceText,
    SubInterest,
    Topic,
)
from interestlens.agent.service import InterestAgent

__all__ = [
    "Candidate", "EvidenceSpan", "Explanation", "Intent", "Interaction", "InterestAgent", "InterestProfile",
    "Item", "ObserveResult", "Polarity", "Recommendation", "RecommendationResult", "Settings", "SourceText",
    "SubInterest", "Topic",
]
