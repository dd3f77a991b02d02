"""Labeling writes, one module per concept: volunteers, serving galaxies (standards, assignments, priority),
votes, consensus, surveys. Reads live in labeling.selectors.
"""

from labeling.services.consensus import (
    consensus_recompute_run,
    consensus_recompute_total,
    consensus_update,
    galaxy_posterior_get,
    galaxy_priority_refresh,
    model_state,
)
from labeling.services.serving import (
    ALL_DEGREES,
    GOLD_RATES,
    GRID_MAX,
    GRID_MIN,
    GRID_TOLERANCE,
    STEP1_DEGREES,
    assignment_next,
    assignment_reshuffle,
    galaxy_color_image_set,
    galaxy_prediction_record,
    gold_rate,
    standards_draw,
)
from labeling.services.surveys import ADAPTATION_PRIORITY, get_survey, mark_needs_adaptation, reference_survey
from labeling.services.volunteers import (
    volunteer_profile_get,
    volunteer_profile_update,
    volunteer_register,
    volunteer_tutorial_done,
)
from labeling.services.votes import CheckedVote, gold_error, vote_check, vote_submit

__all__ = [
    "volunteer_profile_get",
    "volunteer_register",
    "volunteer_profile_update",
    "volunteer_tutorial_done",
    "GRID_MIN",
    "GRID_MAX",
    "STEP1_DEGREES",
    "ALL_DEGREES",
    "GRID_TOLERANCE",
    "GOLD_RATES",
    "standards_draw",
    "gold_rate",
    "assignment_next",
    "assignment_reshuffle",
    "galaxy_priority_refresh",
    "galaxy_prediction_record",
    "galaxy_color_image_set",
    "CheckedVote",
    "vote_check",
    "vote_submit",
    "gold_error",
    "consensus_update",
    "galaxy_posterior_get",
    "model_state",
    "consensus_recompute_total",
    "consensus_recompute_run",
    "ADAPTATION_PRIORITY",
    "reference_survey",
    "get_survey",
    "mark_needs_adaptation",
]
