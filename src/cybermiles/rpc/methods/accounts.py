"""Signing with the node's accounts: eth_sendTransaction, eth_signTransaction, eth_sign,
personal_sign and eth_signTypedData_v4 (geth's and Hardhat's semantics).

Rules:

* The account must be one the node holds a key for (``node.accounts``: the dev accounts of a
  devnet, keystore accounts unlocked with ``cmt node --unlock``), else -32000 "unknown account".
  On other nodes every method here answers that. eth_sendTransaction also sends for an address
  impersonated with hardhat_impersonateAccount (devnet only; see below).
* The transaction object is geth's ``TransactionArgs`` as eth_call parses it
  (``rpc.methods.call``) plus ``type``; ``from`` is required. Missing fields are filled:

  - ``nonce``: the pending nonce (the state nonce plus the sender's pending run in the pool);
  - fees: ``gasPrice`` makes a legacy transaction (EIP-2930 with an ``accessList``); otherwise
    EIP-1559 with ``maxFeePerGas`` and ``maxPriorityFeePerGas`` both the chain's
    ``min_gas_price`` unless given (a given fee cap caps the default tip; a given tip raises
    the default fee cap to it). ``type`` 0x0 / 0x1 / 0x2 picks the envelope explicitly;
  - ``gas``: eth_estimateGas of the filled transaction on the head state: geth's search, the
    exact need, used as is (x1.0, Hardhat's default ``gasMultiplier``; no headroom). If it
    fails, the error is eth_estimateGas's (code 3 with the revert data for a revert);
  - ``chainId``: the node's (another one is -32000).

  ``authorizationList`` (EIP-7702) is refused (-32602): sign those offline and use
  eth_sendRawTransaction.
* eth_sendTransaction submits like eth_sendRawTransaction and answers the hash.
  eth_signTransaction answers geth's ``{"raw": ..., "tx": ...}`` and submits nothing (geth wants
  gas, nonce and fees given; here they are filled the same way).
* eth_sign(address, data) and personal_sign(data, address[, password]) sign the EIP-191
  personal message ``"\\x19Ethereum Signed Message:\\n" + len(data) + data``; the 65-byte
  signature ends in v = 27 / 28. personal_sign's password is ignored (keys are unlocked at
  start). eth_signTypedData_v4(address, typedData) signs EIP-712 typed data given as an object
  or as a JSON string; malformed typed data is -32602.
* Impersonated senders have no key: the transaction gets a well-formed fake signature
  (``y_parity`` 0, ``r`` = keccak256(sender), ``s`` = 1) that does not recover to the sender,
  and is admitted with its sender set (``Node.submit_transaction``); the block store keeps the
  sender beside the raw bytes. Such transactions are valid only on this devnet. Sending from
  an impersonated contract account is refused (EIP-3607 is enforced by the block executor).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import rlp
from eth_account import Account
from eth_account.messages import SignableMessage, encode_defunct, encode_typed_data

from cybermiles.chain.transactions import (
    ACCESS_LIST_TX_TYPE,
    DYNAMIC_FEE_TX_TYPE,
    LEGACY_TX_TYPE,
    AccessList,
    Transaction,
    decode_transaction,
)
from cybermiles.crypto.address import to_checksum
from cybermiles.crypto.keccak import keccak256
from cybermiles.execution.block import DELEGATION_PREFIX
from cybermiles.execution.call import CallFailed, CallRequest, estimate_gas
from cybermiles.rpc import format as fmt
from cybermiles.rpc import params as p
from cybermiles.rpc.errors import ParamError, ServerError
from cybermiles.rpc.methods.call import call_request, failure, simulation
from cybermiles.rpc.registry import MethodTable

methods = MethodTable()

FAKE_S = 1


class UnknownAccount(ServerError):
    """geth's answer for an account the node holds no key for."""

    def __init__(self) -> None:
        super().__init__("unknown account")


# --- methods ----------------------------------------------------------------------------------


@methods.method("eth_sendTransaction")
def send_transaction(node: Any, transaction: Any) -> str:
    return send(node, transaction, "transaction")


def send(node: Any, transaction: Any, name: str) -> str:
    """Fill, sign and submit ``transaction`` exactly as eth_sendTransaction does; its hash.

    ``name`` names the argument in -32602 messages. Other namespaces (``cmt_*``) send their
    module calls through here.
    """
    tx = _filled(node, transaction, name, allow_impersonated=True)
    key = node.accounts.key(tx.sender)
    if key is None:
        signed = _impersonated(node, tx)
        node.submit_transaction(signed)
        return fmt.data(signed.hash)
    return fmt.data(node.submit_raw_transaction(_sign(tx, key, node.chain_id)))


