"""Target profiles read from targets/<name>.toml: data, so that a new accelerator is a new file. A target
spec on the command line names a profile and, where the profile has them, an API level or a variant:
`nnapi:29`, `hexagon:legacy`."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as the tomli package
    import tomli as tomllib

from edgeq.errors import PlanError
from edgeq.targets.schema import COMMON_FIELDS, validate

PROFILE_DIR = Path(__file__).resolve().parents[2] / "targets"


@dataclass(frozen=True)
class Rule:
    """One constraint: which ops it applies to, the condition kind with its parameters, and its source."""

    id: str
    kind: str
    message: str
    source: str
    ops: tuple[str, ...] = ()  # empty: every op
    except_ops: tuple[str, ...] = ()
    min_level: int | None = None
    max_level: int | None = None
    variants: tuple[str, ...] = ()
    effect: str = "cpu"
    params: dict = field(default_factory=dict)  # the kind's parameters and the if_* / when_options filters

    def applies(self, op_kind: str, level: int | None, variant: str | None) -> bool:
        """Whether this rule concerns an op of this kind at the target's level or variant."""
        if (self.ops and op_kind not in self.ops) or op_kind in self.except_ops:
            return False
        return self.applies_at(level) and (not self.variants or variant in self.variants)

    def applies_at(self, level: int | None) -> bool:
        """Whether the rule holds at this API level (always, for profiles without levels)."""
        return level is None or ((self.min_level is None or level >= self.min_level)
                                 and (self.max_level is None or level <= self.max_level))


@dataclass(frozen=True)
class Partition:
    """How the runtime turns per-op support into delegated partitions."""

    kind: str  # single_cut | largest | all | runtime
    message: str
    source: str
    max_partitions: int = 0
    min_ops: int = 1
    variants: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    """One accelerator's rules, as its file states them."""

    name: str
    title: str
    accelerator: str  # what "accelerator" placement is called in text (e.g. "Edge TPU", "NE likely")
    cpu: str  # what "cpu" placement is called
    summary: str
    rules: tuple[Rule, ...]
    partitions: tuple[Partition, ...]
    path: Path
    levels: tuple[int, ...] = ()
    default_level: int | None = None
    variants: tuple[str, ...] = ()
    default_variant: str | None = None
    device_only: bool = False


@dataclass(frozen=True)
class Target:
    """A profile at one level or variant: what `check` evaluates."""

    profile: Profile
    level: int | None = None
    variant: str | None = None

    @property
    def spec(self) -> str:
        """The canonical name, e.g. 'nnapi:29', 'hexagon:htp', 'edgetpu'."""
        suffix = self.level if self.level is not None else self.variant
        return self.profile.name if suffix is None else f"{self.profile.name}:{suffix}"

    @property
    def rules(self) -> list[Rule]:
        return [r for r in self.profile.rules if not r.variants or self.variant in r.variants]

    @property
    def partition(self) -> Partition:
        for p in self.profile.partitions:
            if not p.variants or self.variant in p.variants:
                return p
        raise PlanError(f"{self.profile.path}: no [[partition]] applies to {self.spec}")

    def plan_constraints(self) -> list[Rule]:
        """The rules a quantization plan can satisfy (types, weight encodings, shapes) rather than the
        graph's op choice: what target-aware conversion would have to honour at this level or variant."""
        return [r for r in self.rules if r.kind in PLAN_KINDS and r.applies_at(self.level)]


PLAN_KINDS = frozenset({
    "dtype", "weight_granularity", "weight_zero_point", "weight_scales_normal", "weight_inner_even",
    "blockwise_dtype", "block_size_multiple", "scale_product_below_output", "bias_scale", "static_shape",
    "outer_dims_one", "max_rank",
})


def load_profile(path: str | Path) -> Profile:
    """Read and validate one profile file; a malformed file is a PlanError listing every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise PlanError(f"{path}: cannot read target profile ({e})") from e
    errors = validate(raw, str(path))
    if errors:
        raise PlanError("invalid target profile:\n  " + "\n  ".join(errors))
    t = raw["target"]
    rules = tuple(_rule(r) for r in raw.get("rule", []))
    partitions = tuple(
        Partition(kind=p["kind"], message=p["message"], source=p["source"], max_partitions=p.get("max_partitions", 0),
                  min_ops=p.get("min_ops", 1), variants=tuple(p.get("variants", ())))
        for p in raw["partition"]
    )
    return Profile(
        name=t["name"], title=t["title"], accelerator=t["accelerator"], cpu=t.get("cpu", "CPU"), summary=t["summary"],
        rules=rules, partitions=partitions, path=path, levels=tuple(t.get("levels", ())),
        default_level=t.get("default_level"), variants=tuple(t.get("variants", ())),
        default_variant=t.get("default_variant"), device_only=t.get("device_only", False),
    )


def _rule(r: dict) -> Rule:
    params = {k: v for k, v in r.items() if k not in COMMON_FIELDS or k.startswith(("if_", "when_"))}
    return Rule(
        id=r["id"], kind=r["kind"], message=r["message"], source=r["source"], ops=tuple(r.get("ops", ())),
        except_ops=tuple(r.get("except_ops", ())), min_level=r.get("min_level"), max_level=r.get("max_level"),
        variants=tuple(r.get("variants", ())), effect=r.get("effect", "cpu"), params=params,
    )


@functools.cache
def profiles(directory: Path = PROFILE_DIR) -> dict[str, Profile]:
    """Every profile in the directory, by its [target] name."""
    out: dict[str, Profile] = {}
    for path in sorted(directory.glob("*.toml")):
        p = load_profile(path)
        if p.name in out:
            raise PlanError(f"{path}: target name {p.name!r} is also used by {out[p.name].path}")
        out[p.name] = p
    return out


def resolve(spec: str, directory: Path = PROFILE_DIR) -> Target:
    """'edgetpu', 'nnapi', 'nnapi:27', 'hexagon:legacy', 'coreml-ane' -> a Target; unknown names and levels
    are PlanErrors that list what exists."""
    name, _, suffix = spec.strip().partition(":")
    known = profiles(directory)
    if name not in known:
        raise PlanError(f"unknown target {name!r}; profiles in {directory}: {', '.join(sorted(known))}")
    p = known[name]
    if p.levels:
        if not suffix:
            return Target(p, level=p.default_level)
        if not suffix.isdigit() or int(suffix) < min(p.levels):
            raise PlanError(f"target {spec!r}: the level must be an integer >= {min(p.levels)} "
                            f"(levels with their own rules: {', '.join(map(str, p.levels))})")
        return Target(p, level=int(suffix))
    if p.variants:
        if suffix and suffix not in p.variants:
            raise PlanError(f"target {spec!r}: variants of {name} are {', '.join(p.variants)}")
        return Target(p, variant=suffix or p.default_variant)
    if suffix:
        raise PlanError(f"target {spec!r}: {name} has no levels or variants")
    return Target(p)
