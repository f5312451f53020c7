"""The chain parameters live in the state (governance's storage), so governance can change them.

Stored under key ``b"params"`` of the governance module as the RLP list of ``[name, value]``
pairs in name order; names absent from the stored list (added by a newer version) take their
defaults.
"""

from __future__ import annotations

import rlp
from rlp.sedes import CountableList, List, big_endian_int, binary

from cybermiles.chain.params import Params
from cybermiles.modules.addresses import GOVERNANCE
from cybermiles.modules.framework.codec import memoized
from cybermiles.modules.framework.store import Backend, ModuleStore

PARAMS_KEY = b"params"
_PAIRS = CountableList(List([binary, big_endian_int]))


def write_params(backend: Backend, params: Params) -> None:
    pairs = [[name.encode(), value] for name, value in sorted(params.to_json().items())]
    ModuleStore(backend, GOVERNANCE).put(PARAMS_KEY, rlp.encode(pairs, sedes=_PAIRS))


def read_params(backend: Backend) -> Params:
    """The parameters in force; the defaults when the state has none (a chain before modules)."""
    raw = ModuleStore(backend, GOVERNANCE).get(PARAMS_KEY)
    if raw is None:
        return Params()
    return memoized(Params, raw, _decode_params)  # Params is frozen: safe to share


def _decode_params(raw: bytes) -> Params:
    known = set(Params.__dataclass_fields__)
    pairs = rlp.decode(raw, sedes=_PAIRS)
    return Params(**{name.decode(): value for name, value in pairs if name.decode() in known})
