"""The rig file's ``search:`` section: every tunable of the search loop, validated.

Defaults suit the embedded simulated rig; each value names its unit. Errors
name the rig file and the key (``search.planner.batch_views``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foveate.system.errors import ConfigError

#: Default F(segmentation class, target class): how likely a pixel of each segmentation class (DDD17's six
#: classes) shows a target of each class. A pixel labelled as the target's own class scores 1; ground scores
#: about the share of ground that targets cover (so a footprint of bare ground is worth far less than one
#: with a target in it), sky almost nothing.
DEFAULT_PRIOR: dict[str, dict[str, float]] = {
    "human": {"flat": 0.005, "construction+sky": 0.0002, "object": 0.002, "nature": 0.001, "human": 1.0, "vehicle": 0.05},
    "vehicle": {"flat": 0.005, "construction+sky": 0.0001, "object": 0.001, "nature": 0.0005, "human": 0.05, "vehicle": 1.0},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PPMSettings(_Strict):
    cell_deg: float = Field(0.2, gt=0, description="grid cell, mechanical degrees")
    refresh_hz: float = Field(10.0, gt=0, description="segmentation refresh rate of the map")
    source: Literal["auto", "events", "frames"] = "auto"
    prior: dict[str, dict[str, float]] = Field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_PRIOR.items()},
                                               description="F(class, target): target -> {segmentation class: weight}")
    visit_floor: float = Field(0.05, ge=0, le=1, description="map weight left in a region just searched")
    visit_return_s: float = Field(1.5, gt=0, description="time constant of mass returning to a searched region")
    track_explain: float = Field(0.95, ge=0, le=1, description="share of map mass a confirmed track explains")
    evidence_weight: float = Field(0.5, ge=0, description="peak weight of a tentative/lost track's Gaussian evidence")


class PlannerSettings(_Strict):
    batch_views: int = Field(12, ge=1, description="views planned per round")
    replan_after: int = Field(4, ge=1, description="replan after this many views or on new information")
    sampling: Literal["sample", "greedy"] = "sample"
    sharpness: float = Field(2.0, gt=0, description="views are drawn with probability ~ mass^sharpness")
    min_value_frac: float = Field(0.1, ge=0, lt=1, description="candidates worth less than this share of the best are not drawn")
    explore_min_value: float = Field(0.3, ge=0, description="below this footprint mass, spare views revisit tracks instead")
    min_revisit_gap_s: float = Field(0.05, ge=0, description="spare revisits skip tracks looked at more recently")
    overlap: float = Field(0.15, ge=0, lt=1, description="allowed footprint overlap between views of one round")
    revisit_sigma_frac: float = Field(0.6, gt=0, description="revisit a track once its 1-sigma exceeds this share of the half footprint")
    revisit_max_s: float = Field(0.5, gt=0, description="revisit a confirmed track at least this often")
    max_revisit_share: float = Field(0.35, gt=0, le=1, description="at most this share of a round goes to revisits")
    window_sigma: float = Field(2.0, gt=0, description="sampling window of a track = this many sigma of its prediction")
    max_window_views: int = Field(2, ge=1, description="views spent on one uncertain track per round")
    two_opt: bool = True


class TrackerSettings(_Strict):
    gate_chi2: float = Field(9.21, gt=0, description="Mahalanobis gate (chi2, 2 dof; 9.21 = 99%)")
    accel_deg_s2: float = Field(4.0, gt=0, description="process noise: RMS target acceleration, command deg/s^2")
    init_speed_deg_s: float = Field(3.0, gt=0, description="1-sigma speed of a new track, command deg/s")
    confirm_hits: int = Field(2, ge=1)
    confirm_score: float = Field(0.8, ge=0, le=1, description="a track born from a detection this sure is confirmed at once")
    max_misses: int = Field(3, ge=1, description="looks in a row without a detection before a track is dropped")
    timeout_s: float = Field(2.0, gt=0, description="drop a track not seen for this long")
    min_score: float = Field(0.3, ge=0, le=1, description="detections below this score are ignored")
    galvo_sigma_deg: float = Field(0.001, ge=0, description="pointing noise added to each measurement")
    merge_chi2: float = Field(4.0, gt=0, description="merge two tracks of one class closer than this")


class GalvoModelSettings(_Strict):
    """Travel-time model of the mirror, the planner's cost (defaults: the twin's galvo)."""

    slew_deg_s: float = Field(4000.0, gt=0)
    accel_deg_s2: float = Field(4.0e7, gt=0)
    settle_s: float = Field(5e-4, ge=0, description="settling after the reference arrives")


class StageSettings(_Strict):
    queue: int = Field(2, ge=1, description="bounded input queue of the stage")
    drop: Literal["oldest", "newest"] = Field("oldest", description="when full: drop the oldest waiting item (newest wins) or refuse the new one")
    latency_s: float | None = Field(None, ge=0, description="simulated clock: time the stage takes (None: measured compute time)")
    parallel: bool = Field(False, description="simulated clock, fixed latency: compute in a worker thread (a second core)")


class SchedulerSettings(_Strict):
    fire: Literal["settled", "trigger", "model"] = Field("settled", description="when the search camera fires")
    settle_timeout_s: float = Field(0.05, gt=0)
    deadline_s: float = Field(1 / 120, gt=0, description="a frame's detections are due this long after its exposure")
    wide_hz: float | None = Field(None, gt=0, description="wide-camera reads per second (None: its frame rate)")
    detect: StageSettings = StageSettings(latency_s=0.002, parallel=True)
    segment: StageSettings = StageSettings(queue=1, latency_s=0.01, parallel=True)


class SearchSettings(_Strict):
    ppm: PPMSettings = PPMSettings()
    planner: PlannerSettings = PlannerSettings()
    tracker: TrackerSettings = TrackerSettings()
    galvo_model: GalvoModelSettings = GalvoModelSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    seed: int = 0


def parse_search_settings(data: dict | None, source: str = "<memory>") -> SearchSettings:
    """Validate the ``search:`` section of a rig file (``{}`` gives the defaults)."""
    from foveate.system.config import format_validation_error

    try:
        return SearchSettings.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc, SearchSettings, prefix=("search",))) from None
