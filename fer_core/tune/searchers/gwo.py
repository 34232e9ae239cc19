"""Grey Wolf Optimizer as an Optuna sampler (004 Table 16; Mirjalili et al. 2014).

004 ("Analysis of hyperparameter") tunes the fine-tuning learning-rate trio (max lr, min lr,
warm-up lr) with GWO [85] and reports 1.23e-4, 3.29e-5, 3.69e-5 (Table 16). This module implements GWO once, as an
``optuna.samplers.BaseSampler``: plain Optuna uses it directly, Ray Tune reaches it through
``OptunaSearch(sampler=GWOSampler(...))``, and the study runner through ``algorithm: gwo``.

Canonical update (Mirjalili 2014, Eqs. 3.1-3.7), per dimension, for the leaders
k in (alpha, beta, delta) = the three best trials evaluated so far::

    a   = 2 - 2 t / T                 (decreases linearly from 2 towards 0)
    A_k = 2 a r1_k - a,   C_k = 2 r2_k,   r1_k, r2_k ~ U[0, 1)
    D_k = |C_k X_k - X|,  X'_k = X_k - A_k D_k
    X(t + 1) = (X'_alpha + X'_beta + X'_delta) / 3, clipped to the bounds

Population and generations. Trial number ``n`` is wolf ``n % population_size`` in generation
``n // population_size``. Generation 0 is the random initial pack (uniform positions); wolf ``i``
of generation ``g >= 1`` moves from its own position in generation ``g - 1`` (trial
``n - population_size``) with ``t = g - 1`` and ``T = n_generations`` (or
``ceil(n_trials / population_size)``). As in Mirjalili's reference code the evaluated generations
use ``a`` from 2 down to ``4 / T``; beyond the budget ``t`` stays at ``T - 1`` (``a = 2 / T``) so
that late wolves still move instead of collapsing onto the leaders' mean.

Coordinates. Every parameter becomes a wolf coordinate ``z`` in [-1, 1], with 0 at the centre of
its range: floats linearly, ``log=True`` floats and ints in log space, ints and stepped floats
over ``[low - step/2, high + step/2]`` then rounded (equal-width bins, as Optuna's RandomSampler),
categoricals as positions over category indices (``k`` equal-width bins of [-1, 1]). The wolf keeps
its continuous ``z`` (stored in the trial's system attrs) so small moves are not lost to rounding.
GWO's update is not translation invariant: ``C X_k`` pulls leaders towards the coordinate
origin. Putting the origin at the centre of the range makes that pull neutral (towards the middle,
not towards a bound); on a range symmetric around 0 (e.g. the sphere on [-5, 5]) the coordinates
are the raw values scaled, and the update is exactly the canonical one (it is scale-equivariant).

Parallel trials: a steady-state (asynchronous) variant, no generation barrier. A move needs the
wolf's previous position, which is known as soon as that trial was asked, and the leaders, which
are the three best trials *evaluated by the time of the ask*. So a worker never waits, and
ask/tell interleaving from one thread (Ray Tune's ``OptunaSearch`` asks on the driver thread,
where a blocking barrier would deadlock) works. With one worker this is canonical GWO with the
leaders refreshed after every evaluation instead of once per generation; with ``c`` workers the
leaders lag by at most ``c - 1`` evaluations. Every score stays attached to the wolf that produced
it because a wolf *is* a trial: its position, wolf id, generation, ``a`` and the trial numbers of
the leaders it followed are written to the trial's system attrs when it is asked
(:func:`gwo_record` reads them back; a copy of the wolf record goes to the user attr ``gwo``,
which optuna-dashboard lists).

Failures and early stops: FAIL trials (and PRUNED ones unless ``use_pruned=True``) never lead;
their wolf still moves on from the position it had. With no leader yet (everything failed), a wolf
is re-drawn uniformly. Enqueued trials (``study.enqueue_trial``) are wolves too, at their params.

Resume and reproducibility: the random numbers of trial ``n``'s parameter ``p`` come from
``numpy.random.default_rng([seed, n, crc32(p)])``, and everything else is read from the storage,
so a new sampler on a loaded study (``--resume``) continues exactly where the old one stopped,
and the same seed gives the same trials whatever order parameters are suggested in.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
)
from optuna.samplers import BaseSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from fer_core.tune.searchers._coords import Coder

__all__ = ["GWOSampler", "coefficient_a", "gwo_record", "gwo_step", "DEFAULT_GENERATIONS"]

# Trial system attrs (few writes: a SQLite commit costs ~10 ms):
ATTR_STATE = "gwo"  # {"wolf", "generation", "a", "leaders": [trial numbers, best first]}
ATTR_Z = "gwo:z"  # {parameter: coordinate in [-1, 1]} for the parameters sampled together
ATTR_Z_ONE = "gwo:z:"  # + parameter name: coordinate of a parameter sampled on its own
DEFAULT_GENERATIONS = 10  # T when neither n_generations nor n_trials is given


def coefficient_a(t: float, n_generations: int) -> float:
    """``a = 2 - 2 t / T``: "linearly decreased from 2 to 0" (Mirjalili 2014, Sec. 3.2)."""
    return 2.0 - 2.0 * float(t) / float(n_generations)


def gwo_step(
    x: Any,
    leaders: Any,
    a: float,
    r1: Any,
    r2: Any,
    low: float | None = None,
    high: float | None = None,
) -> np.ndarray:
    """One GWO move (Mirjalili 2014, Eqs. 3.1-3.7).

    Args:
        x: the wolf's position, ``[D]``.
        leaders: ``[K, D]``, alpha, beta, delta in that order (K = 3; fewer while fewer exist).
        a: the coefficient of :func:`coefficient_a`.
        r1, r2: uniforms in [0, 1), ``[K, D]`` (rows matching ``leaders``).
        low, high: bounds to clip the new position to (none when omitted).

    Returns:
        The new position ``[D]``: mean over k of ``X_k - A_k |C_k X_k - x|``.
    """
    x = np.asarray(x, dtype=float)
    lead = np.asarray(leaders, dtype=float).reshape(-1, x.size)
    r1 = np.asarray(r1, dtype=float).reshape(lead.shape)
    r2 = np.asarray(r2, dtype=float).reshape(lead.shape)
    big_a = 2.0 * a * r1 - a  # Eq. 3.3
    big_c = 2.0 * r2  # Eq. 3.4
    dist = np.abs(big_c * lead - x)  # Eq. 3.5
    new = np.mean(lead - big_a * dist, axis=0)  # Eqs. 3.6-3.7
    if low is not None or high is not None:
        new = np.clip(new, low, high)
    return new.reshape(np.shape(x))


@dataclass
class _Context:
    """What one trial's moves use, fixed when the trial is asked."""

    number: int
    wolf: int
    generation: int
    a: float
    leaders: list[FrozenTrial] = field(default_factory=list)


