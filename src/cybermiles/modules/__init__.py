"""Native modules: stateful precompiles at reserved addresses (``addresses``).

``framework/`` is what every module is built from (state in the module account's storage, ABI
dispatch, fixed gas, events); ``staking/`` and ``governance/`` are the CyberMiles modules;
``lifecycle`` runs their part of genesis and of every block's end; ``registry`` hands them to
py-evm as precompiles. ``docs/staking.md`` states the rules.
"""
