"""Students next to the evaluators: which scorer a registry serves, and the agreement floor.

    location = scorer_location("runs/x", "student", student="student", min_agreement=0.95)
    # -> "runs/x/students/student", after printing its agreement; refused below the floor

A student (`valuecsv-ray distill`) is an ordinary multi-label registry in REGISTRY/students/NAME
whose manifest records the registry it was distilled from (`config.teacher_registry_id`) and, per
value, its agreement with that ensemble on held-out text (`agreement.decision`, `mean_abs_dp`) and
its gold metrics beside the ensemble's (`metrics`, `ensemble_metrics`). Serving, scoring and the
audit take `evaluators: ensemble | student` (`config.EvaluatorChoice`); this module turns the
choice into the registry location the engine loads, so the scoring path is the same for both.
"""

from __future__ import annotations

import logging

from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.registry.manifest import Registry, RegistryError, load_registry
from valuecsv_ray.storage import join

log = logging.getLogger(__name__)

STUDENTS = "students"  # REGISTRY/students/NAME
EVALUATOR_CHOICES = ("ensemble", "student")


class StudentRefused(ValuecsvError, ValueError):
    """A student below the agreement floor, or distilled from another version of its registry."""


def student_location(registry: str, name: str) -> str:
    """REGISTRY/students/NAME (a folder or a URI, as `registry`)."""
    return join(registry, STUDENTS, name)


def agreements(manifest: dict) -> dict[str, float]:
    """Decision agreement with the ensemble on held-out text, per value (empty: not a student)."""
    return {v: ev["agreement"]["decision"] for v, ev in manifest["evaluators"].items()
            if isinstance(ev.get("agreement"), dict) and ev["agreement"].get("decision") is not None}


def student_summary(manifest: dict) -> str:
    """One line: the lowest and mean agreement, the student's and the ensemble's gold macro F1."""
    agree = agreements(manifest)
    evs = manifest["evaluators"].values()
    f1 = [ev["metrics"]["f1"] for ev in evs]
    f1_ens = [ev["ensemble_metrics"]["f1"] for ev in evs if ev.get("ensemble_metrics")]
    worst = min(agree, key=agree.get)
    return (f"agreement with the ensemble on held-out text: min {agree[worst]:.3f} ({worst}), mean "
            f"{sum(agree.values()) / len(agree):.3f}; gold macro F1 {sum(f1) / len(f1):.3f} (ensemble "
            f"{sum(f1_ens) / max(len(f1_ens), 1):.3f}); backbone {manifest.get('backbone')}")


def check_student(student: Registry, min_agreement: float, teacher: Registry | None = None) -> str:
    """The student's summary line; StudentRefused when a value's agreement is below
    `min_agreement`, when it records none, or when `teacher` is not the registry it learned from."""
    agree = agreements(student.manifest)
    if set(agree) != set(student.manifest["values"]):
        raise StudentRefused(f"{student.path} records no agreement with an ensemble for "
                             f"{sorted(set(student.manifest['values']) - set(agree))}: not a student "
                             "made by `valuecsv-ray distill`")
    taught_by = student.manifest["config"].get("teacher_registry_id")
    if teacher is not None and taught_by != teacher.registry_id:
        raise StudentRefused(f"{student.path} was distilled from {taught_by}, but the registry is now "
                             f"{teacher.registry_id} (retrained?): distil it again")
    below = {v: a for v, a in agree.items() if a < min_agreement}
    if below:
        listed = ", ".join(f"{v} {a:.3f}" for v, a in sorted(below.items(), key=lambda x: x[1]))
        raise StudentRefused(f"student {student.path} agrees with its ensemble below the floor "
                             f"{min_agreement} for {listed}; use evaluators: ensemble, distil a better "
                             "student, or lower min_agreement")
    return student_summary(student.manifest)


def scorer_location(registry: str, evaluators: str, student: str = "student",
                    min_agreement: float = 0.95) -> str:
    """The registry location the engine loads for `evaluators`: the registry itself ('ensemble'),
    or its student (checked against the floor, its agreement logged)."""
    if evaluators not in EVALUATOR_CHOICES:
        raise ValueError(f"evaluators must be one of {EVALUATOR_CHOICES}, got {evaluators!r}")
    if evaluators == "ensemble":
        return registry
    location = student_location(registry, student)
    try:
        chosen = load_registry(location)
    except RegistryError as e:
        raise StudentRefused(f"registry {registry} has no usable student {student!r}: {e}. Make one with "
                             f"`valuecsv-ray distill --registry {registry} --name {student}`") from e
    line = check_student(chosen, min_agreement, load_registry(registry))
    log.warning("scoring with student %s (%s): %s", student, chosen.registry_id, line)
    return location
