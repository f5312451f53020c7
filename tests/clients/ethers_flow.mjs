// The usual dapp flow from ethers v6 against a running `cmt devnet` (or any node of a
// `cmt testnet`).
//
// Usage: node ethers_flow.mjs http://127.0.0.1:PORT/
//
// Environment (the defaults fit `cmt devnet`):
//   CMT_CHAIN_ID            the chain id to expect (default 1234; a `cmt testnet` is 19)
//   CMT_STAKING_VALIDATOR   the validator (owner address) to delegate to (default: Hardhat
//                           account #0, the devnet validator)
//   CMT_AUTOMINE            "1" (default): every transaction mines its own block at once and
//                           nothing else does, so "latest" is the block of the last receipt;
//                           "0": blocks come on their own (BFT testnet, ~1 s apart)
//   ETHERS_FLOW_TIMEOUT_MS  the global timeout (default 50000)
//   ETHERS_FLOW_WAIT_MS     how long one tx.wait() may take (default 20000)
//
// Signs locally with the Hardhat test keys (never eth_sendTransaction). Exits 1 with a
// "FAILED: ..." message on stderr at the first failed check, 2 on the global timeout; on
// success prints one final JSON line {"ok": true, "checks": [...], ...} on stdout.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { ethers } from "ethers";

const KEY0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const KEY1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const ADDRESS0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"; // of KEY0
const CHAIN_ID = BigInt(process.env.CMT_CHAIN_ID ?? 1234);
const STAKING_VALIDATOR = ethers.getAddress(process.env.CMT_STAKING_VALIDATOR ?? ADDRESS0);
const AUTOMINE = (process.env.CMT_AUTOMINE ?? "1") !== "0";
const TIMEOUT_MS = Number(process.env.ETHERS_FLOW_TIMEOUT_MS ?? 50_000);
const WAIT_MS = Number(process.env.ETHERS_FLOW_WAIT_MS ?? 20_000);

const here = dirname(fileURLToPath(import.meta.url));
const artifact = (name) =>
  JSON.parse(readFileSync(join(here, "..", "..", "contracts", "build", `${name}.json`), "utf8"));

const checks = [];
const facts = {};

class CheckFailed extends Error {}

function check(name, condition, detail) {
  if (!condition) {
    const extra = detail === undefined ? "" : `: ${stringify(detail)}`;
    throw new CheckFailed(`${name}${extra}`);
  }
  checks.push(name);
}

