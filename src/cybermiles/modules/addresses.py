"""Reserved addresses of the native modules (``0x…1000``–``0x…10ff``)."""

from __future__ import annotations


def reserved(number: int) -> bytes:
    """The 20-byte address whose integer value is ``number``."""
    return number.to_bytes(20, "big")


STAKING = reserved(0x1000)  # staking module; also every block's coinbase (fee collector)
GOVERNANCE = reserved(0x1001)  # governance module
COMMUNITY_POOL = reserved(0x1002)  # an account only governance spends
MODULE_RANGE = range(0x1000, 0x1100)

# A module's account carries this one-byte code so that ``extcodesize`` is non-zero (Solidity
# checks it before calls that return nothing); the precompile runs instead, never the code.
MODULE_CODE = b"\xfe"
