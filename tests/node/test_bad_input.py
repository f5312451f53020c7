"""Bad transactions sent to a live node over eth_sendRawTransaction.

Each is refused with a JSON-RPC error whose message says what is wrong (geth's wording), and
leaves the chain exactly as it was: same head, state root, balances and nonces (the node
automines, so an admitted transaction would show up as a new block). One node serves the
module; every test compares the state before and after itself.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import rlp
from coincurve import PublicKey
from eth_account import Account
from eth_account.signers.local import LocalAccount
from node_harness import (
    CHAIN_ID,
    FEE_POOL,
    GWEI,
    CmtProcess,
    Processes,
    Rpc,
    free_port,
    genesis_doc,
    hexint,
    init_home,
    make_accounts,
    sign_transfer,
)

from cybermiles.crypto.keccak import keccak256

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SERVER_ERROR = -32000
INVALID_PARAMS = -32602


@dataclass
class LiveNode:
    proc: CmtProcess
    rpc: Rpc
    accounts: list[LocalAccount]
    poor: LocalAccount  # funded with exactly 1 CMT

    def snapshot(self) -> dict[str, Any]:
        latest = self.rpc.block("latest")
        assert latest is not None
        watched = [a.address for a in [*self.accounts, self.poor]] + [FEE_POOL]
        return {
            "head": {k: latest[k] for k in ("number", "hash", "stateRoot")},
            "balances": {a: self.rpc.balance(a) for a in watched},
            "nonces": {a: self.rpc.nonce(a) for a in watched},
            "pending": {a: self.rpc.nonce(a, "pending") for a in watched},
        }


@pytest.fixture(scope="module")
def live(
    module_processes: Processes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveNode]:
    accounts = make_accounts(3, seed=99)
    poor = make_accounts(1, seed=100)[0]
    home = tmp_path_factory.mktemp("bad-input") / "home"
    genesis = genesis_doc(accounts)
    genesis["alloc"][poor.address] = {"balance": str(10**18)}
    init_home(home, genesis)
    port = free_port()
    proc = module_processes.node(home, port, "--block-time", "0")
    rpc = proc.wait_rpc(f"http://127.0.0.1:{port}")
    yield LiveNode(proc, rpc, accounts, poor)
    rpc.close()
    proc.signal(signal.SIGTERM)
    assert proc.wait(60) == 0, proc.tail()
    assert "Traceback" not in proc.output(), proc.tail()


# --------------------------------------------------------------------------- building bad txs


def typed_fields(raw: bytes) -> list[Any]:
    assert raw[0] == 2
    return list(rlp.decode(raw[1:]))


def typed_raw(fields: list[Any]) -> bytes:
    return b"\x02" + rlp.encode(fields)


def signer_of(fields: list[Any]) -> bytes | None:
    """The address a type-2 signature recovers to, or None if it recovers to no key."""
    msg_hash = keccak256(b"\x02" + rlp.encode(fields[:9]))
    y_parity = int.from_bytes(fields[9], "big")
    r, s = (int.from_bytes(x, "big") for x in fields[10:12])
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        return None
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([y_parity])
    try:
        public = PublicKey.from_signature_and_message(signature, msg_hash, hasher=None)
    except Exception:
        return None
    return keccak256(public.format(compressed=False)[1:])[12:]


def flip_r_byte(live: LiveNode, *, recoverable: bool) -> bytes:
    """A valid transfer whose r has one byte flipped, chosen so that the signature either
    recovers to some other (unfunded) key or to no key at all."""
    raw, _ = sign_transfer(live.accounts[0], 0)
    fields = typed_fields(raw)
    r = fields[10]
    for position in range(1, len(r)):
        for mask in (0x01, 0x10, 0x80, 0xFF):
            flipped = bytearray(r)
            flipped[position] ^= mask
            candidate = [*fields[:10], bytes(flipped), fields[11]]
            signer = signer_of(candidate)
            sender = bytes.fromhex(live.accounts[0].address[2:])
            if (signer is not None) == recoverable and signer != sender:
                return typed_raw(candidate)
    raise AssertionError("no suitable byte flip found")


def flip_s_high(live: LiveNode) -> bytes:
    """Flip the top bit of s: s > N/2 (EIP-2 forbids it)."""
    raw, _ = sign_transfer(live.accounts[0], 0)
    fields = typed_fields(raw)
    s = int.from_bytes(fields[11], "big") ^ (1 << 255)
    return typed_raw([*fields[:11], s.to_bytes(32, "big").lstrip(b"\0")])


def zero_r(live: LiveNode) -> bytes:
    raw, _ = sign_transfer(live.accounts[0], 0)
    fields = typed_fields(raw)
    return typed_raw([*fields[:10], b"", fields[11]])


def sign_dict(account: LocalAccount, **tx: Any) -> bytes:
    return bytes(account.sign_transaction(tx).raw_transaction)


def unprotected_legacy(live: LiveNode) -> bytes:
    tx = {"nonce": 0, "to": "0x" + "22" * 20, "value": 1, "gas": 21_000, "gasPrice": GWEI}
    return sign_dict(live.accounts[0], **tx)  # no chainId: v = 27/28


def oversize(live: LiveNode) -> bytes:
    data = b"\x01" * (129 * 1024)
    raw, _ = sign_transfer(live.accounts[0], 0, data=data, gas=10_000_000)
    assert len(raw) > 128 * 1024
    return raw


BAD: dict[str, tuple[Callable[[LiveNode], str], int, str]] = {
    # name: (build the 0x-hex argument, JSON-RPC error code, text the message must contain)
    "rlp-truncated": (
        lambda n: "0x" + sign_transfer(n.accounts[0], 0)[0][:-5].hex(),
        SERVER_ERROR,
        "rlp",
    ),
    "rlp-trailing-bytes": (
        lambda n: "0x" + sign_transfer(n.accounts[0], 0)[0].hex() + "00",
        SERVER_ERROR,
        "rlp",
    ),
    "rlp-garbage-list": (lambda n: "0xf8ff" + "01" * 20, SERVER_ERROR, "rlp"),
    "rlp-wrong-field-count": (
        lambda n: "0x" + rlp.encode([1, 2, 3]).hex(),
        SERVER_ERROR,
        "rlp",
    ),
    "rlp-typed-not-a-list": (lambda n: "0x02" + rlp.encode(b"abc").hex(), SERVER_ERROR, "rlp"),
    "empty": (lambda n: "0x", SERVER_ERROR, "rlp"),
    "not-hex": (lambda n: "0xzz12", INVALID_PARAMS, "invalid argument 0"),
    "blob-type": (
        lambda n: "0x03" + rlp.encode([1, 2, 3]).hex(),
        SERVER_ERROR,
        "transaction type not supported",
    ),
    "wrong-chain-id": (
        lambda n: "0x" + sign_transfer(n.accounts[0], 0, chain_id=CHAIN_ID + 1)[0].hex(),
        SERVER_ERROR,
        "invalid chain id for signer",
    ),
    "wrong-chain-id-legacy": (
        lambda n: "0x" + sign_transfer(n.accounts[0], 0, chain_id=1, dynamic=False)[0].hex(),
        SERVER_ERROR,
        "invalid chain id for signer",
    ),
    "unprotected-legacy": (
        lambda n: "0x" + unprotected_legacy(n).hex(),
        SERVER_ERROR,
        "only replay-protected (EIP-155) transactions allowed over RPC",
    ),
    "signature-s-high-bit": (
        lambda n: "0x" + flip_s_high(n).hex(),
        SERVER_ERROR,
        "invalid transaction v, r, s values",
    ),
    "signature-r-zero": (
        lambda n: "0x" + zero_r(n).hex(),
        SERVER_ERROR,
        "invalid transaction v, r, s values",
    ),
    "signature-r-flipped-no-key": (
        lambda n: "0x" + flip_r_byte(n, recoverable=False).hex(),
        SERVER_ERROR,
        "invalid transaction v, r, s values",
    ),
    # A flipped r that still recovers is a valid signature of some other, unfunded key.
    "signature-r-flipped-other-key": (
        lambda n: "0x" + flip_r_byte(n, recoverable=True).hex(),
        SERVER_ERROR,
        "insufficient funds for gas * price + value",
    ),
    "oversize": (lambda n: "0x" + oversize(n).hex(), SERVER_ERROR, "oversized data"),
    "intrinsic-gas-too-low": (
        lambda n: "0x" + sign_transfer(n.accounts[0], 0, gas=20_999)[0].hex(),
        SERVER_ERROR,
        "intrinsic gas too low",
    ),
    "gas-above-block-limit": (
        lambda n: "0x" + sign_transfer(n.accounts[0], 0, gas=300_000_000)[0].hex(),
        SERVER_ERROR,
        "exceeds block gas limit",
    ),
    "insufficient-funds": (
        lambda n: "0x" + sign_transfer(n.poor, 0, value=10**18)[0].hex(),
        SERVER_ERROR,
        "insufficient funds for gas * price + value",
    ),
    "creation-underpriced": (
        lambda n: (
            "0x"
            + sign_dict(
                n.accounts[1],
                chainId=CHAIN_ID,
                nonce=0,
                value=0,
                gas=100_000,
                gasPrice=0,
                data=b"\x60\x00",
            ).hex()
        ),
        SERVER_ERROR,
        "transaction underpriced",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD))
def test_bad_raw_transaction_is_refused_without_effect(live: LiveNode, case: str) -> None:
    build, code, message = BAD[case]
    argument = build(live)
    before = live.snapshot()
    answer = live.rpc.request("eth_sendRawTransaction", argument)
    assert "error" in answer, answer
    error = answer["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert message.lower() in error["message"].lower(), error
    assert "internal error" not in error["message"], error
    assert live.snapshot() == before
    assert live.proc.alive()


@pytest.mark.slow
def test_wrong_argument_count_is_invalid_params(live: LiveNode) -> None:
    before = live.snapshot()
    for params in ([], ["0x00", "0x00"]):
        answer = live.rpc.post(
            {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": params}
        )
        assert answer["error"]["code"] == INVALID_PARAMS, answer
    assert live.snapshot() == before


@pytest.mark.slow
def test_node_still_mines_and_refuses_replay(live: LiveNode) -> None:
    """After the bad inputs the node takes a good transaction; a replay of it is refused."""
    sender = live.accounts[2]
    nonce = live.rpc.nonce(sender.address)
    raw, tx_hash = sign_transfer(sender, nonce, to="0x" + "77" * 20, value=5)
    head = live.rpc.block_number()
    assert live.rpc.send_raw(raw) == tx_hash
    receipt = live.rpc.wait_receipt(tx_hash)
    assert receipt["status"] == "0x1"
    assert hexint(receipt["blockNumber"]) == head + 1

    before = live.snapshot()
    answer = live.rpc.request("eth_sendRawTransaction", "0x" + raw.hex())
    assert answer["error"]["code"] == SERVER_ERROR
    assert "nonce too low" in answer["error"]["message"]
    assert live.snapshot() == before


def test_flip_helpers_pick_what_they_claim(tmp_path: Path) -> None:
    """The signature cases test what their names say (checked without a node)."""
    accounts = make_accounts(1, seed=99)
    fake = LiveNode(proc=None, rpc=None, accounts=accounts, poor=accounts[0])  # type: ignore[arg-type]
    me = bytes.fromhex(accounts[0].address[2:])
    good = typed_fields(sign_transfer(accounts[0], 0)[0])
    assert signer_of(good) == me
    assert signer_of(typed_fields(flip_r_byte(fake, recoverable=False))) is None
    other = signer_of(typed_fields(flip_r_byte(fake, recoverable=True)))
    assert other is not None and other != me
    high_s = typed_fields(flip_s_high(fake))
    assert int.from_bytes(high_s[11], "big") > SECP256K1_N // 2
    assert Account.from_key(accounts[0].key).address == accounts[0].address
