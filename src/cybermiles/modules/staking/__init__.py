"""The staking module (``0x…1000``): candidates, delegations, voting power, the election,
block rewards, slashing and unbonding. Rules: ``docs/staking.md``.

* ``records``   the stored RLP records (Candidate, Delegation, Unbonding);
* ``state``     ``StakingState``, typed access to the module's storage; ``has_stake``;
* ``power``     voting power (``PowerTable``, ``power_table``) and the election draw;
* ``beacon``    the election's random beacon (placeholder until BFT supplies one);
* ``bonding``   delegating, unbonding and its maturity;
* ``rewards``, ``slashing``   the end-of-block rules;
* ``lifecycle`` ``end_block``, ``elect``, ``should_elect``;
* ``genesis``   ``init_staking``, the genesis validators;
* ``module``    ``StakingModule``, the IStaking precompile;
* ``queries``   JSON-ready views for the ``cmt_query*`` RPC methods.
"""

from cybermiles.modules.staking.power import PowerTable, power_table
from cybermiles.modules.staking.state import has_stake

__all__ = ["PowerTable", "has_stake", "power_table"]
