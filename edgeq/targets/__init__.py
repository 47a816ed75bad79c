"""Accelerator target profiles (targets/*.toml) and `edgeq check`: where each op of a model runs."""

from edgeq.targets.check import CheckResult, OpResult, Reason, check
from edgeq.targets.profile import Profile, Rule, Target, profiles, resolve

__all__ = ["CheckResult", "OpResult", "Profile", "Reason", "Rule", "Target", "check", "profiles", "resolve"]