class GWOSampler(BaseSampler):
    """Grey Wolf Optimizer sampler (steady-state, storage-backed; see the module docstring).

    Args:
        seed: seeds every random number (per trial and parameter); None draws one.
        population_size: wolves per generation, N >= 2 (the leaders come from every trial
            evaluated so far, not only the current pack). Mirjalili uses 30 wolves for 500
            iterations; budgets of tens of trials want 5-10.
        n_generations: T, the generations over which ``a`` falls from 2 (wins over ``n_trials``).
        n_trials: the trial budget (a study's ``num_samples``); ``T = ceil(n_trials /
            population_size)`` unless ``n_generations`` is given; neither: ``DEFAULT_GENERATIONS``.
        use_pruned: let PRUNED trials (valued by their last intermediate value) lead. Off by
            default: a run stopped early is not comparable with finished ones.
    """

    def __init__(
        self,
        seed: int | None = None,
        *,
        population_size: int = 10,
        n_generations: int | None = None,
        n_trials: int | None = None,
        use_pruned: bool = False,
    ) -> None:
        _check_int("population_size", population_size, 2)
        if n_trials is not None:
            _check_int("n_trials", n_trials, 1)
        if n_generations is not None:
            _check_int("n_generations", n_generations, 1)
            generations = int(n_generations)
        elif n_trials is not None:
            generations = max(1, math.ceil(n_trials / population_size))
        else:
            generations = DEFAULT_GENERATIONS
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"GWOSampler: seed={seed!r} is not allowed; use an int or None")
        self.population_size = int(population_size)
        self.n_generations = generations
        self.use_pruned = bool(use_pruned)
        entropy = np.random.SeedSequence().entropy if seed is None else int(seed)
        self.seed = int(entropy) & 0xFFFF_FFFF_FFFF_FFFF
        self._search_space = IntersectionSearchSpace(include_pruned=True)
        self._contexts: dict[int, _Context] = {}
        self._lock = threading.RLock()

    # -------------------------------------------------------------- pickling (Ray Tune saves it)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        state["_contexts"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def reseed_rng(self) -> None:
        """No-op: random numbers are keyed by (seed, trial number, parameter), never shared."""

    # -------------------------------------------------------------- Optuna's sampler API

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._raise_error_if_multi_objective(study)
        if not trial.state.is_finished():
            self._context(study, trial, fresh=True)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        with self._lock:
            space = self._search_space.calculate(study)
        return {k: d for k, d in space.items() if not d.single()}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        ctx = self._context(study, trial)
        prev = self._previous(study, ctx)
        zs = {name: self._move(ctx, prev, name, Coder(d)) for name, d in search_space.items()}
        study._storage.set_trial_system_attr(trial._trial_id, ATTR_Z, zs)
        return {name: Coder(d).decode(zs[name]) for name, d in search_space.items()}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        ctx = self._context(study, trial)
        coder = Coder(param_distribution)
        z = self._move(ctx, self._previous(study, ctx), param_name, coder)
        study._storage.set_trial_system_attr(trial._trial_id, ATTR_Z_ONE + param_name, z)
        return coder.decode(z)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        with self._lock:
            self._contexts.pop(trial._trial_id, None)

    # -------------------------------------------------------------- GWO state, from the storage

    def generation_of(self, number: int) -> tuple[int, int]:
        """Trial number -> (wolf id, generation)."""
        return number % self.population_size, number // self.population_size

    def a_of(self, generation: int) -> float:
        """``a`` used to move the wolves of ``generation`` (>= 1) from the previous one."""
        t = min(max(generation - 1, 0), self.n_generations - 1)
        return coefficient_a(t, self.n_generations)

    def leaders(self, study: Study, exclude: int | None = None) -> list[FrozenTrial]:
        """The three best trials evaluated so far (alpha, beta, delta), best first."""
        states = (
            (TrialState.COMPLETE, TrialState.PRUNED) if self.use_pruned else (TrialState.COMPLETE,)
        )
        done = [
            t
            for t in study._get_trials(deepcopy=False, states=states, use_cache=False)
            if t.number != exclude and t.value is not None and not math.isnan(t.value)
        ]
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        done.sort(key=lambda t: (sign * t.value, t.number))
        return done[:3]

    def _context(self, study: Study, trial: FrozenTrial, fresh: bool = False) -> _Context:
        """The trial's wolf, generation, ``a`` and leaders: cached, recorded, or chosen now.

        ``fresh``: ``trial`` was just read from the storage (before_trial); otherwise its system
        attrs may be a snapshot older than our record (sample_relative gets such a copy).
        """
        with self._lock:
            ctx = self._contexts.get(trial._trial_id)
            if ctx is not None:
                return ctx
            wolf, generation = self.generation_of(trial.number)
            attrs = trial.system_attrs
            if not fresh:
                attrs = study._storage.get_trial_system_attrs(trial._trial_id)
            recorded = attrs.get(ATTR_STATE)
            if recorded is not None:  # asked before (resume, or a Trial re-made for tell)
                by_number = {
                    t.number: t for t in study._get_trials(deepcopy=False, use_cache=False)
                }
                leaders = [by_number[n] for n in recorded["leaders"] if n in by_number]
            else:
                leaders = self.leaders(study, exclude=trial.number)
                record = {
                    "wolf": wolf,
                    "generation": generation,
                    "a": self.a_of(generation),
                    "leaders": [t.number for t in leaders],
                }
                study._storage.set_trial_system_attr(trial._trial_id, ATTR_STATE, record)
                # a copy where optuna-dashboard shows it (it lists user attrs, not system attrs)
                study._storage.set_trial_user_attr(trial._trial_id, ATTR_STATE, record)
            ctx = _Context(trial.number, wolf, generation, self.a_of(generation), leaders)
            self._contexts[trial._trial_id] = ctx
            return ctx

    def _previous(self, study: Study, ctx: _Context) -> FrozenTrial | None:
        """This wolf's trial in the previous generation, read fresh from the storage."""
        if ctx.generation == 0:
            return None
        number = ctx.number - self.population_size
        storage = study._storage
        try:
            tid = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        except KeyError:
            return None
        return storage.get_trial(tid)

    def _uniforms(self, number: int, name: str) -> np.ndarray:
        """Seven uniforms for trial ``number``'s parameter ``name``: [z0, r1 x 3, r2 x 3]."""
        rng = np.random.default_rng([self.seed, number, zlib.crc32(name.encode("utf-8"))])
        return rng.random(7)

    def _move(self, ctx: _Context, prev: FrozenTrial | None, name: str, coder: Coder) -> float:
        """The wolf's new coordinate on ``name`` (Eqs. 3.1-3.7, or a uniform draw)."""
        u = self._uniforms(ctx.number, name)
        x = _position(prev, name, coder) if prev is not None else None
        lead = [z for t in ctx.leaders if (z := _position(t, name, coder)) is not None]
        if x is None or not lead:
            z = 2.0 * u[0] - 1.0  # initial pack (or a wolf with nothing to follow)
        else:
            k = len(lead)
            z = float(
                gwo_step(
                    [x], np.array(lead)[:, None], ctx.a, u[1 : 1 + k], u[4 : 4 + k], -1.0, 1.0
                )[0]
            )
        return z


