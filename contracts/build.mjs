// Compiles contracts/src/*.sol with solc-js for evmVersion "prague" (py-evm has no Osaka VM)
// into contracts/build/<Contract>.json holding {abi, bytecode, deployedBytecode, compiler}.
// The native modules' interfaces, contracts/interfaces/*.sol, are compiled too, into ABI-only
// artifacts (build/IStaking.json, build/IGovernance.json: {abi, compiler}); sources in src/ import
// them as `import "../interfaces/IStaking.sol";` (source unit name "interfaces/IStaking.sol").
// Usage: (cd contracts && npm install && node build.mjs)
import fs from "node:fs";
import path from "node:path";
import solc from "solc";

const here = path.dirname(new URL(import.meta.url).pathname);
const srcDir = path.join(here, "src");
const interfacesDir = path.join(here, "interfaces");
const outDir = path.join(here, "build");
const INTERFACES = "interfaces/";

const solFiles = (dir) =>
  fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".sol")).sort() : [];

// Source unit names: "X.sol" for src/X.sol (unchanged, so existing artifacts' metadata and
// bytecode stay the same), "interfaces/I.sol" for interfaces/I.sol, which is also what
// `import "../interfaces/I.sol"` in src/X.sol resolves to.
const sources = {};
for (const file of solFiles(srcDir)) {
  sources[file] = { content: fs.readFileSync(path.join(srcDir, file), "utf8") };
}
for (const file of solFiles(interfacesDir)) {
  sources[INTERFACES + file] = { content: fs.readFileSync(path.join(interfacesDir, file), "utf8") };
}

// Any other import is resolved against contracts/ and may not leave it.
function findImports(unitName) {
  const full = path.resolve(here, unitName);
  if (!full.startsWith(here + path.sep) || !fs.existsSync(full)) {
    return { error: `import ${unitName}: no such file under contracts/` };
  }
  return { contents: fs.readFileSync(full, "utf8") };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: "prague",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);
fs.mkdirSync(outDir, { recursive: true });
const compiler = `solc-js ${solc.version()} evmVersion=prague optimizer=200`;
const written = new Map();
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    if (written.has(name)) {
      console.error(`contract name ${name} is defined in both ${written.get(name)} and ${file}`);
      process.exit(1);
    }
    written.set(name, file);
    const artifact = file.startsWith(INTERFACES)
      ? { contractName: name, sourceName: file, compiler, abi: c.abi }
      : {
          contractName: name,
          sourceName: file,
          compiler,
          abi: c.abi,
          bytecode: "0x" + c.evm.bytecode.object,
          deployedBytecode: "0x" + c.evm.deployedBytecode.object,
        };
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
    console.log(`built ${name}`);
  }
}
