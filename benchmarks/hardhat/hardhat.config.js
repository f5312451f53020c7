// Minimal Hardhat 2 config for `cmt bench rpc --vs-hardhat` (see benchmarks/README.md).
//
// The benchmark writes the accounts to fund (the 1,000 bench keys, big balances) to a JSON file
// of [{privateKey, balance}] and passes its path in CMT_BENCH_HARDHAT_ACCOUNTS, and the chain id
// in CMT_BENCH_HARDHAT_CHAIN_ID (the bench chain's, so the very same signed transactions are
// sent to both nodes). Without them this is Hardhat's default network on chain 31337.
const fs = require("fs");

const hardhat = {
  chainId: Number(process.env.CMT_BENCH_HARDHAT_CHAIN_ID || 31337),
  initialBaseFeePerGas: 0, // the bench txs pay exactly 1 gwei; a base fee must never exceed it
  mining: { auto: true, interval: 0 }, // automine: one block per transaction (Hardhat default)
};
if (process.env.CMT_BENCH_HARDHAT_ACCOUNTS) {
  hardhat.accounts = JSON.parse(fs.readFileSync(process.env.CMT_BENCH_HARDHAT_ACCOUNTS, "utf8"));
}

module.exports = { networks: { hardhat } };
