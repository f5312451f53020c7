"""eth_feeHistory, computed as geth's gas price oracle does.

Rules:

* ``blockCount``: a hex quantity, a decimal string or a JSON number; 0 -> ``{"oldestBlock":
  "0x0", "gasUsedRatio": null}`` (geth); above ``MAX_BLOCK_COUNT`` (1024) it is cut to 1024;
  it is also cut to the blocks that exist (``newestBlock + 1``).
* ``newestBlock``: a number or tag (latest / pending / safe / finalized are the head); above the
  head -> -32000 "request beyond head block: requested N, head H".
* ``rewardPercentiles``: at most 100 numbers, each in [0, 100] and strictly increasing, else
  -32000 "invalid reward percentile: ..."; null or [] -> no ``reward`` field.
* Per block: ``gasUsedRatio`` = gasUsed / gasLimit; ``reward[i]`` = the effective priority fee
  (effective gas price - base fee) of the transaction at which the cumulative gas used, over
  the block's transactions sorted by that fee (stable), first reaches
  ``floor(block gasUsed * percentile / 100)``; all zeros for an empty block.
* ``baseFeePerGas`` and ``baseFeePerBlobGas`` have blockCount + 1 entries (the last one is for
  the block after ``newestBlock``): base fees are always 0 on this chain; blob base fees follow
  EIP-4844 with Prague's parameters from ``excessBlobGas`` (always 0, so the minimum, 1 wei:
  what geth reports and what the BLOBBASEFEE opcode returns). ``blobGasUsedRatio`` =
  blobGasUsed / Prague's max blob gas per block (always 0: no blob transactions).
"""

from __future__ import annotations

from typing import Any

from eth._utils.calculations import fake_exponential
from eth.vm.forks.cancun.constants import MIN_BLOB_BASE_FEE
from eth.vm.forks.prague.constants import (
    BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE,
    MAX_BLOB_GAS_PER_BLOCK,
)
from eth.vm.forks.prague.headers import calc_excess_blob_gas_prague

from cybermiles.chain.receipts import Receipt
from cybermiles.chain.transactions import Transaction
from cybermiles.execution.fees import BASE_FEE, effective_gas_price
from cybermiles.rpc import format as fmt
from cybermiles.rpc import lookup
from cybermiles.rpc import params as p
from cybermiles.rpc.errors import ParamError, ServerError
from cybermiles.rpc.lookup import BlockInfo
from cybermiles.rpc.registry import MethodTable

MAX_BLOCK_COUNT = 1024
MAX_PERCENTILES = 100

methods = MethodTable()


def _block_count(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, str) and value[:2] in ("0x", "0X"):
        return p.uint64(value, name)
    elif isinstance(value, str) and value.isdigit():
        count = int(value)
    else:
        raise ParamError(name, "expected a block count (hex or decimal)")
    if not 0 <= count < 2**64:
        raise ParamError(name, "block count out of range")
    return count


def _percentiles(value: Any, name: str) -> list[float]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
        raise ParamError(name, "expected an array of numbers")
    if len(value) > MAX_PERCENTILES:
        raise ServerError(f"invalid reward percentile: over the query limit {MAX_PERCENTILES}")
    for i, pct in enumerate(value):
        if not 0 <= pct <= 100:
            raise ServerError(f"invalid reward percentile: {pct:f}")
        if i and pct <= value[i - 1]:
            raise ServerError(
                f"invalid reward percentile: #{i - 1}:{value[i - 1]:f} >= #{i}:{pct:f}"
            )
    return [float(x) for x in value]


def blob_base_fee(excess_blob_gas: int) -> int:
    """EIP-4844's blob base fee with Prague's update fraction."""
    fraction = BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE
    return fake_exponential(MIN_BLOB_BASE_FEE, excess_blob_gas, fraction)


def rewards(
    gas_used: int, txs: list[Transaction], receipts: list[Receipt], base_fee: int, pcts: list[float]
) -> list[int]:
    """Effective priority fees at ``pcts`` of the block's gas, weighted by gas used (geth)."""
    if not txs:
        return [0] * len(pcts)
    used, previous = [], 0
    for receipt in receipts:
        used.append(receipt.cumulative_gas_used - previous)
        previous = receipt.cumulative_gas_used
    tips = [effective_gas_price(tx, base_fee) - base_fee for tx in txs]
    ranked = sorted(zip(tips, used, strict=True), key=lambda item: item[0])
    out = []
    index, total = 0, ranked[0][1]
    for pct in pcts:
        threshold = int(gas_used * pct / 100)
        while total < threshold and index < len(ranked) - 1:
            index += 1
            total += ranked[index][1]
        out.append(ranked[index][0])
    return out


def _block_rewards(node: Any, info: BlockInfo, pcts: list[float]) -> list[str]:
    txs = lookup.transactions(node, info)
    receipts = lookup.receipts(node, info)
    header = info.header
    fees = rewards(header.gas_used, txs, receipts, header.base_fee_per_gas, pcts)
    return [fmt.quantity(fee) for fee in fees]


@methods.method("eth_feeHistory")
def fee_history(
    node: Any, block_count: Any, newest_block: Any, reward_percentiles: Any
) -> dict[str, Any]:
    count = _block_count(block_count, "block_count")
    ref = p.block_number_or_tag(newest_block, "newest_block")
    pcts = _percentiles(reward_percentiles, "reward_percentiles")
    if count == 0:
        return {"oldestBlock": "0x0", "gasUsedRatio": None}
    head = lookup.head_number(node)
    newest = head if ref.is_head else ref.number
    assert newest is not None
    if newest > head:
        raise ServerError(f"request beyond head block: requested {newest}, head {head}")
    count = min(count, MAX_BLOCK_COUNT, newest + 1)
    oldest = newest + 1 - count
    base_fees, blob_fees, ratios, blob_ratios, reward = [], [], [], [], []
    header = None
    for number in range(oldest, newest + 1):
        info = lookup.block_at(node, number)
        if info is None:
            raise ServerError("header not found")
        header = info.header
        base_fees.append(fmt.quantity(header.base_fee_per_gas))
        blob_fees.append(fmt.quantity(blob_base_fee(header.excess_blob_gas)))
        ratios.append(header.gas_used / header.gas_limit)
        blob_ratios.append(header.blob_gas_used / MAX_BLOB_GAS_PER_BLOCK)
        if pcts:
            reward.append(_block_rewards(node, info, pcts))
    assert header is not None
    base_fees.append(fmt.quantity(BASE_FEE))  # the next block's: the base fee never moves
    blob_fees.append(fmt.quantity(blob_base_fee(calc_excess_blob_gas_prague(header))))
    result: dict[str, Any] = {"oldestBlock": fmt.quantity(oldest)}
    if pcts:
        result["reward"] = reward
    result["baseFeePerGas"] = base_fees
    result["gasUsedRatio"] = ratios
    result["baseFeePerBlobGas"] = blob_fees
    result["blobGasUsedRatio"] = blob_ratios
    return result
