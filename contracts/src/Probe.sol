// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title Exercises EVM features the differential tests compare against py-evm.
contract Probe {
    uint256 public counter;
    mapping(uint256 => uint256) public data;

    event Bumped(uint256 indexed by, uint256 total);

    function bump(uint256 by) external {
        counter += by;
        emit Bumped(by, counter);
    }

    function store(uint256 key, uint256 value) external {
        data[key] = value;
    }

    function clear(uint256 key) external {
        delete data[key];
    }

    function fail(string calldata reason) external pure {
        revert(reason);
    }

    function burnGas(uint256 rounds) external {
        for (uint256 i = 0; i < rounds; i++) {
            data[i] = i + 1;
        }
    }

    function spawn(uint256 salt) external returns (address child) {
        child = address(new Ephemeral{salt: bytes32(salt)}());
    }

    function spawnAndKill(uint256 salt, address payable beneficiary) external payable {
        Ephemeral child = new Ephemeral{salt: bytes32(salt), value: msg.value}();
        child.kill(beneficiary);
    }

    receive() external payable {}
}

/// @notice Self-destructs on request; since Cancun (EIP-6780) only in its creating transaction.
contract Ephemeral {
    constructor() payable {}

    function kill(address payable beneficiary) external {
        selfdestruct(beneficiary);
    }

    function ping() external pure returns (uint256) {
        return 42;
    }
}