function stringify(value) {
  return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolve once the node's head is at least ``number`` (polls; blocks are ~1 s apart). */
async function waitForBlock(provider, number) {
  while ((await provider.getBlockNumber()) < number) {
    await new Promise((r) => setTimeout(r, provider.pollingInterval));
  }
}

/** The error thrown by ``fn`` (fails the check when it does not throw). */
async function thrown(name, fn) {
  try {
    const value = await fn();
    throw new CheckFailed(`${name}: expected an error, got ${stringify(value)}`);
  } catch (e) {
    if (e instanceof CheckFailed) throw e;
    return e;
  }
}

/** Delegate to ``validator`` (an owner address: the devnet validator, or a testnet one) as a
 * MetaMask user would: a plain signed transaction to the staking module's address through its
 * Solidity interface; then watch awards accrue once ``nudger`` has had a transaction mined. */
async function stakingFlow(provider, validator, nudger, delegator) {
  const STAKING = "0x0000000000000000000000000000000000001000";
  const staking = new ethers.Contract(STAKING, artifact("IStaking").abi, delegator);
  const amount = ethers.parseEther("5000");
  const tx = await staking.delegate(validator, { value: amount });
  const receipt = await tx.wait(1, WAIT_MS);
  check("staking.delegate.status", receipt.status === 1, receipt.status);
  const event = receipt.logs
    .map((log) => staking.interface.parseLog(log))
    .find((parsed) => parsed && parsed.name === "Delegated");
  check(
    "staking.Delegated",
    event && event.args.delegator === delegator.address && event.args.amount === amount,
    event && event.args,
  );
  const mine = await staking.delegation(validator, delegator.address);
  check("staking.delegation", mine.delegateAmount === amount && mine.votingPower > 0n, mine);
  const query = async () =>
    (await provider.send("cmt_queryDelegator", [delegator.address])).data.find(
      (d) => d.validator_address === validator,
    );
  const before = await query();
  check("cmt_queryDelegator", before && BigInt(before.delegate_amount) === amount, before);
  const nudge = await nudger.sendTransaction({ to: delegator.address, value: 1n });
  const nudged = await nudge.wait(1, WAIT_MS);
  let after = await query();
  // A BFT block pays only the validators whose precommit its commit carries (+2/3 of the
  // power, not necessarily all of them): give the testnet a few more blocks.
  for (let n = 1; !AUTOMINE && n <= 5 && BigInt(after.award_amount) <= BigInt(before.award_amount); n++) {
    await waitForBlock(provider, nudged.blockNumber + n);
    after = await query();
  }
  check("staking.awards", BigInt(after.award_amount) > BigInt(before.award_amount), {
    before,
    after,
  });
  facts.stakingAward = after.award_amount;
}

async function main(url) {
  const wsUrl = url.replace(/^http/, "ws");
  // cacheTimeout -1: ethers otherwise answers an identical request made within 250 ms from a
  // cache, so two sends in a row on an automining chain reuse one eth_getTransactionCount
  // ("pending") answer and the second fails with "nonce has already been used".
  const provider = new ethers.JsonRpcProvider(url, undefined, { cacheTimeout: -1 });
  provider.pollingInterval = 200; // tx.wait() polls; blocks are automined at once
  const wallet0 = new ethers.Wallet(KEY0, provider);
  const wallet1 = new ethers.Wallet(KEY1, provider);

  // --- network
  const network = await provider.getNetwork();
  check("chainId", network.chainId === CHAIN_ID, network.chainId);
  const start = await provider.getBlockNumber();
  check("blockNumber", Number.isInteger(start) && start >= 0, start);

  // --- deploy TestToken with a ContractFactory from the artifact
  const tokenArtifact = artifact("TestToken");
  const supply = ethers.parseEther("1000000");
  const factory = new ethers.ContractFactory(tokenArtifact.abi, tokenArtifact.bytecode, wallet0);
  const token = await factory.deploy(supply);
  const deployTx = token.deploymentTransaction();
  const deployReceipt = await deployTx.wait(1, WAIT_MS);
  await token.waitForDeployment();
  const tokenAddress = await token.getAddress();
  check("deploy.status", deployReceipt.status === 1, deployReceipt.status);
  check(
    "deploy.contractAddress",
    deployReceipt.contractAddress === tokenAddress &&
      tokenAddress === ethers.getCreateAddress({ from: wallet0.address, nonce: deployTx.nonce }),
    { receipt: deployReceipt.contractAddress, token: tokenAddress },
  );
  check("deploy.code", (await provider.getCode(tokenAddress)).length > 2);
  check("totalSupply", (await token.totalSupply()) === supply);
  check("symbol", (await token.symbol()) === "TT");
  facts.token = tokenAddress;
  facts.deployTx = deployTx.hash;
  facts.deployBlockHash = deployReceipt.blockHash;
  facts.deployBlockNumber = deployReceipt.blockNumber;

  // --- transfer + wait + balances
  const amount = ethers.parseEther("12.5");
  const tx = await token.transfer(wallet1.address, amount);
  const receipt = await tx.wait(1, WAIT_MS);
  check("transfer.status", receipt.status === 1, receipt.status);
  check("transfer.hash", receipt.hash === tx.hash, { receipt: receipt.hash, tx: tx.hash });
  check("transfer.blockNumber", receipt.blockNumber > deployReceipt.blockNumber, receipt.blockNumber);
  const parsed = receipt.logs.map((log) => token.interface.parseLog(log)).filter(Boolean);
  check(
    "transfer.receiptLog",
    parsed.length === 1 &&
      parsed[0].name === "Transfer" &&
      parsed[0].args.from === wallet0.address &&
      parsed[0].args.to === wallet1.address &&
      parsed[0].args.value === amount,
    parsed.map((p) => [p.name, ...p.args]),
  );
  check("balanceOf.sender", (await token.balanceOf(wallet0.address)) === supply - amount);
  check("balanceOf.recipient", (await token.balanceOf(wallet1.address)) === amount);
  const fetched = await provider.getTransaction(tx.hash);
  check("getTransaction", fetched && fetched.hash === tx.hash && fetched.from === wallet0.address);

  // --- queryFilter (eth_getLogs)
  const events = await token.queryFilter(token.filters.Transfer(), deployReceipt.blockNumber);
  check(
    "queryFilter.Transfer",
    events.length === 2 &&
      events[0].args.from === ethers.ZeroAddress &&
      events[0].args.to === wallet0.address &&
      events[0].args.value === supply &&
      events[1].args.from === wallet0.address &&
      events[1].args.to === wallet1.address &&
      events[1].args.value === amount &&
      events[1].transactionHash === tx.hash &&
      events[1].blockHash === receipt.blockHash,
    events.map((e) => [e.blockNumber, e.transactionHash, ...e.args]),
  );
  const toOne = await token.queryFilter(token.filters.Transfer(null, wallet1.address));
  check("queryFilter.topicFilter", toOne.length === 1 && toOne[0].transactionHash === tx.hash);

  // --- getBlock("latest")
  // Automine: "latest" is the transfer's block. Otherwise blocks may have come since: the
  // transfer's block is then fetched by number.
  const latest = await provider.getBlock("latest");
  const mined =
    latest === null || latest.number === receipt.blockNumber || AUTOMINE
      ? latest
      : await provider.getBlock(receipt.blockNumber);
  check(
    "getBlock.latest",
    latest !== null &&
      mined !== null &&
      (AUTOMINE ? latest.number === receipt.blockNumber : latest.number >= receipt.blockNumber) &&
      mined.number === receipt.blockNumber &&
      mined.hash === receipt.blockHash &&
      mined.transactions.includes(tx.hash) &&
      latest.baseFeePerGas === 0n &&
      mined.baseFeePerGas === 0n &&
      latest.timestamp >= mined.timestamp &&
      mined.timestamp > 0,
    latest && {
      number: latest.number,
      hash: latest.hash,
      baseFee: latest.baseFeePerGas,
      mined: mined && { number: mined.number, hash: mined.hash },
      receipt: { number: receipt.blockNumber, hash: receipt.blockHash },
    },
  );
  const byHash = await provider.getBlock(receipt.blockHash);
  check("getBlock.byHash", byHash && byHash.number === receipt.blockNumber);

  // --- revert reason (Probe.fail via staticCall, and through estimateGas of a send)
  const probeArtifact = artifact("Probe");
  const probeFactory = new ethers.ContractFactory(probeArtifact.abi, probeArtifact.bytecode, wallet0);
  const probe = await probeFactory.deploy();
  await probe.waitForDeployment();
  const failed = await thrown("Probe.fail.staticCall", () => probe.fail.staticCall("nope"));
  check(
    "revert.reason",
    failed.code === "CALL_EXCEPTION" && failed.reason === "nope",
    { code: failed.code, reason: failed.reason, data: failed.data, message: failed.shortMessage },
  );
  const failedEstimate = await thrown("Probe.fail.estimateGas", () =>
    probe.fail.estimateGas("nope"),
  );
  check(
    "revert.estimateGas",
    failedEstimate.code === "CALL_EXCEPTION" && failedEstimate.reason === "nope",
    { code: failedEstimate.code, reason: failedEstimate.reason, message: failedEstimate.shortMessage },
  );

  // --- custom error (too large a transfer)
  const tooMuch = supply * 2n;
  const custom = await thrown("TestToken.transfer.staticCall(too much)", () =>
    token.connect(wallet1).transfer.staticCall(wallet0.address, tooMuch),
  );
  check("customError.code", custom.code === "CALL_EXCEPTION", { code: custom.code, message: custom.shortMessage });
  let decoded = null;
  try {
    decoded = token.interface.parseError(custom.data);
  } catch (e) {
    throw new CheckFailed(`customError.parseError(${custom.data}): ${e.message}`);
  }
  check(
    "customError.parseError",
    decoded !== null &&
      decoded.name === "InsufficientBalance" &&
      decoded.args.available === amount &&
      decoded.args.required === tooMuch,
    decoded && [decoded.name, ...decoded.args],
  );
  check(
    "customError.revert",
    custom.revert && custom.revert.name === "InsufficientBalance",
    custom.revert,
  );

  // --- plain wallet transfers: default fee data, then explicit EIP-1559 fees
  // getFeeData = eth_getBlockByNumber("latest") + eth_gasPrice + eth_maxPriorityFeePerGas. With
  // baseFeePerGas 0 ethers' heuristic (`if (block.baseFeePerGas)`) leaves maxFeePerGas null,
  // so a wallet with default fee data sends a legacy (type 0) transaction at eth_gasPrice.
  const feeData = await provider.getFeeData();
  const head = await provider.getBlock("latest");
  check("feeData.gasPrice", feeData.gasPrice !== null && feeData.gasPrice > 0n, feeData.toJSON());
  check(
    "feeData.eip1559",
    (head.baseFeePerGas > 0n) === (feeData.maxFeePerGas !== null),
    { baseFee: head.baseFeePerGas, feeData: feeData.toJSON() },
  );
  const priorityFee = BigInt(await provider.send("eth_maxPriorityFeePerGas", []));
  check("maxPriorityFeePerGas", priorityFee >= 0n, priorityFee);
  const feeHistory = await provider.send("eth_feeHistory", ["0x4", "latest", [25, 75]]);
  // "latest" is ``head`` on an automining chain; a later block if one came meanwhile.
  const headAfter = AUTOMINE ? head.number : await provider.getBlockNumber();
  check(
    "feeHistory",
    Array.isArray(feeHistory.baseFeePerGas) &&
      feeHistory.baseFeePerGas.length === 5 &&
      Array.isArray(feeHistory.gasUsedRatio) &&
      feeHistory.gasUsedRatio.length === 4 &&
      Array.isArray(feeHistory.reward) &&
      feeHistory.reward.length === 4 &&
      feeHistory.reward.every((r) => Array.isArray(r) && r.length === 2) &&
      BigInt(feeHistory.oldestBlock) >= BigInt(head.number) - 3n &&
      BigInt(feeHistory.oldestBlock) <= BigInt(headAfter) - 3n,
    { feeHistory, head: head.number, headAfter },
  );
  const nextBaseFee = BigInt(feeHistory.baseFeePerGas.at(-1));

  const recipient = ethers.Wallet.createRandom().address;
  const sendAndCheck = async (name, request, expectedType) => {
    const before = await provider.getBalance(wallet0.address);
    const beforeTo = await provider.getBalance(recipient);
    const sent = await wallet0.sendTransaction({ to: recipient, ...request });
    check(`${name}.type`, sent.type === expectedType, sent.type);
    const mined = await sent.wait(1, WAIT_MS);
    check(`${name}.status`, mined.status === 1, mined.status);
    check(`${name}.gasUsed`, mined.gasUsed === 21000n, mined.gasUsed);
    check(`${name}.recipient`, (await provider.getBalance(recipient)) - beforeTo === request.value);
    const after = await provider.getBalance(wallet0.address);
    check(
      `${name}.senderBalance`,
      before - after === request.value + mined.fee,
      { before, after, value: request.value, fee: mined.fee, gasPrice: mined.gasPrice },
    );
    const pending = await provider.getTransactionCount(wallet0.address, "pending");
    check(`${name}.pendingNonce`, pending === sent.nonce + 1, { pending, nonce: sent.nonce });
    return { type: sent.type, fee: mined.fee.toString(), gasPrice: mined.gasPrice.toString() };
  };
  facts.defaultFeeTransfer = await sendAndCheck(
    "plain.defaultFees",
    { value: ethers.parseEther("1.25") },
    feeData.maxFeePerGas !== null ? 2 : 0,
  );
  facts.eip1559Transfer = await sendAndCheck(
    "plain.eip1559",
    {
      value: ethers.parseEther("0.5"),
      type: 2,
      maxPriorityFeePerGas: priorityFee,
      maxFeePerGas: nextBaseFee * 2n + priorityFee,
    },
    2,
  );

  // --- WebSocketProvider: on("block")
  const ws = new ethers.WebSocketProvider(wsUrl);
  try {
    const wsNetwork = await ws.getNetwork();
    check("ws.chainId", wsNetwork.chainId === CHAIN_ID, wsNetwork.chainId);
    const headBefore = await ws.getBlockNumber();
    const received = [];
    let wake = () => {};
    await ws.on("block", (number) => {
      received.push(number);
      wake();
    });
    // ws.on() returns before the node has answered eth_subscribe("newHeads"); a block mined
    // before that is not notified, so mine (automine: one tx = one block) until one arrives.
    // Without automine blocks come on their own: wait until a trigger's block is notified.
    const triggerBlocks = [];
    const triggered = () => received.find((n) => triggerBlocks.includes(n));
    const done = () => (AUTOMINE ? received.length > 0 : triggered() !== undefined);
    for (let attempt = 0; attempt < 4 && !done(); attempt++) {
      await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
      const trigger = await wallet1.sendTransaction({ to: recipient, value: 1n });
      triggerBlocks.push((await trigger.wait(1, WAIT_MS)).blockNumber);
      const deadline = Date.now() + 4_000;
      while (!done() && Date.now() < deadline) {
        const arrived = new Promise((resolve) => {
          wake = resolve;
        });
        await Promise.race([arrived, new Promise((r) => setTimeout(r, deadline - Date.now()))]);
      }
    }
    check('ws.on("block")', received.length > 0, { headBefore, triggerBlocks });
    const blockNumber = AUTOMINE ? received[0] : triggered();
    check(
      "ws.blockNumber",
      received.every((n) => Number.isInteger(n) && n > headBefore) &&
        triggerBlocks.includes(blockNumber) &&
        // newHeads notifies every block, in order
        (AUTOMINE || received.every((n, i) => i === 0 || n === received[i - 1] + 1)),
      { received, headBefore, triggerBlocks },
    );
    facts.wsBlock = blockNumber;
  } finally {
    await ws.destroy();
  }
  await stakingFlow(provider, STAKING_VALIDATOR, wallet0, wallet1);
  provider.destroy();
  return { ok: true, checks, ...facts };
}

const url = process.argv[2];
if (!url) {
  console.error("usage: node ethers_flow.mjs http://127.0.0.1:PORT/");
  process.exit(64);
}
const guard = setTimeout(() => {
  console.error(`FAILED: timeout after ${TIMEOUT_MS} ms; passed so far: ${checks.join(", ")}`);
  process.exit(2);
}, TIMEOUT_MS);
try {
  const result = await main(url);
  clearTimeout(guard);
  console.log(stringify(result));
  process.exit(0);
} catch (e) {
  clearTimeout(guard);
  const what = e instanceof CheckFailed ? e.message : `${e.stack ?? e}`;
  console.error(`FAILED: ${what}`);
  console.error(`passed before the failure: ${checks.join(", ") || "(none)"}`);
  process.exit(1);
}
