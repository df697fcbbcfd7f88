"""Memos for pure functions Beam recomputes many times while it builds and runs a job.

A small job's time is mostly Beam's own fixed cost, not its data (the demo: ~4 s of CPU for 18
rows), and much of that is three repeated computations:

- `userstate.get_dofn_specs(dofn)` inspects the signature of every method of a DoFn (~30
  `inspect.signature` calls) to find state and timer parameters. Beam asks it ~8 times per DoFn
  (applying, validating, translating, and again in the bundle processor): 916 calls for the demo's
  113 DoFns, 2.7 s under cProfile. The answer depends only on the DoFn's methods, fixed once it
  exists, so it is kept per object (by identity, dropped when the object dies).
- `PipelineOptions.view_as(cls)` builds a new argparse parser and re-parses every flag for each
  call: ~900 calls for the demo (every applied transform, every type check), 1.7 s under cProfile. Beam documents
  that all views of one options object share their values ("modifications of values in any
  view-object will apply to current object and other view-objects"), so returning the view made
  the first time is the same view: it is kept per options object and class, and made afresh if the
  object's flags or values were replaced since.
- `typehints.decorators.get_signature(func)` (`inspect.signature`, imported by name into `core`,
  `ptransform` and `util`): ~10,000 calls for the demo, 0.24 s of its ~2.1 s, on a few hundred
  functions. Kept per function (a bound method by its function), so the bundle processors' fresh
  DoFn objects, whose methods are the same functions, hit it too.

Measured (the demo with detectors off, after a first run in the same process, alternating): the
first two, three runs each, 3.8-4.3 -> 2.3-2.7 s of CPU (about -38%), same files (under cProfile,
which inflates exactly these calls, 7.3 -> 3.6 s); the third on top of them, ten runs each, median
2.04 -> 1.88 s (-8%).

Installed only for the Beam version these were checked against (`CHECKED_BEAM`): on any other the
job runs unmemoised, only slower, until someone re-reads the three functions and moves the pin.
"""

from __future__ import annotations

import inspect
import threading
import types
import weakref
from typing import Any

import apache_beam
from apache_beam.options import pipeline_options
from apache_beam.transforms import core, ptransform, userstate, util
from apache_beam.typehints import decorators

CHECKED_BEAM = "2.77.0"

# Beam's own functions, also if this module is ever reloaded after installing (no self-recursion).
_original_get_dofn_specs = getattr(userstate.get_dofn_specs, "beam_original", userstate.get_dofn_specs)
_original_view_as = getattr(pipeline_options.PipelineOptions.view_as, "beam_original",
                            pipeline_options.PipelineOptions.view_as)
_original_get_signature = getattr(decorators.get_signature, "beam_original", decorators.get_signature)
# Beam's modules that imported `get_signature` by name: each holds its own reference to replace.
_SIGNATURE_USERS = (decorators, core, ptransform, util)
_specs: dict[int, Any] = {}
_signatures: dict[tuple[int, bool], inspect.Signature] = {}
_views: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# The runner calls both from its worker threads; re-entrant, as a garbage collection inside a held
# lock may run a finalizer that calls back in.
_lock = threading.RLock()


def get_dofn_specs(dofn: Any) -> Any:
    """`userstate.get_dofn_specs`, computed once per DoFn object. A DoFn's methods are taken as fixed
    once it exists (Beam sets them in `__init__`): a DoFn whose methods or their defaults are changed
    after it was first applied is not supported (Beam would re-read them; this memo does not)."""
    key = id(dofn)
    with _lock:
        specs = _specs.get(key)
    if specs is None:
        specs = _original_get_dofn_specs(dofn)
        try:
            # Forget the answer when the DoFn dies, so a new object at the same address is inspected.
            weakref.finalize(dofn, _specs.pop, key, None)
        except TypeError:  # not weakly referenceable: no safe identity to remember it by
            return specs
        with _lock:
            _specs[key] = specs
    state_specs, timer_specs = specs
    return set(state_specs), set(timer_specs)  # copies: a caller may change what it is given


def view_as(self: pipeline_options.PipelineOptions, cls: type) -> Any:
    """`PipelineOptions.view_as`, one view per options object and class; Beam's own for an options
    object that cannot be a dictionary key (a subclass defining `__eq__` without `__hash__`)."""
    try:
        with _lock:
            per_class = _views.setdefault(self, {})
            cached = per_class.get(cls)
    except TypeError:
        return _original_view_as(self, cls)
    if cached is not None:
        view, names = cached
        # Made afresh when the flags or the values were replaced, or a value it shows was deleted.
        if view._flags is self._flags and view._all_options is self._all_options and names <= self._all_options.keys():
            return view
    view = _original_view_as(self, cls)
    with _lock:
        per_class[cls] = (view, frozenset(view._visible_option_list()))
    return view


def get_signature(func: Any) -> inspect.Signature:
    """`decorators.get_signature`, computed once per Python function (a bound method by its function:
    its signature is the function's less the first parameter, whatever the instance). Anything else
    (a class, a builtin, a partial) gets Beam's own answer each time. `Signature` objects are
    immutable, so one can be handed to every caller. A function's signature is taken as fixed once it
    exists (its code, defaults and annotations are not reassigned)."""
    bound = isinstance(func, types.MethodType)
    function = func.__func__ if bound else func
    if not isinstance(function, types.FunctionType):
        return _original_get_signature(func)
    key = (id(function), bound)
    with _lock:
        signature = _signatures.get(key)
    if signature is None:
        signature = _original_get_signature(func)
        weakref.finalize(function, _signatures.pop, key, None)  # a new function at the same address is inspected
        with _lock:
            _signatures[key] = signature
    return signature


get_dofn_specs.beam_original = _original_get_dofn_specs  # type: ignore[attr-defined]
view_as.beam_original = _original_view_as  # type: ignore[attr-defined]
get_signature.beam_original = _original_get_signature  # type: ignore[attr-defined]


def installed() -> bool:
    return (userstate.get_dofn_specs is get_dofn_specs and pipeline_options.PipelineOptions.view_as is view_as
            and all(module.get_signature is get_signature for module in _SIGNATURE_USERS))


def install() -> bool:
    """Puts the memos in place (idempotent); False, leaving Beam as it is, on an unchecked version."""
    if apache_beam.__version__ != CHECKED_BEAM:
        return False
    userstate.get_dofn_specs = get_dofn_specs
    pipeline_options.PipelineOptions.view_as = view_as  # type: ignore[method-assign]  # Beam's, replaced on purpose
    for module in _SIGNATURE_USERS:
        module.get_signature = get_signature  # type: ignore[attr-defined]  # each imports it by name (above)
    return True


def uninstall() -> None:
    """Beam's own functions again (for tests that compare the two)."""
    userstate.get_dofn_specs = _original_get_dofn_specs
    pipeline_options.PipelineOptions.view_as = _original_view_as  # type: ignore[method-assign]  # Beam's own again
    for module in _SIGNATURE_USERS:
        module.get_signature = _original_get_signature  # type: ignore[attr-defined]  # as in install()
