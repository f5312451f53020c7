"""Contract size limits (EIP-170 runtime code, EIP-3860 initcode) and their dev-only lifting.

Development chains may lift both limits, as Hardhat's ``allowUnlimitedContractSize`` does.
Initcode still pays its per-word gas and code its deposit gas; EIP-3541 (no new code starting
with 0xEF) still applies.
"""

from __future__ import annotations

from typing import Any

from eth.exceptions import ReservedBytesInCode
from eth.vm.forks.london.constants import EIP3541_RESERVED_STARTING_BYTE

from cybermiles.execution.evm_state import ChainComputation, ChainVMState


class UnlimitedCodeSize:
    """Mixin for a py-evm computation class: no EIP-170 / EIP-3860 size checks."""

    @classmethod
    def validate_create_message(cls, message: Any) -> None:
        """No EIP-3860 initcode size limit."""

    @classmethod
    def validate_contract_code(cls, contract_code: bytes) -> None:
        if contract_code[:1] == EIP3541_RESERVED_STARTING_BYTE:
            raise ReservedBytesInCode("Contract code begins with EIP3541 reserved byte '0xEF'.")


class UnlimitedCodeComputation(UnlimitedCodeSize, ChainComputation):
    """Prague without the contract size limits."""


class UnlimitedCodeVMState(ChainVMState):
    computation_class = UnlimitedCodeComputation