@methods.method("eth_signTransaction")
def sign_transaction(node: Any, transaction: Any) -> fmt.Json:
    tx = _filled(node, transaction, "transaction", allow_impersonated=False)
    raw = _sign(tx, _key(node, tx.sender), node.chain_id)
    decoded = decode_transaction(raw, node.chain_id)
    return {"raw": fmt.data(raw), "tx": fmt.transaction(decoded, None)}


@methods.method("eth_sign")
def sign(node: Any, address: Any, message: Any) -> str:
    key = _key(node, p.address(address, "address"))
    return _sign_message(encode_defunct(primitive=p.data(message, "message")), key)


@methods.method("personal_sign")
def personal_sign(node: Any, message: Any, address: Any, password: Any = None) -> str:
    key = _key(node, p.address(address, "address"))
    return _sign_message(encode_defunct(primitive=p.data(message, "message")), key)


@methods.method("eth_signTypedData_v4")
def sign_typed_data_v4(node: Any, address: Any, typed_data: Any) -> str:
    key = _key(node, p.address(address, "address"))
    return _sign_message(_typed_message(typed_data, "typed_data"), key)


# --- keys and messages ------------------------------------------------------------------------


def _key(node: Any, address: bytes) -> bytes:
    key = node.accounts.key(address)
    if key is None:
        raise UnknownAccount()
    return bytes(key)


def _sign_message(message: SignableMessage, key: bytes) -> str:
    return fmt.data(bytes(Account.sign_message(message, key).signature))