def gwo_record(trial: FrozenTrial) -> dict[str, Any] | None:
    """What GWO stored on a trial: wolf, generation, a, leaders and ``z`` (parameter -> coordinate).

    None for a trial GWO did not ask (another sampler's, or one created by ``add_trial``).
    """
    attrs = trial.system_attrs
    if ATTR_STATE not in attrs:
        return None
    z = dict(attrs.get(ATTR_Z, {}))
    z.update({k[len(ATTR_Z_ONE) :]: v for k, v in attrs.items() if k.startswith(ATTR_Z_ONE)})
    return {**attrs[ATTR_STATE], "z": z}


def _position(trial: FrozenTrial, name: str, coder: Coder) -> float | None:
    """Where ``trial`` stood on ``name``: its stored coordinate, else its value re-encoded."""
    used = trial.distributions.get(name)
    if used is None:
        return None
    z = trial.system_attrs.get(ATTR_Z_ONE + name, trial.system_attrs.get(ATTR_Z, {}).get(name))
    if z is not None and used == coder.dist:
        return float(z)
    if type(used) is not type(coder.dist):
        return None
    try:
        return coder.encode(trial.params[name])
    except (ValueError, TypeError):
        return None  # e.g. a category no longer among the choices


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"GWOSampler: {name}={value!r} is not allowed; use an int >= {minimum}")
