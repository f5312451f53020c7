"""The governance module at ``0x…1001``: proposals, stake-weighted votes, and their effects.

A tour (rules: ``docs/staking.md``, "Governance"; ABI: ``contracts/interfaces/IGovernance.sol``):

* ``records``: the proposal record and its kind-specific details (RLP in the module's storage);
* ``state``: where records, votes, scheduled parameter changes and upgrade plans are kept;
* ``tally``: pure vote counting over a staking ``PowerTable`` and the pass/reject/expire rules;
* ``lifecycle``: ``end_block`` (decide proposals, move deposits, carry out what passed);
* ``upgrade``: ``UpgradePlan`` and ``pending_upgrade``, which the node checks before each block;
* ``module``: ``GovernanceModule``, the precompile (propose, vote, views);
* ``queries``: JSON-ready views for ``cmt_queryProposals`` and ``cmt_queryParams``.
"""