def _typed_message(value: Any, name: str) -> SignableMessage:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ParamError(name, f"typed data is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ParamError(name, "expected EIP-712 typed data (an object or a JSON string)")
    try:
        return encode_typed_data(full_message=value)
    except Exception as exc:  # eth_account raises several kinds for malformed typed data
        raise ParamError(name, f"invalid EIP-712 typed data: {exc}") from None


# --- filling a transaction --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilledTx:
    """An unsigned transaction with every field decided."""

    type: int
    sender: bytes
    nonce: int
    gas: int
    to: bytes | None
    value: int
    data: bytes
    access_list: AccessList
    gas_price: int  # legacy / EIP-2930
    max_fee_per_gas: int  # EIP-1559
    max_priority_fee_per_gas: int  # EIP-1559


def _tx_type(obj: dict[str, Any], name: str, request: CallRequest) -> int:
    request.fee_caps()  # geth's "both gasPrice and (maxFeePerGas or ...) specified" (-32000)
    raw = obj.get("type")
    if raw is None:
        if request.gas_price is not None:
            return ACCESS_LIST_TX_TYPE if request.access_list else LEGACY_TX_TYPE
        return DYNAMIC_FEE_TX_TYPE
    tx_type = p.quantity(raw, f"{name}.type")
    if tx_type not in (LEGACY_TX_TYPE, ACCESS_LIST_TX_TYPE, DYNAMIC_FEE_TX_TYPE):
        raise ParamError(f"{name}.type", f"transaction type {tx_type:#x} not supported here")
    if tx_type == DYNAMIC_FEE_TX_TYPE and request.gas_price is not None:
        raise ParamError(f"{name}.gasPrice", "not allowed in a type 0x2 transaction")
    if tx_type != DYNAMIC_FEE_TX_TYPE and (
        request.max_fee_per_gas is not None or request.max_priority_fee_per_gas is not None
    ):
        raise ParamError(f"{name}.maxFeePerGas", f"not allowed in a type {tx_type:#x} transaction")
    if tx_type == LEGACY_TX_TYPE and request.access_list:
        raise ParamError(f"{name}.accessList", "not allowed in a type 0x0 transaction")
    return tx_type


def _filled(node: Any, value: Any, name: str, *, allow_impersonated: bool) -> FilledTx:
    """Parse a transaction object and fill its missing fields (see the module docstring)."""
    if not isinstance(value, dict):
        raise ParamError(name, "expected a transaction object")
    if value.get("from") is None:
        raise ParamError(f"{name}.from", "missing required field")
    request = call_request(value, name, node.chain_id)
    sender = request.sender
    if node.accounts.key(sender) is None:
        if not (allow_impersonated and node.accounts.is_impersonated(sender)):
            raise UnknownAccount()
        with node.chain.state_at() as state:
            code = state.get_code(sender)
            if code and not (len(code) == 23 and code.startswith(DELEGATION_PREFIX)):
                raise ServerError(
                    f"cannot send from {to_checksum(sender)}: it is a contract account (EIP-3607)"
                )
    if request.authorization_list:
        raise ParamError(f"{name}.authorizationList", "not supported by eth_sendTransaction")
    tx_type = _tx_type(value, name, request)
    price = node.chain.params.min_gas_price
    gas_price = max_fee = tip = 0
    if tx_type == DYNAMIC_FEE_TX_TYPE:
        tip_given, fee_given = request.max_priority_fee_per_gas, request.max_fee_per_gas
        max_fee = fee_given if fee_given is not None else max(price, tip_given or 0)
        tip = tip_given if tip_given is not None else min(price, max_fee)
    else:
        gas_price = price if request.gas_price is None else request.gas_price
    nonce = request.nonce if request.nonce is not None else node.mempool.pending_nonce(sender)
    gas = request.gas
    if gas is None:
        gas = _estimate(
            node,
            CallRequest(
                sender=sender,
                to=request.to,
                gas_price=gas_price if tx_type != DYNAMIC_FEE_TX_TYPE else None,
                max_fee_per_gas=max_fee if tx_type == DYNAMIC_FEE_TX_TYPE else None,
                max_priority_fee_per_gas=tip if tx_type == DYNAMIC_FEE_TX_TYPE else None,
                value=request.value,
                data=request.data,
                nonce=nonce,
                access_list=request.access_list,
            ),
        )
    return FilledTx(
        tx_type,
        sender,
        nonce,
        gas,
        request.to,
        request.value,
        request.data,
        request.access_list,
        gas_price,
        max_fee,
        tip,
    )


def _estimate(node: Any, request: CallRequest) -> int:
    with simulation(node, p.LATEST) as (view, env):
        try:
            return estimate_gas(view, env, request)
        except CallFailed as exc:
            raise failure(exc.result) from None


# --- signing ----------------------------------------------------------------------------------


def _access_list_json(access_list: AccessList) -> list[dict[str, Any]]:
    return [
        {"address": to_checksum(address), "storageKeys": [fmt.word(key) for key in keys]}
        for address, keys in access_list
    ]


def _sign(tx: FilledTx, key: bytes, chain_id: int) -> bytes:
    """The raw signed transaction (eth_account)."""
    fields: dict[str, Any] = {
        "chainId": chain_id,
        "nonce": tx.nonce,
        "gas": tx.gas,
        "value": tx.value,
        "data": tx.data,
    }
    if tx.to is not None:
        fields["to"] = to_checksum(tx.to)
    if tx.type == DYNAMIC_FEE_TX_TYPE:
        fields["type"] = DYNAMIC_FEE_TX_TYPE
        fields["maxFeePerGas"] = tx.max_fee_per_gas
        fields["maxPriorityFeePerGas"] = tx.max_priority_fee_per_gas
        fields["accessList"] = _access_list_json(tx.access_list)
    else:
        fields["gasPrice"] = tx.gas_price
        if tx.type == ACCESS_LIST_TX_TYPE:
            fields["type"] = ACCESS_LIST_TX_TYPE
            fields["accessList"] = _access_list_json(tx.access_list)
    return bytes(Account.sign_transaction(fields, key).raw_transaction)


def _impersonated(node: Any, tx: FilledTx) -> Transaction:
    """``tx`` with a fake signature and its sender set (see the module docstring)."""
    chain_id = node.chain_id
    r = int.from_bytes(keccak256(tx.sender), "big")
    to = b"" if tx.to is None else tx.to
    access = [
        [address, [key.to_bytes(32, "big") for key in keys]] for address, keys in tx.access_list
    ]
    if tx.type == DYNAMIC_FEE_TX_TYPE:
        body = [
            chain_id,
            tx.nonce,
            tx.max_priority_fee_per_gas,
            tx.max_fee_per_gas,
            tx.gas,
            to,
            tx.value,
            tx.data,
            access,
            0,
            r,
            FAKE_S,
        ]
        raw = bytes([DYNAMIC_FEE_TX_TYPE]) + rlp.encode(body)
    elif tx.type == ACCESS_LIST_TX_TYPE:
        body = [
            chain_id,
            tx.nonce,
            tx.gas_price,
            tx.gas,
            to,
            tx.value,
            tx.data,
            access,
            0,
            r,
            FAKE_S,
        ]
        raw = bytes([ACCESS_LIST_TX_TYPE]) + rlp.encode(body)
    else:
        v = chain_id * 2 + 35
        raw = rlp.encode([tx.nonce, tx.gas_price, tx.gas, to, tx.value, tx.data, v, r, FAKE_S])
    return decode_transaction(raw, chain_id, known_sender=tx.sender)
